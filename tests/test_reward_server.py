"""The reward server on real Ray actors scores exactly as the in-process scorer, survives a killed
actor without losing or duplicating a sample, and surfaces scorer errors instead of retrying them."""

import os
import tempfile

import numpy as np
import pytest

from reward.scorer import RewardConfig, RewardScorer, RewardTerm
from tests.test_reward import GT, INDEX, S0, S1, S2, S3

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def ray_local():
    import ray

    tmp = tempfile.mkdtemp(prefix="cr_rt_", dir="/tmp")
    # armed before Ray starts so its workers inherit it; a test creates the file to fire the fault
    os.environ["CONREC_FAULT_REWARD_SCORE"] = os.path.join(tmp, "kill_reward_actor")
    from cluster.ray_local import init_local_ray

    init_local_ray(2, prefix="cr_rt_")
    yield ray
    ray.shutdown()


def test_pool_matches_in_process(ray_local):
    from reward.server import RewardServer

    cfg = RewardConfig(terms=[RewardTerm("future_sim"), RewardTerm("hit", weight=0.5)], num_workers=2)
    ids = np.array([0, 1, 0, 1, 0])
    outs = [S0, S1, S2, "<a_1><b_1>", S3]
    server = RewardServer(cfg, GT, INDEX)
    got = server.score(ids, outs)
    want = RewardScorer(cfg, GT, INDEX).score(ids, outs)
    np.testing.assert_allclose(got["score"], want["score"], rtol=1e-6)
    for k in want["terms"]:
        np.testing.assert_allclose(got["terms"][k], want["terms"][k], rtol=1e-6)
    assert got["metrics"]["reward/invalid_rate"] == pytest.approx(0.2)
    assert got["metrics"]["timing/reward"] > 0


def test_pool_shards_whole_groups(ray_local):
    from reward.server import RewardServer

    # 3 groups of 3 over 2 actors: split by samples, group 1 would straddle them (rank_hit needs whole groups)
    cfg = RewardConfig(terms=[RewardTerm("rank_hit")], num_workers=2)
    ids = np.repeat([0, 0, 1], 3)
    outs = [S0, S2, S3, S3, S1, S2, S1, S0, S3]
    got = RewardServer(cfg, GT, INDEX).score(ids, outs, group_size=3)
    want = RewardScorer(cfg, GT, INDEX).score(ids, outs, group_size=3)
    np.testing.assert_allclose(got["score"], want["score"], rtol=1e-6)
    assert (want["terms"]["rank_hit/rank_penalty"] > 0).sum() == 5  # every group holds a hit: 2 + 1 + 2 wrong items


def test_killed_actor_is_restarted_and_its_shard_rescored(ray_local):
    from reward.server import RewardServer

    cfg = RewardConfig(terms=[RewardTerm("future_sim")], num_workers=2, max_restarts=1)
    ids = np.array([0, 1, 0, 1, 0, 1])
    outs = [S0, S1, S2, "<a_1><b_1>", S3, S0]
    server = RewardServer(cfg, GT, INDEX)
    want = RewardScorer(cfg, GT, INDEX).score(ids, outs)
    open(os.environ["CONREC_FAULT_REWARD_SCORE"], "w").close()  # the next actor to score dies
    got = server.score(ids, outs)
    assert not os.path.exists(os.environ["CONREC_FAULT_REWARD_SCORE"])  # the fault fired
    assert got["metrics"]["fault/reward_restarts"] == 1.0
    np.testing.assert_allclose(got["score"], want["score"], rtol=1e-6)  # same samples, once each, in order
    assert len(got["score"]) == len(ids)
    again = server.score(ids, outs)  # the restarted actor serves the next batch
    np.testing.assert_allclose(again["score"], want["score"], rtol=1e-6)


def test_scorer_errors_are_not_retried(ray_local):
    from reward.server import RewardServer

    server = RewardServer(RewardConfig(num_workers=1), GT, INDEX)
    with pytest.raises(ValueError, match="sample ids must lie"):
        server.score(np.array([0, 99]), [S0, S1])  # 99 is no training example
    assert server.restarts == 0


def test_local_ray_listens_on_loopback_only(ray_local):
    import psutil

    node = ray_local.nodes()[0]
    assert node["NodeManagerAddress"] == "127.0.0.1"
    assert ray_local.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    ours = {p.pid for p in psutil.Process().children(recursive=True)} | {os.getpid()}
    listening = [(c.pid, c.laddr.ip) for c in psutil.net_connections("inet")
                 if c.status == psutil.CONN_LISTEN and c.pid in ours]
    assert len(listening) >= 3  # GCS, raylet, workers
    assert all(ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for _, ip in listening), listening
