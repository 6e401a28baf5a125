"""Level-by-level constrained beam search (the engines' beam groups) and its completions, by hand."""

import math

import numpy as np
import pytest

from rollout.constrained import level_beam_search
from rollout.engine import SamplingConfig, beam_completions

LOG = math.log
# a 2-level trie: () → 0 (.5), 1 (.3), 2 (.2); (0,) → 0 (.6), 1 (.4); (1,) → 0 (.9), 1 (.1); (2,) → 0 (1)
TABLE = {(): [(0, LOG(.5)), (1, LOG(.3)), (2, LOG(.2))], (0,): [(0, LOG(.6)), (1, LOG(.4))],
         (1,): [(0, LOG(.9)), (1, LOG(.1))], (2,): [(0, 0.0)]}


def expand_from(table, calls):
    def expand(reqs):
        calls.append(list(reqs))
        return [table[pre] for _, pre in reqs]
    return expand


def test_beam_keeps_the_best_joint_codes_not_the_greedy_ones():
    calls = []
    beams = level_beam_search(1, 2, 2, expand_from(TABLE, calls))
    # level 0 keeps (0,) .5 and (1,) .3; level 1: (0,0) .30, (1,0) .27, (0,1) .20, (1,1) .03 → the best two
    assert [code for code, _ in beams[0]] == [(0, 0), (1, 0)]
    np.testing.assert_allclose([sum(lps) for _, lps in beams[0]], [LOG(.30), LOG(.27)])
    assert beams[0][1][1] == pytest.approx((LOG(.3), LOG(.9)))  # per-level log-probs, in order
    assert calls == [[(0, ())], [(0, (0,)), (0, (1,))]]  # one engine call per level, only live prefixes


def test_beam_width_beyond_the_catalogue_and_ties():
    beams = level_beam_search(2, 2, 10, expand_from(TABLE, []))
    assert len(beams[0]) == 5 and len({c for c, _ in beams[0]}) == 5  # each of the 5 codes once, no more
    tie = {(): [(1, LOG(.5)), (0, LOG(.5))], (0,): [(0, 0.0)], (1,): [(0, 0.0)]}
    assert [c for c, _ in level_beam_search(1, 2, 1, expand_from(tie, []))[0]] == [(0, 0)]  # ties break on the code


class _Map:
    ids = [np.array([100, 101, 102]), np.array([200, 201])]
    eos = 9


def test_completions_carry_tokens_eos_and_logprobs():
    groups = beam_completions([[((1, 0), (-1.0, -0.5)), ((0, 1), (-2.0, -0.1))]], _Map, n=3)
    assert [c.token_ids for c in groups[0]] == [[101, 200, 9], [100, 201, 9], [100, 201, 9]]  # short group: repeat
    assert groups[0][0].logprobs == [-1.0, -0.5, 0.0]  # EOS is forced after a full code


def test_sampling_config_checks_the_mode():
    with pytest.raises(ValueError, match="'sample' or 'beam'"):
        SamplingConfig(mode="greedy")
    with pytest.raises(ValueError, match="temperature > 0"):
        SamplingConfig(mode="beam", temperature=0.0)
