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
        self.path = run / "metrics.jsonl"
        self.f = open(self.path, "a" if append else "w")
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

    def truncate(self, step: int) -> None:
        """Drop the rows after `step` (a run resumed from a checkpoint replays those steps; the JSONL keeps
        one row per step). TensorBoard keeps its events; it draws the replayed steps over them."""
        if not self.enabled:
            return
        from common.atomic import write_text_atomic

        self.f.close()
        rows = [ln for ln in self.path.read_text().splitlines() if _step_of(ln) <= step]
        write_text_atomic("".join(r + "\n" for r in rows), self.path)
        self.f = open(self.path, "a")

    def close(self) -> None:
        if self.enabled:
            self.f.close()
            self.tb.close()


def _step_of(line: str) -> float:
    """A row's step; a line cut short by a killed process counts as past every step (dropped)."""
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return float("inf")


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
