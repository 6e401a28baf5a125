"""The SFT teacher gate (evaluation/teacher_gate.py): a kNN teacher task is kept only where its teacher beats pop
and Swing on carved validation users, paired CIs above 0."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import evaluation.teacher_gate as tg


def _fake(monkeypatch, per_user: dict):
    """Per-user FHR@20 per method, in place of evaluating on a carved split (the rule is what is tested here)."""
    calls = []

    def evaluate(method, val, k=20, progress=False):
        calls.append(method.name)
        v = np.asarray(per_user[method.name], dtype=float)
        return {"metrics": {f"FHR@{k}": float(v.mean())}, "per_user": {f"FHR@{k}": v}}

    n = len(next(iter(per_user.values())))
    monkeypatch.setattr(tg, "evaluate", evaluate)
    monkeypatch.setattr(tg, "validation_users", lambda split: SimpleNamespace(test=pd.DataFrame({"u": range(n)})))
    return calls


def split_with(categories=("category",)):
    items = pd.DataFrame({"item_id": [1, 2], "category": ["a", "b"]})
    return SimpleNamespace(data=SimpleNamespace(name="toy", items=items, category_columns=list(categories)))


def test_a_teacher_above_pop_and_swing_is_kept_one_tied_with_swing_is_dropped(monkeypatch):
    n = 400
    pop = np.r_[np.ones(100), np.zeros(n - 100)]          # 0.25
    swing = np.r_[np.ones(120), np.zeros(n - 120)]        # 0.30
    strong = np.r_[np.ones(200), np.zeros(n - 200)]       # 0.50: hits every user pop and Swing hit, and more
    tied = np.r_[np.zeros(20), np.ones(120), np.zeros(n - 140)]  # 0.30: above pop, level with Swing
    calls = _fake(monkeypatch, {"pop": pop, "swing": swing, "category_knn": strong, "user_knn": tied})
    tasks = {"warmup": 1.0, "warmup_category_knn": 1.0, "warmup_user_knn": 0.5}
    out, dec = tg.gate_teachers(tasks, split_with())
    assert out == {"warmup": 1.0, "warmup_category_knn": 1.0, "warmup_user_knn": 0.0}
    assert tasks["warmup_user_knn"] == 0.5  # the caller's dict is not modified
    cat, user = dec
    assert cat["kept"] and cat["teacher_value"] == 0.5 and cat["users"] == n
    assert cat["against"]["pop"]["diff"] == pytest.approx(0.25)
    assert cat["against"]["swing"]["diff"] == pytest.approx(0.2)
    assert not user["kept"] and user["against"]["pop"]["lo"] > 0 and user["against"]["swing"]["diff"] == 0
    assert sorted(calls) == ["category_knn", "pop", "swing", "user_knn"]  # each method once


def test_nothing_is_evaluated_without_a_teacher_task_and_weight_zero_is_not_asked(monkeypatch):
    calls = _fake(monkeypatch, {"pop": [0.0, 1.0]})
    out, dec = tg.gate_teachers({"warmup": 1.0, "warmup_category_knn": 0.0}, split_with())
    assert out == {"warmup": 1.0, "warmup_category_knn": 0.0} and dec == [] and calls == []


def test_a_log_without_categories_drops_the_category_teacher(monkeypatch):
    calls = _fake(monkeypatch, {"pop": [0.0, 1.0], "swing": [0.0, 1.0]})
    out, dec = tg.gate_teachers({"warmup_category_knn": 1.0}, split_with(categories=()))
    assert out == {"warmup_category_knn": 0.0}
    assert dec == [{"task": "warmup_category_knn", "teacher": "category_knn", "kept": False,
                    "reason": "no item category column"}]
    assert "category_knn" not in calls


def test_gate_on_a_real_split():
    """The real evaluation path on a small simulated log: a decision per asked teacher, kept iff both CIs are > 0."""
    from feedback.loaders import load
    from feedback.split import make_split

    split = make_split(load("synthetic:users=200,items=80,days=30,seed=0"))
    out, dec = tg.gate_teachers({"warmup": 1.0, "warmup_category_knn": 1.0, "warmup_user_knn": 1.0}, split)
    assert [d["teacher"] for d in dec] == ["category_knn", "user_knn"]
    for d in dec:
        assert 0 <= d["teacher_value"] <= 1 and set(d["against"]) == {"pop", "swing"}
        assert d["kept"] == all(v["lo"] > 0 for v in d["against"].values())
        assert out[d["task"]] == (1.0 if d["kept"] else 0.0)


def test_gate_command_writes_the_decisions(tmp_path, capsys):
    """`conrec gate --data SPEC`: the run's gate without a run; the JSON is RUN/sft/teacher_gate.json's shape."""
    import json

    out = tmp_path / "gate.json"
    assert tg.main(["--data", "synthetic:users=200,items=80,days=30,seed=0", "--tasks", "warmup_category_knn",
                    "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["rule"] == tg.RULE and got["split"] == [] and got["student"] is None
    (d,) = got["decisions"]
    assert d["task"] == "warmup_category_knn" and d["kept"] == all(v["lo"] > 0 for v in d["against"].values())
    assert f"{d['teacher_value']:.4f}" in capsys.readouterr().out


def test_gate_command_refuses_overrides_it_would_ignore(tmp_path):
    with pytest.raises(SystemExit):
        tg.main(["--data", "synthetic:users=50,items=40,days=20,seed=0", "--out", str(tmp_path / "g.json"),
                 "category_knn.k=5"])
    assert not (tmp_path / "g.json").exists()


def test_a_teacher_must_beat_the_probe_too(monkeypatch):
    """With `student` (the SFT probe) the teacher is also paired against that model: above pop and Swing but level
    with the probe is dropped; the same teacher against a weaker probe is kept."""
    n = 400
    pop = np.r_[np.ones(100), np.zeros(n - 100)]        # 0.25
    swing = np.r_[np.ones(120), np.zeros(n - 120)]      # 0.30
    teacher = np.r_[np.ones(200), np.zeros(n - 200)]    # 0.50
    for probe, kept in ((teacher.copy(), False), (np.r_[np.ones(110), np.zeros(n - 110)], True)):
        _fake(monkeypatch, {"pop": pop, "swing": swing, "category_knn": teacher, "sft_probe": probe})
        monkeypatch.setattr(tg, "get_method", lambda name, checkpoint=None: SimpleNamespace(
            name="sft_probe" if name == "model" else name))
        out, (d,) = tg.gate_teachers({"warmup_category_knn": 1.0}, split_with(), student="RUN/sft/probe/final")
        assert set(d["against"]) == {"pop", "swing", "sft_probe"}
        assert d["against"]["sft_probe"]["value"] == probe.mean()
        assert d["kept"] is kept and out["warmup_category_knn"] == (1.0 if kept else 0.0)
        assert "sft_probe" in tg.table([d]).splitlines()[0]
