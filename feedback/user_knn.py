"""Item-level user-kNN: the negatives of the training users whose items look most like the query's.

Each user is a sparse profile over items: their negatives and, weighted by `pos_weight`, their positives (the
whole profile L2-normalised, so a user's similarity counts shared items of either kind). A query (a user's
context) finds its `k` most similar training users by the dot product of profiles, and an item scores the
similarity-weighted count of those neighbours who disliked it.

Why beside Swing: Swing relates items through users who disliked both; this relates users through everything
they reacted to, positives included, so it reaches a user's dislikes through what they liked. On MovieLens-100k
validation users it is far above Swing (docs/BENCHMARKS.md, "An item-level user-kNN target"). `reward.ground_truth`
adds its top items to a GTS (`grpo.reward.user_knn_n`); `conrec eval --method user_knn` runs it as a baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from feedback.category_knn import nearest
from feedback.split import Split
from feedback.swing import user_item_matrix


@dataclass
class UserKnnConfig:
    """Parameters of the item-level user-kNN (defaults: 100 neighbours, positives weighed like negatives)."""

    k: int = 100
    """Most similar training users whose negatives vote."""
    pos_weight: float = 1.0
    """Weight of the positives' part of a profile beside the negatives' (0 = negatives only)."""
    block_bytes: int = 1 << 27
    """Memory for one block of query × user similarities (queries are scored in blocks of this size)."""


def _unit_rows(X: sp.csr_matrix) -> sp.csr_matrix:
    norm = np.sqrt(np.asarray(X.multiply(X).sum(1)).ravel())
    return sp.csr_matrix(sp.diags(1.0 / np.maximum(norm, 1e-12)) @ X)


class UserKnn:
    """Fitted on a split's training events; `item_scores` scores the catalogue for a batch of contexts."""

    def __init__(self, split: Split, cfg: UserKnnConfig | None = None):
        self.cfg = cfg = cfg or UserKnnConfig()
        if cfg.k < 1 or cfg.pos_weight < 0:
            raise ValueError(f"user kNN: k={cfg.k} must be ≥ 1 and pos_weight={cfg.pos_weight} ≥ 0")
        tr = split.train
        self.n_items = N = split.n_items
        U = split.data.n_users

        def matrix(fb: int) -> sp.csr_matrix:
            d = tr[tr["fb"] == fb]
            return user_item_matrix(d["uidx"].to_numpy(), d["iidx"].to_numpy(), U, N).astype(np.float64).tocsr()

        self.neg = matrix(-1)
        self.profiles = self._profile(self.neg, matrix(1))

    def _profile(self, neg: sp.csr_matrix, pos: sp.csr_matrix) -> sp.csr_matrix:
        return _unit_rows(sp.hstack([neg, self.cfg.pos_weight * pos]).tocsr())

    def query_profiles(self, ctx_items: list, ctx_fb: list) -> sp.csr_matrix:
        """Profiles of contexts given as per-query arrays of item indices and feedback (-1 / 0 / 1)."""
        def part(fb_value: int) -> sp.csr_matrix:
            rows, cols = [], []
            for r, (it, fb) in enumerate(zip(ctx_items, ctx_fb)):
                it = np.unique(np.asarray(it, np.int64)[np.asarray(fb) == fb_value])
                rows.append(np.full(len(it), r))
                cols.append(it)
            rows = np.concatenate(rows) if rows else np.empty(0, np.int64)
            cols = np.concatenate(cols) if cols else np.empty(0, np.int64)
            return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(ctx_items), self.n_items))

        return self._profile(part(-1), part(1))

    def item_scores(self, ctx_items: list, ctx_fb: list, exclude_users: np.ndarray | None = None) -> np.ndarray:
        """float[B, N]: per query, Σ over its k nearest users of similarity × (1 if they disliked the item).
        `exclude_users[b]`: a training user (uidx) never taken as b's neighbour (the query's own), or -1."""
        Q = self.query_profiles(ctx_items, ctx_fb)
        B, U = Q.shape[0], self.profiles.shape[0]
        k = min(self.cfg.k, max(U - 1, 1))
        out = np.empty((B, self.n_items))
        step = max(1, self.cfg.block_bytes // (8 * max(U, self.n_items, 1)))
        for s in range(0, B, step):
            S = (Q[s:s + step] @ self.profiles.T).toarray()
            top, w = nearest(S, None if exclude_users is None else exclude_users[s:s + step], k)
            W = sp.csr_matrix((w.ravel(), (np.repeat(np.arange(len(w)), k), top.ravel())), shape=(len(w), U))
            out[s:s + step] = (W @ self.neg).toarray()
        return out
