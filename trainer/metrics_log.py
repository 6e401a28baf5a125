"""Metrics to JSONL (one object per step) and TensorBoard, from rank 0 only."""

from __future__ import annotations

import json
from pathlib import Path


class MetricsLog:
    def __init__(self, run_dir: str | Path, enabled: bool = True, append: bool = False):
        self.enabled = enabled
        self.last: dict = {}
        if not enabled:
            return
        run = Path(run_dir)
        run.mkdir(parents=True, exist_ok=True)
        self.f = open(run / "metrics.jsonl", "a" if append else "w")
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(run / "tensorboard"))

    def log(self, step: int, metrics: dict) -> None:
        self.last.update(metrics)
        if not self.enabled:
            return
        self.f.write(json.dumps({"step": step, **metrics}) + "\n")
        self.f.flush()
        for k, v in metrics.items():
            self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.enabled:
            self.f.close()
            self.tb.close()


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
