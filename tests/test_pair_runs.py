"""bench/pair_runs.py: two seeds runs paired model by model, on the seeds both finished, by hand on four users."""

import numpy as np
import pytest

from bench.pair_runs import pair
from cluster.report import save_per_user

KEYS = ["HR@20", "FHR@20", "LUF@20", "LIF@20", "CandAcc"]


def run(root, seeds: dict):
    """seeds: {S: (sft_only FHR per user, conrec FHR per user)}; other metrics copy FHR."""
    for s, (sft, con) in seeds.items():
        d = root / f"seed_{s}"
        d.mkdir(parents=True)
        save_per_user({"sft_only": {k: sft for k in KEYS}, "conrec": {k: con for k in KEYS}}, d / "per_user.npz")
    return root


def test_pairs_models_across_runs_and_conrec_within(tmp_path):
    a = run(tmp_path / "a", {0: ([1, 1, 0, 0], [1, 1, 1, 0]), 1: ([1, 0, 0, 0], [1, 1, 0, 0]),
                             2: ([1, 1, 1, 1], [1, 1, 1, 1])})  # seed 2 only in A: left out
    b = run(tmp_path / "b", {0: ([1, 0, 0, 0], [1, 0, 0, 0]), 1: ([0, 0, 0, 0], [1, 0, 0, 0])})
    out, text = pair(a, b, "new", "old")
    assert out["seeds"] == [0, 1]
    # seed averages: A sft [1, .5, 0, 0], A conrec [1, 1, .5, 0]; B sft [.5, 0, 0, 0], B conrec [1, 0, 0, 0]
    p = out["pairs"]
    assert p["new sft_only − old sft_only"]["FHR@20"]["diff"] == pytest.approx(1.0 / 4)
    assert p["new conrec − old conrec"]["FHR@20"]["diff"] == pytest.approx(1.5 / 4)
    assert p["new conrec − new sft_only"]["FHR@20"]["diff"] == pytest.approx(1.0 / 4)
    assert p["old conrec − old sft_only"]["FHR@20"]["diff"] == pytest.approx(0.5 / 4)
    assert out["means"]["new conrec"]["FHR@20"] == pytest.approx(np.mean([1, 1, .5, 0]))
    assert "| new conrec − old conrec |" in text


def test_runs_without_a_shared_seed_are_refused(tmp_path):
    a = run(tmp_path / "a", {0: ([1], [1])})
    b = run(tmp_path / "b", {1: ([1], [1])})
    with pytest.raises(SystemExit, match="share no finished seed"):
        pair(a, b, "a", "b")
