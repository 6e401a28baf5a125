"""DAPO-style dynamic sampling in the driver: zero-variance groups are replaced by fresh prompts.

The driver's selection logic is exercised alone: `generate` and the reward server are replaced by
deterministic stand-ins (the real ones run in tests/test_run.py)."""

import numpy as np
import pandas as pd
import pytest

from cluster.driver import Driver
from cluster.run_config import RunConfig
from rollout.engine import Completion
from trainer.prompts import ContextConfig


class _Reward:
    def score(self, sample_ids, outputs, group_size=1):
        # examples with an even id get all-equal rewards (no gradient); odd ids get a spread
        ids = np.asarray(sample_ids)
        spread = np.tile(np.arange(4, dtype=float), len(ids) // 4)
        return {"score": np.where(ids % 2 == 0, 1.0, spread), "terms": {}, "metrics": {"reward/mean": 0.5}}


def _driver(dynamic: bool, n_examples: int = 40) -> Driver:
    d = Driver.__new__(Driver)
    d.cfg = RunConfig()
    d.cfg.grpo.sampling.n = 4
    d.cfg.grpo.dynamic_sampling = dynamic
    d.cfg.grpo.dynamic_sampling_rounds = 3
    d.cfg.topology.learner_ranks = 2
    d.ex = pd.DataFrame({"ctx_items": [np.array([1])] * n_examples, "ctx_fb": [np.array([-1])] * n_examples,
                         "ctx_ts": [np.array([0])] * n_examples, "t_cut": [10] * n_examples})

    class _Index:
        @staticmethod
        def sid(i):
            return f"<a_{i}>"

    d.index = _Index()
    d.tok = lambda texts, add_special_tokens=False: {"input_ids": [[7, 8]] * len(texts)}
    d.rng = np.random.default_rng(0)
    d.reward = _Reward()
    d.generate = lambda prompts, round_=0: [[Completion([1, 2], [0.0, 0.0])] * 4 for _ in prompts]
    return d


def test_dynamic_sampling_keeps_only_groups_with_a_gradient():
    d = _driver(True)
    ids = np.arange(8)  # half even: 4 zero-variance groups to replace
    batch, _, dropped = d._rollout_groups(ids, ContextConfig(mode="neg_all"), {})
    assert batch.n_groups == 8 and all(k % 2 == 1 for k in batch.example_ids)
    assert len(batch.prompt_ids) == 8 and len(batch) == 32 and batch.rewards.reshape(8, 4).std(1).min() > 0
    assert 0.4 < dropped < 0.7  # about half of all generated groups were dropped


def test_without_dynamic_sampling_every_group_is_kept():
    d = _driver(False)
    batch, _, dropped = d._rollout_groups(np.arange(8), ContextConfig(mode="neg_all"), {})
    assert batch.example_ids.tolist() == list(range(8)) and len(batch) == 32 and dropped == 0.0


def test_dynamic_sampling_tops_up_to_one_group_per_learner_rank():
    d = _driver(True, n_examples=4)
    d.cfg.topology.learner_ranks = 3
    batch, _, _ = d._rollout_groups(np.array([0, 2]), ContextConfig(mode="neg_all"), {})
    assert batch.n_groups >= 3 and len(batch) == 4 * batch.n_groups



class _TargetReward:
    """A stand-in scorer for `grpo.inject_target`: the target's tokens [9, 9] score 2; a drawn row scores 3 in
    examples whose id is a multiple of 3 (the policy already beat the target there), else `drawn`."""

    def __init__(self, drawn: float):
        self.drawn = drawn

    def score(self, sample_ids, outputs, group_size=1):
        ids = np.asarray(sample_ids)
        is_target = np.array([list(o) == [9, 9] for o in outputs])
        score = np.where(is_target, 2.0, np.where(ids % 3 == 0, 3.0, self.drawn))
        return {"score": score, "terms": {"target": is_target.astype(float)}, "metrics": {}}


@pytest.mark.parametrize("drawn", [2.0, 0.5])
def test_inject_target_takes_the_last_row_where_the_target_beats_every_drawn_row(drawn):
    d = _driver(False)
    d.reward, d.cfg.grpo.inject_target = _TargetReward(drawn), True
    d._targets = lambda ids: [[9, 9]] * len(ids)
    batch, rew, _ = d._rollout_groups(np.arange(6), ContextConfig(mode="neg_all"), {})
    r = batch.rewards.reshape(6, 4)
    changed = [g for g in range(6) if batch.completions[g * 4 + 3] == [9, 9]]
    if drawn >= 2.0:  # a drawn row as good as the target: nothing to guide
        assert changed == [] and rew["metrics"]["rollout/injected_groups"] == 0.0
        assert batch.reward_terms["target"].sum() == 0
        return
    assert changed == [1, 2, 4, 5] and rew["metrics"]["rollout/injected_groups"] == pytest.approx(4 / 6)
    assert r[1].tolist() == [0.5, 0.5, 0.5, 2.0] and r[0].tolist() == [3.0] * 4 and r[3].tolist() == [3.0] * 4
    assert batch.reward_terms["target"].reshape(6, 4)[:, 3].tolist() == [0, 1, 1, 0, 1, 1]
    assert all(batch.engine_logprobs[g * 4 + 3] is None for g in changed)
    assert batch.engine_logprobs[3] == [0.0, 0.0] and batch.completions[3] == [1, 2]  # group 0 untouched
