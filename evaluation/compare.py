"""Paired comparisons of evaluated methods over their test users (statistics in common/stats.py)."""

from __future__ import annotations

import numpy as np

from common.stats import bootstrap_ci, paired_diff, verdict

__all__ = ["bootstrap_ci", "paired_diff", "verdict", "compare_methods"]


def compare_methods(per_user: dict[str, dict[str, np.ndarray]], against: list[str], metrics: list[str],
                    n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> dict:
    """{baseline: {method: {metric: paired_diff}}} for every method against each baseline present."""
    out: dict = {}
    for base in against:
        if base not in per_user:
            continue
        out[base] = {}
        for name, pu in per_user.items():
            if name == base:
                continue
            out[base][name] = {m: paired_diff(pu[m], per_user[base][m], n_boot, confidence, seed) for m in metrics
                               if m in pu and m in per_user[base]}
    return out
