"""Several Ray nodes on one machine (`ray.cluster_utils.Cluster`, Ray's own test utility): `conrec run` joins
the cluster through `topology.ray_address`, places its bundles by `topology.placement_strategy` (checked from
Ray's actor table), leaves no actor alive after it ends, and a placement the nodes cannot meet fails within
the timeout naming what is missing."""

import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from tests.test_faults import ARGS

pytestmark = pytest.mark.stack

ONE_STAGE = "curriculum.stages=[{name: neg_all, context_mode: neg_all, steps: 2}]"


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 3})
    workers = [c.add_node(num_cpus=3) for _ in range(2)]
    c.wait_for_nodes()
    yield c, workers
    c.shutdown()


def conrec(run, address, *extra, timeout=900):
    cmd = [sys.executable, "-m", "cluster.cli", "run", "--config", str(ROOT / "configs/demo.yaml"), f"run_dir={run}",
           *ARGS, ONE_STAGE, f"topology.ray_address={address}", *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def actors(c, cls: str) -> list[dict]:
    return [a for a in c.global_state.actor_table(None).values() if a["ActorClassName"].endswith(cls)]


@pytest.fixture(scope="module")
def spread_run(cluster, tmp_path_factory):
    c, _ = cluster
    run = tmp_path_factory.mktemp("multinode") / "spread"
    p = conrec(run, c.address, "topology.rollout_actors=1", "topology.learner_ranks=2",
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
    run = tmp_path / "too_wide"
    run.mkdir()
    shutil.copytree(spread_run[0] / "sid", run / "sid")
    shutil.copytree(spread_run[0] / "sft" / "final", run / "sft" / "final")
    p = conrec(run, c.address, "--resume", "topology.rollout_actors=2", "topology.learner_ranks=2",
               "topology.placement_strategy=STRICT_SPREAD", "topology.placement_timeout_s=10", timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-3000:]
    assert re.search(r"conrec run: error: placement group of 4 bundles .* was not placed within 10s: STRICT_SPREAD "
                     r"needs 4 nodes with CPU [\d.]+ each \(one per bundle\); 3 of the 3 alive nodes have it", p.stderr)
    deadline = time.time() + 30  # the job's actors die with its driver
    while any(a["State"] == "ALIVE" for a in c.global_state.actor_table(None).values()) and time.time() < deadline:
        time.sleep(1)
    assert not any(a["State"] == "ALIVE" for a in c.global_state.actor_table(None).values())
