"""StepBatch: groups stay whole through selection, sharding and concatenation."""

import numpy as np
import pytest

from trainer.batch import StepBatch


def batch(P=3, G=2):
    return StepBatch(np.arange(10, 10 + P), [[1, g] for g in range(P)], [[g, r] for g in range(P) for r in range(G)],
                     [[-0.1 * g, -0.2 * r] for g in range(P) for r in range(G)], G, 1.0,
                     rewards=np.arange(P * G, dtype=np.float32), reward_terms={"hit/score": np.arange(P * G) * 2.0},
                     targets=[[9, g] for g in range(P)])


def test_groups_select_whole_groups_in_order():
    b = batch().groups([2, 0])
    assert b.example_ids.tolist() == [12, 10] and b.prompt_ids == [[1, 2], [1, 0]]
    assert b.completions == [[2, 0], [2, 1], [0, 0], [0, 1]] and b.rewards.tolist() == [4, 5, 0, 1]
    assert b.reward_terms["hit/score"].tolist() == [8, 10, 0, 2] and b.targets == [[9, 2], [9, 0]]
    assert b.engine_logprobs[0] == pytest.approx([-0.2, 0.0]) and b.row_group().tolist() == [0, 0, 1, 1]
    assert b.row_example_ids().tolist() == [12, 12, 10, 10]


def test_shard_and_concat_round_trip():
    b = batch(P=5)
    shards = b.shard(2)
    assert [s.n_groups for s in shards] == [3, 2] and [len(s) for s in shards] == [6, 4]
    back = StepBatch.concat(shards)
    assert back.completions == b.completions and back.rewards.tolist() == b.rewards.tolist()
    assert back.example_ids.tolist() == b.example_ids.tolist() and back.targets == b.targets
    assert StepBatch.concat([b.groups([]), b.groups([1])]).example_ids.tolist() == [11]


def test_inconsistent_sizes_are_refused():
    with pytest.raises(ValueError, match="do not form 2 groups of 2"):
        StepBatch(np.arange(2), [[1], [2]], [[1]] * 3, None, 2)
