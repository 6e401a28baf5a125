"""Starting a Ray of our own (no cluster address given): loopback-only, own temp dir, no dashboard.

Every Ray port this starts (GCS, raylet, object manager, workers) binds to the node address, and
Ray maps a requested 127.0.0.1 to the machine's routable IP unless it runs as a single-machine
"non-cluster" Ray (its default on macOS and Windows, `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`). For a
loopback `host` (the default, topology.bind_host) that mode is switched on, so a run on a shared
machine exposes nothing; any other host (e.g. the node's IP) is passed through. The temp dir is
short because Ray's unix sockets cap at 107 characters.
"""

from __future__ import annotations

import logging
import os
import tempfile

log = logging.getLogger(__name__)


def init_local_ray(num_cpus: int, host: str = "127.0.0.1", log_to_driver: bool = False, prefix: str = "cr_"):
    import ray
    from ray._private import ray_constants

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    loopback = host in ("127.0.0.1", "localhost", "::1")
    # read at import by Ray's processes (env, inherited) and already imported here (the constant)
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0" if loopback else "1"
    ray_constants.ENABLE_RAY_CLUSTER = not loopback
    # a quiet run (workers' output to RUN/logs) keeps Ray's own INFO lines ("Started a local Ray instance") off too
    return ray.init(num_cpus=num_cpus, include_dashboard=False, dashboard_host=host, _node_ip_address=host,
                    log_to_driver=log_to_driver, logging_level=logging.INFO if log_to_driver else logging.WARNING,
                    _temp_dir=tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def descendants() -> set[int]:
    import psutil

    return {c.pid for c in psutil.Process().children(recursive=True)}


def shutdown_local_ray(before: set[int], grace_s: float = 10.0) -> None:
    """`ray.shutdown()`, then SIGKILL to any process this one started since `before` (a `descendants()` taken
    before `init_local_ray`) that outlives it. Interrupted inside `ray.init`, Ray does not yet know its own
    node, and its raylet's agents (dashboard, runtime env) outlive the driver, orphaned, for good."""
    import psutil
    import ray

    ours = []
    for pid in descendants() - before:
        try:
            ours.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    ray.shutdown()
    _, alive = psutil.wait_procs(ours, timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    if alive:
        log.warning("killed %d Ray process(es) that outlived ray.shutdown()", len(alive))
