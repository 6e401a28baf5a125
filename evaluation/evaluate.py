"""Evaluate a method on a split: the exact protocol of docs/EVALUATION.md, one result.

The result holds the metrics and, under "per_user", each metric's value per test user (NaN outside
its population), which the paired comparisons of evaluation/compare.py resample."""

from __future__ import annotations

import logging
import time

import numpy as np

from common.progress import progress as progress_bar
from evaluation.methods import Method
from evaluation.metrics import any_hit, candidate_accuracy, candidate_credit, item_coverage
from feedback.split import Split

log = logging.getLogger(__name__)

LUF_MAX_CONTEXT_NEG = 3  # LUF@K: users with fewer context negatives than this
LIF_MAX_TRAIN_NEG = 5  # LIF@K: targets with fewer training negatives than this


def evaluate(method: Method, split: Split, k: int = 20, batch_size: int = 256, progress: bool = True) -> dict:
    """Fit `method` on the split's training events, rank for every test user, compute the metrics."""
    test = split.test
    n = len(test)
    if n == 0:
        raise ValueError(f"{split.data.name}: no test users (no user has a negative in the future window); "
                         "lengthen horizon_days or check the feedback mapping")
    t0 = time.perf_counter()
    method.fit(split)
    t_fit = time.perf_counter() - t0
    topk = np.empty((n, k), dtype=np.int64)
    cand_scores = np.empty((n, split.config.n_candidates), dtype=np.float64)
    cands = np.stack(test["candidates"].to_list())
    bar = progress_bar(-(-n // batch_size), f"eval {method.name} ({n} users)", enabled=progress)
    for s in range(0, n, batch_size):
        rows = np.arange(s, min(s + batch_size, n))
        topk[rows] = method.recommend(rows, k)
        c = cands[rows]
        cs = method.score_candidates(rows, np.where(c >= 0, c, 0)).astype(np.float64)
        cand_scores[rows] = np.where(c >= 0, cs, -np.inf)  # -1 pads (tiny catalogues) never win
        bar.update(1)
    bar.close()

    future = test["future_neg"].to_list()
    nxt = [np.array([x]) for x in test["next_negative"].to_numpy()]
    n_ctx_neg = test["context_neg"].map(len).to_numpy()
    train_neg = split.train_negative_counts()
    rare = [f[train_neg[f] < LIF_MAX_TRAIN_NEG] for f in future]
    has_rare = np.array([len(r) > 0 for r in rare])
    hr_hits = any_hit(topk, nxt)
    fhr_hits = any_hit(topk, future)
    luf_mask = n_ctx_neg < LUF_MAX_CONTEXT_NEG
    lif_hits = any_hit(topk[has_rare], [r for r, h in zip(rare, has_rare) if h])

    def mean(x):
        return float(np.mean(x)) if len(x) else float("nan")

    # per test user, NaN where a user is outside a metric's population: what paired comparisons resample
    lif = np.full(n, np.nan)
    lif[has_rare] = lif_hits
    per_user = {
        f"HR@{k}": hr_hits.astype(np.float64),
        f"FHR@{k}": fhr_hits.astype(np.float64),
        f"LUF@{k}": np.where(luf_mask, fhr_hits, np.nan),
        f"LIF@{k}": lif,
        "CandAcc": candidate_credit(cand_scores),
    }

    metrics = {
        f"HR@{k}": mean(hr_hits),
        f"FHR@{k}": mean(fhr_hits),
        f"LUF@{k}": mean(fhr_hits[luf_mask]),
        f"LIF@{k}": mean(lif_hits),
        "CandAcc": candidate_accuracy(cand_scores),
        f"Coverage@{k}": item_coverage(topk, split.n_items),
    }
    return {
        "dataset": split.data.name,
        "method": method.name,
        "k": k,
        "n_test_users": int(n),
        "metrics": metrics,
        "subsets": {"n_luf_users": int(luf_mask.sum()), "n_lif_users": int(has_rare.sum())},
        "split": split.describe(),
        "timing": {"fit_s": round(t_fit, 3), "total_s": round(time.perf_counter() - t0, 3)},
        "per_user": per_user,
    }


def one_line(result: dict) -> str:
    """`method  n  HR@K  FHR@K ...` for terminals."""
    m = result["metrics"]
    head = f"{'method':<10} {'users':>6} " + " ".join(f"{key:>11}" for key in m)
    row = f"{result['method']:<10} {result['n_test_users']:>6} " + " ".join(f"{v:>11.4f}" for v in m.values())
    return head + "\n" + row
