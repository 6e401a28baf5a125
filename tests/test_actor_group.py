"""ActorGroup on real Ray actors: results in actor order, a killed actor's shard redone once (the others kept),
a lost actor with no restarts ends the call at once, a method's own error surfaces, a deadline holds."""

import os
import tempfile

import pytest

from common.actor_group import ActorGroup, ActorLost

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def ray_local():
    import ray

    from cluster.ray_local import init_local_ray

    init_local_ray(2, prefix="cr_ag_")
    yield ray
    ray.shutdown()


def _workers(ray, n, max_restarts):
    @ray.remote(num_cpus=0, max_restarts=max_restarts, max_task_retries=0)
    class Worker:
        def __init__(self):
            self.calls = 0

        def ready(self):
            return True

        def work(self, x, die_flag="", sleep=0.0):
            import time

            self.calls += 1
            if die_flag and os.path.exists(die_flag):
                os.unlink(die_flag)
                os._exit(17)  # a process death, as an OOM kill would
            if x < 0:
                raise ValueError(f"bad shard {x}")
            time.sleep(sleep)
            return [x, x * 10]

    return [Worker.remote() for _ in range(n)]


def test_results_in_actor_order_and_empty_shards_skipped(ray_local):
    g = ActorGroup("worker", _workers(ray_local, 3, 0))
    assert g.call("work", [(1, "", 0.3), None, (3,)]) == [[1, 10], [3, 30]]  # the slow one first, still


def test_killed_actor_is_restarted_and_only_its_shard_redone(ray_local):
    flag = os.path.join(tempfile.mkdtemp(), "die")
    open(flag, "w").close()
    g = ActorGroup("worker", _workers(ray_local, 2, 1), max_restarts=1, restart_timeout_s=60)
    restarted = []
    out = g.call("work", [(1,), (2, flag)], on_restart=lambda i, e: restarted.append(i))
    assert out == [[1, 10], [2, 20]] and restarted == [1] and not os.path.exists(flag)


def test_lost_actor_without_restarts_ends_the_call(ray_local):
    flag = os.path.join(tempfile.mkdtemp(), "die")
    open(flag, "w").close()
    g = ActorGroup("learner rank", _workers(ray_local, 2, 0))
    with pytest.raises(ActorLost, match="learner rank 0 was lost during work") as e:
        g.call("work", [(1, flag), (2, "", 30.0)])  # rank 1 is still busy: the call does not wait for it
    assert e.value.index == 0


def test_method_errors_surface_and_deadlines_hold(ray_local):
    import ray

    g = ActorGroup("worker", _workers(ray_local, 2, 1), max_restarts=1)
    with pytest.raises(ray.exceptions.RayTaskError, match="bad shard -1"):
        g.call("work", [(1,), (-1,)])
    with pytest.raises(ray.exceptions.GetTimeoutError, match="not done within 0.5s"):
        g.call("work", [(1, "", 5.0), (2,)], timeout_s=0.5)


def test_gcs_view_of_actors(ray_local):
    """The driver asks the GCS which actors are alive through Ray's private state API (cluster/driver.py,
    _not_alive); this fails loudly if a Ray upgrade moves or changes it."""
    import ray

    from cluster.driver import _not_alive

    ws = _workers(ray_local, 2, 0)
    ray.get([w.ready.remote() for w in ws])
    assert _not_alive(ws, grace_s=0.0) == []
    ray.kill(ws[1], no_restart=True)
    assert _not_alive(ws, grace_s=10.0) == [1]
