"""Entry point for `ray job submit --working-dir . -- python -m cluster.launch --config FILE [overrides]`:
the same run, attached to the cluster that runs the job (topology.ray_address=auto)."""

from __future__ import annotations

import sys

from cluster.run import main

if __name__ == "__main__":
    sys.exit(main([*sys.argv[1:], "topology.ray_address=auto"]))
