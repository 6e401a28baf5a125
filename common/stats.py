"""Bootstrap statistics over users: is a difference between two models more than noise?

Every method is evaluated on the same test users, so the honest comparison is *paired*: resample
users with replacement (the same draw for both methods) and look at the spread of the difference of
means. Per-user values are NaN outside a metric's population (LUF users, LIF users); a draw averages
over the users of the population it contains, as the metric itself does.
"""

from __future__ import annotations

import numpy as np


def bootstrap_ci(values: np.ndarray, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> dict:
    """Mean of `values` (NaN ignored) and its percentile bootstrap CI over users."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}
    idx = np.random.default_rng(seed).integers(0, len(v), (n_boot, len(v)))
    means = v[idx].mean(1)
    a = (1 - confidence) / 2
    return {"mean": float(v.mean()), "lo": float(np.quantile(means, a)), "hi": float(np.quantile(means, 1 - a)),
            "n": int(len(v))}


def paired_diff(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> dict:
    """mean(a) − mean(b) over the users where both are defined, with a paired percentile bootstrap CI.

    Returns {"diff", "lo", "hi", "n", "rel"}: `rel` is diff / mean(b) (NaN when mean(b) is 0).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_diff: per-user arrays differ in shape {a.shape} vs {b.shape} (not the same users)")
    keep = ~(np.isnan(a) | np.isnan(b))
    d = a[keep] - b[keep]
    if len(d) == 0:
        return {"diff": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0, "rel": float("nan")}
    idx = np.random.default_rng(seed).integers(0, len(d), (n_boot, len(d)))
    means = d[idx].mean(1)
    q = (1 - confidence) / 2
    base = float(b[keep].mean())
    return {"diff": float(d.mean()), "lo": float(np.quantile(means, q)), "hi": float(np.quantile(means, 1 - q)),
            "n": int(len(d)), "rel": float(d.mean() / base) if base else float("nan")}


def turnover(before: np.ndarray, after: np.ndarray) -> dict:
    """Per-user hit indicators (e.g. FHR@K) of one model before and after a change: the share of users it
    turned from miss to hit (`gained`) and from hit to miss (`lost`), over the users defined in both. The net
    change is gained − lost; a small net over a large turnover is a reshuffle, not a better model."""
    b, a = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    keep = ~(np.isnan(a) | np.isnan(b))
    b, a = b[keep] > 0, a[keep] > 0
    n = max(len(a), 1)
    return {"gained": float((a & ~b).sum() / n), "lost": float((b & ~a).sum() / n), "n": int(len(a))}


def verdict(c: dict) -> str:
    """'better' / 'worse' when the CI excludes 0, else 'tie (within noise)'."""
    if c["lo"] > 0:
        return "better"
    if c["hi"] < 0:
        return "worse"
    return "tie (within noise)"
