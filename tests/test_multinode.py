"""Several Ray nodes on one machine (`ray.cluster_utils.Cluster`, Ray's own test utility): `conrec run` joins
the cluster through `topology.ray_address`, places its bundles by `topology.placement_strategy` (checked from
Ray's actor table), leaves no actor alive after it ends, and a placement the nodes cannot meet fails within
the timeout naming what is missing. A worker node removed mid-step (its raylet and every process on it) with a
learner rank on it: the run rebuilds the learner group on the surviving nodes and ends with the same model,
bit for bit; when the topology cannot be met any more, it stops with one line saying what is missing and how
to resume. A worker node removed with the rollout actor on it: the actor is restarted on a surviving node and
the run ends with the same model (these three are `slow`: `./scripts/test -m slow tests/test_multinode.py`)."""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.net import free_port
from tests.conftest import ROOT, TINY_ARGS, TINY_GRPO, seeded_from

ARGS = [*TINY_ARGS, *TINY_GRPO]

pytestmark = pytest.mark.stack

ONE_STAGE = "curriculum.stages=[{name: neg_all, context_mode: neg_all, steps: 2}]"


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from ray.cluster_utils import Cluster

    port = free_port()
    # the dashboard on the head serves `ray job submit`
    # (its job agent on a port of its own: another Ray on the machine may hold the default 52365)
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 3, "include_dashboard": True,
                                                      "dashboard_host": "127.0.0.1", "dashboard_port": port,
                                                      "dashboard_agent_listen_port": free_port()})
    workers = [c.add_node(num_cpus=3) for _ in range(2)]
    c.wait_for_nodes()
    c.dashboard_url = f"http://127.0.0.1:{port}"
    yield c, workers
    c.shutdown()


def conrec(run, address, *extra, timeout=900):
    cmd = [sys.executable, "-m", "cluster.cli", "run", "--config", str(ROOT / "configs/demo.yaml"), f"run_dir={run}",
           *ARGS, ONE_STAGE, f"topology.ray_address={address}", *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def actors(c, cls: str) -> list[dict]:
    return [a for a in c.global_state.actor_table(None).values() if a["ActorClassName"].endswith(cls)]


@pytest.fixture(scope="module")
def spread_run(cluster, tiny_run, tmp_path_factory):
    c, _ = cluster
    run = seeded_from(tiny_run[0], tmp_path_factory.mktemp("multinode") / "spread")
    p = conrec(run, c.address, "--resume", "topology.rollout_actors=1", "topology.learner_ranks=2",
               "topology.placement_strategy=STRICT_SPREAD")
    assert p.returncode == 0, p.stderr[-5000:]
    return run, p


def test_strict_spread_puts_each_bundle_on_its_own_node(cluster, spread_run):
    c, _ = cluster
    run, p = spread_run
    assert (run / "report.json").exists()
    nodes = {cls: [a["Address"]["NodeID"] for a in actors(c, cls)] for cls in ("RolloutActor", "LearnerActor")}
    assert len(nodes["RolloutActor"]) == 1 and len(nodes["LearnerActor"]) == 2, nodes
    assert len(set(nodes["RolloutActor"] + nodes["LearnerActor"])) == 3, nodes  # three bundles, three nodes
    assert "placement (STRICT_SPREAD) on 3 node(s)" in p.stderr
    # the run's actors end with it: nothing of it stays alive in the cluster
    assert all(a["State"] == "DEAD" for cls in ("RolloutActor", "LearnerActor", "RewardWorker")
               for a in actors(c, cls)), [a["State"] for a in c.global_state.actor_table(None).values()]


def test_placement_the_nodes_cannot_meet_fails_in_time_naming_what_is_missing(cluster, spread_run, tmp_path):
    c, _ = cluster
    run = seeded_from(spread_run[0], tmp_path / "too_wide")
    p = conrec(run, c.address, "--resume", "topology.rollout_actors=2", "topology.learner_ranks=2",
               "topology.placement_strategy=STRICT_SPREAD", "topology.placement_timeout_s=10", timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-3000:]
    assert re.search(r"conrec run: error: placement group of 4 bundles .* was not placed within 10s: STRICT_SPREAD "
                     r"needs 4 nodes with CPU [\d.]+ each \(one per bundle\); 3 of the 3 alive nodes have it", p.stderr)
    deadline = time.time() + 30  # the job's actors die with its driver
    while any(a["State"] == "ALIVE" for a in c.global_state.actor_table(None).values()) and time.time() < deadline:
        time.sleep(1)
    assert not any(a["State"] == "ALIVE" for a in c.global_state.actor_table(None).values())


def run_losing_a_learner_node(c, run, hold, *extra, timeout=600) -> tuple[int, str]:
    """`conrec run --resume` on the cluster; once both learner ranks are held inside their first update, a
    worker node hosting one of them is removed (raylet and every process on it). Returns (exit code, stderr)."""
    hold.touch()
    cmd = [sys.executable, "-m", "cluster.cli", "run", "--config", str(ROOT / "configs/demo.yaml"), f"run_dir={run}",
           *ARGS, ONE_STAGE, f"topology.ray_address={c.address}", "--resume", "topology.rollout_actors=1",
           "topology.learner_ranks=2", *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "CONREC_HOLD_LEARNER_UPDATE": str(hold)})
    try:
        deadline = time.time() + 600
        while len(list(hold.parent.glob(hold.name + ".*"))) < 2 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        # the held ranks by their pids (an actor of an earlier run may still read ALIVE in the table for a moment)
        hosts = {a["Address"]["NodeID"] for a in actors(c, "LearnerActor") if a["Pid"] in held_pids(hold)}
        remove_node(c, next(n for n in c.worker_nodes if n.node_id in hosts))
        hold.unlink()
        _, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
        c.add_node(num_cpus=3)  # the next test finds three nodes again
        c.wait_for_nodes()
    return proc.returncode, err


def held_pids(hold: Path) -> set[int]:
    """The processes held at a `CONREC_HOLD_*` point: each wrote `<hold>.<pid>` on arrival (common/faults.py)."""
    return {int(f.suffix[1:]) for f in hold.parent.glob(hold.name + ".*")}


def remove_node(c, node, timeout=60) -> None:
    """Take a worker node away as a vanished machine would go: its raylet and every process on it. Ray's
    `remove_node` kills the raylet and its services; an actor's worker process only notices that later (it
    polls for its raylet), and meanwhile answers calls directly, so a held call released then could finish as
    if nothing had happened. Its actors' processes are killed here too, and the hold is released after."""
    pids = [a["Pid"] for a in c.global_state.actor_table(None).values()
            if a["State"] == "ALIVE" and a["Address"]["NodeID"] == node.node_id]
    c.remove_node(node, allow_graceful=False)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.time() + timeout
    while (alive := [p for p in pids if running(p)]) and time.time() < deadline:
        time.sleep(0.1)
    assert not alive, f"processes {alive} of the removed node still run {timeout}s later"


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def digest(run) -> str:
    return hashlib.sha256((run / "final" / "model.safetensors").read_bytes()).hexdigest()


@pytest.mark.slow
def test_lost_node_with_a_learner_rank_is_survived(cluster, spread_run, tmp_path):
    c, _ = cluster
    run = seeded_from(spread_run[0], tmp_path / "node_lost")
    rc, err = run_losing_a_learner_node(c, run, tmp_path / "hold", "topology.placement_strategy=SPREAD")
    assert rc == 0, err[-5000:]
    assert "rebuilding the learner group" in err and "Ray node(s) of the 3 the run started on are gone" in err
    rows = [json.loads(x) for x in (run / "grpo" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["fault/node_losses"] == 1 and rows[-1]["fault/learner_restarts"] == 1
    assert json.loads((run / "report.json").read_text())["faults"]["fault/node_losses"] == 1
    assert digest(run) == digest(spread_run[0])  # the lost step replayed from the checkpoint, same seeds


@pytest.mark.slow
def test_lost_node_the_topology_cannot_spare_stops_with_one_line(cluster, spread_run, tmp_path):
    c, _ = cluster
    run = seeded_from(spread_run[0], tmp_path / "node_lost_strict")
    rc, err = run_losing_a_learner_node(c, run, tmp_path / "hold", "topology.placement_strategy=STRICT_SPREAD",
                                        "topology.placement_timeout_s=40", timeout=300)
    assert rc == 2 and "Traceback" not in err, err[-5000:]
    assert re.search(r"conrec run: error: placement group of 3 bundles .* was not placed again after a node was lost "
                     r"within 40s: STRICT_SPREAD needs 3 nodes .*; 2 of the 2 alive nodes have it\..*continue with "
                     r"`conrec run --config \.\.\. --resume`", err), err[-3000:]


@pytest.mark.slow
def test_lost_node_with_the_rollout_actor_is_survived(cluster, spread_run, tmp_path):
    """The node holding the rollout actor is removed while the actor is inside `generate`: Ray places its bundle
    again on a surviving node and restarts the actor there, the driver re-primes it with the current weights and
    redoes its shard with the same seeds, and the run ends with the same model, bit for bit."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    c, _ = cluster
    ray.init(address=c.address, logging_level="ERROR")
    # the head's CPUs held, so the rollout and learner bundles land on the two removable workers
    hog = ray.remote(num_cpus=3)(type("HeadCpus", (), {"ping": lambda self: 1})).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(c.head_node.node_id, soft=False)).remote()
    try:
        ray.get(hog.ping.remote(), timeout=120)
        topo = ("topology.rollout_actors=1", "topology.learner_ranks=1", "topology.placement_strategy=SPREAD")
        ref = seeded_from(spread_run[0], tmp_path / "ref")
        p = conrec(ref, c.address, "--resume", *topo)
        assert p.returncode == 0, p.stderr[-5000:]

        run, hold = seeded_from(spread_run[0], tmp_path / "rollout_node_lost"), tmp_path / "hold"
        hold.touch()
        cmd = [sys.executable, "-m", "cluster.cli", "run", "--config", str(ROOT / "configs/demo.yaml"),
               f"run_dir={run}", *ARGS, ONE_STAGE, f"topology.ray_address={c.address}", "--resume", *topo]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "CONREC_HOLD_ROLLOUT_GENERATE": str(hold)})
        try:
            deadline = time.time() + 600
            while not list(tmp_path.glob("hold.*")) and proc.poll() is None and time.time() < deadline:
                time.sleep(0.2)
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            held = held_pids(hold)  # the held rollout actor, by its pid
            host = {a["ActorClassName"].split(".")[-1]: a["Address"]["NodeID"] for a in
                    c.global_state.actor_table(None).values()
                    if a["State"] == "ALIVE" and (a["Pid"] in held or a["ActorClassName"].endswith("LearnerActor"))}
            assert len({host["RolloutActor"], host["LearnerActor"], c.head_node.node_id}) == 3, host
            remove_node(c, next(n for n in c.worker_nodes if n.node_id == host["RolloutActor"]))
            hold.unlink()
            _, err = proc.communicate(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
            c.add_node(num_cpus=3)  # the next test finds three nodes again
            c.wait_for_nodes()
        assert proc.returncode == 0, err[-5000:]
        rows = [json.loads(x) for x in (run / "grpo" / "metrics.jsonl").read_text().splitlines()]
        assert rows[-1]["fault/node_losses"] == 1 and rows[-1]["fault/rollout_restarts"] >= 1, rows[-1]
        assert rows[-1]["fault/learner_restarts"] == 0
        assert digest(run) == digest(ref)
    finally:
        ray.kill(hog)
        ray.shutdown()


def ray_job(c, *args, timeout=900):
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    deadline = time.time() + 120
    while True:
        p = subprocess.run([ray_cli, "job", *args[:1], "--address", c.dashboard_url, *args[1:]], cwd=ROOT,
                           capture_output=True, text=True, timeout=timeout)
        # the head's job agent registers a little after the node is up
        if "No available agent to submit job" not in p.stderr or time.time() > deadline:
            return p
        time.sleep(2)


def job_entry(run, *extra) -> list[str]:
    # the job runs `python -m cluster.launch` in its uploaded copy of the working directory (`ray job submit`
    # quotes each argument for the shell)
    return [sys.executable, "-m", "cluster.launch", "--config", "configs/demo.yaml", f"run_dir={run}", *ARGS,
            "--resume", "topology.rollout_actors=1", "topology.learner_ranks=2", *extra]


@pytest.mark.slow
def test_ray_job_submit_logs_and_stop(cluster, spread_run, tmp_path):
    """The way users launch: `ray job submit --working-dir .` against the cluster, `ray job logs`, and
    `ray job stop` mid-GRPO leaving no actor of the run alive and no process of the job behind."""
    c, _ = cluster
    run = seeded_from(spread_run[0], tmp_path / "job")
    p = ray_job(c, "submit", "--working-dir", str(ROOT), "--submission-id", "conrec-ok", "--",
                *job_entry(run, ONE_STAGE))
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    logs = ray_job(c, "logs", "conrec-ok").stdout
    assert "[3/5] progressive GRPO on Ray" in logs and f"report: {run}/report.md" in logs, logs[-3000:]
    assert digest(run) == digest(spread_run[0])

    run = seeded_from(spread_run[0], tmp_path / "job_stop")
    many = "curriculum.stages=[{name: neg_all, context_mode: neg_all, steps: 5000}]"
    p = ray_job(c, "submit", "--no-wait", "--working-dir", str(ROOT), "--submission-id", "conrec-stop", "--",
                *job_entry(run, many), timeout=300)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    # any finished checkpoint means mid-GRPO (on an idle machine step 2's is rotated away within a second)
    deadline = time.time() + 600
    while not list(run.glob("grpo/checkpoints/step_*/manifest.json")) and time.time() < deadline:
        time.sleep(0.5)
    assert list(run.glob("grpo/checkpoints/step_*/manifest.json")), ray_job(c, "logs", "conrec-stop").stdout[-3000:]
    assert ray_job(c, "stop", "conrec-stop", timeout=300).returncode == 0
    deadline = time.time() + 120
    while time.time() < deadline:
        alive = [a["ActorClassName"] for a in c.global_state.actor_table(None).values()
                 if a["State"] == "ALIVE" and not a["ActorClassName"].endswith("JobSupervisor")]
        left = [pid for pid in os.listdir("/proc") if pid.isdigit() and _cmdline(pid).count(str(run))]
        if not alive and not left:
            break
        time.sleep(1)
    assert not alive and not left, (alive, left)
    assert "was stopped" in ray_job(c, "status", "conrec-stop").stdout
    assert "conrec run: interrupted at GRPO" in ray_job(c, "logs", "conrec-stop").stdout


def _cmdline(pid: str) -> str:
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
