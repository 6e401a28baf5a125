"""Starting a Ray of our own (no cluster address given): loopback-only, own temp dir, no dashboard.

Every Ray port this starts (GCS, raylet, object manager, workers) binds to `host`, 127.0.0.1 by
default, so a run on a shared machine exposes nothing; pass '0.0.0.0' (topology.bind_host) to open
it. The temp dir is short because Ray's unix sockets cap at 107 characters.
"""

from __future__ import annotations

import os
import tempfile


def init_local_ray(num_cpus: int, host: str = "127.0.0.1", log_to_driver: bool = False, prefix: str = "cr_"):
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    return ray.init(num_cpus=num_cpus, include_dashboard=False, dashboard_host=host, _node_ip_address=host,
                    log_to_driver=log_to_driver, _temp_dir=tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
