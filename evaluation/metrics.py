"""Ranking metrics of docs/EVALUATION.md as small pure functions over top-K lists and target sets.

All take `topk`, an int array [N, K] of item indices (-1 pads a list shorter than K, e.g. a generated
code that maps to no item: it can never hit), and per-user target arrays.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def any_hit(topk: np.ndarray, targets: Sequence[np.ndarray]) -> np.ndarray:
    """bool[N]: whether row n of `topk` contains any item of targets[n]."""
    topk = np.asarray(topk)
    if len(targets) != len(topk):
        raise ValueError(f"any_hit: {len(topk)} top-K rows but {len(targets)} target sets")
    return np.array([bool(np.isin(row[row >= 0], t).any()) for row, t in zip(topk, targets)], dtype=bool)


def hit_rate(topk: np.ndarray, targets: Sequence[np.ndarray], mask: np.ndarray | None = None) -> float:
    """Share of users (optionally only where `mask`) whose top-K holds a target. NaN on no users."""
    hits = any_hit(topk, targets)
    if mask is not None:
        hits = hits[np.asarray(mask, dtype=bool)]
    return float(hits.mean()) if len(hits) else float("nan")


def candidate_credit(scores: np.ndarray, true_col: int = 0) -> np.ndarray:
    """Per row: 1 when the true candidate (column `true_col`) ranks first, else 0.

    Ties at the top are credited 1 / (number tied), the expected accuracy of a random tie-break,
    so a method that scores everything equal gets chance level rather than 0 or 1.
    """
    scores = np.asarray(scores, dtype=np.float64)
    top = scores.max(axis=1)
    true = scores[:, true_col]
    n_top = (scores == top[:, None]).sum(axis=1)
    return np.where(true == top, 1.0 / n_top, 0.0)


def candidate_accuracy(scores: np.ndarray, true_col: int = 0) -> float:
    """Share of rows where the true candidate ranks first (mean of `candidate_credit`)."""
    credit = candidate_credit(scores, true_col)
    return float(credit.mean()) if len(credit) else float("nan")


def item_coverage(topk: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one top-K list."""
    topk = np.asarray(topk)
    return float(len(np.unique(topk[topk >= 0])) / n_items) if n_items else float("nan")
