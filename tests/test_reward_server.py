"""The reward server on real Ray actors scores exactly as the in-process scorer."""

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
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=tmp, log_to_driver=False)
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
