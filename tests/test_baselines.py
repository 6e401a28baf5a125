"""Baselines under the protocol: the reference figures of docs/EVALUATION.md on MovieLens-100k."""

import json
import subprocess
import sys

import numpy as np
import pytest

from evaluation.evaluate import evaluate
from evaluation.methods import get_method
from feedback.loaders import load
from feedback.split import make_split
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def ml_split(ml100k):
    return make_split(load(f"movielens-100k:{ml100k}"))


def test_pop_matches_reference(ml_split):
    r = evaluate(get_method("pop"), ml_split, progress=False)
    assert r["n_test_users"] == 666
    assert r["metrics"]["FHR@20"] == pytest.approx(0.269, abs=0.01)
    assert r["metrics"]["HR@20"] == pytest.approx(0.117, abs=0.01)


def test_swing_beats_pop(ml_split):
    pop = evaluate(get_method("pop"), ml_split, progress=False)["metrics"]
    sw = evaluate(get_method("swing"), ml_split, progress=False)["metrics"]
    assert sw["FHR@20"] == pytest.approx(0.335, abs=0.01)
    assert sw["HR@20"] == pytest.approx(0.131, abs=0.01)
    assert sw["FHR@20"] > pop["FHR@20"]


def test_random_near_chance(ml_split):
    r = evaluate(get_method("random"), ml_split, progress=False)["metrics"]
    assert r["CandAcc"] == pytest.approx(1 / 20, abs=0.02)


def test_recommendations_exclude_context(ml_split):
    m = get_method("swing")
    m.fit(ml_split)
    rows = np.arange(50)
    top = m.recommend(rows, 20)
    for r in rows:
        assert not set(top[r]) & set(ml_split.test["context_items"].iat[r])
        assert len(set(top[r])) == 20


def test_eval_cli_writes_json(ml100k, tmp_path):
    out = tmp_path / "pop.json"
    proc = subprocess.run([sys.executable, "-m", "cluster.cli", "eval", "--data", f"movielens-100k:{ml100k}",
                           "--method", "pop", "--k", "10", "--out", str(out), "--no-progress"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    assert {"dataset", "method", "k", "n_test_users", "metrics"} <= set(r)
    assert set(r["metrics"]) >= {"HR@10", "FHR@10", "LUF@10", "LIF@10", "CandAcc"}
    assert r["k"] == 10 and r["n_test_users"] == 666
    assert "FHR@10" in proc.stdout


def test_eval_cli_unknown_override(ml100k):
    proc = subprocess.run([sys.executable, "-m", "cluster.cli", "eval", "--data", f"movielens-100k:{ml100k}",
                           "--method", "swing", "swing.alpah=2"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0 and "unknown config key 'swing.alpah'" in proc.stderr and "alpha" in proc.stderr
