"""Category-level user-kNN: which items users with the same taste profile dislike.

Each user is a profile over item categories: the histogram of the categories of their training negatives and,
weighted by `pos_weight`, of their positives (each part L2-normalised, an item in several categories counting
1/m in each). A query (a user's context) finds its `k` most similar training users by the dot product of
profiles; their negatives' category shares, averaged with the similarities as weights, give a score per
category, and an item scores the sum over its categories times its exposure (its share of the logged events).

Why: where dislikes follow a taste profile (a user who dislikes A and likes B tends to dislike C), the signal
lives at the category level and reaches categories the context never shows, which item co-occurrence (Swing)
cannot. On the demo's simulator (1,000 users, 500 items) this scorer is far above Swing and the SFT model on
validation users (docs/BENCHMARKS.md, "A category-level collaborative target"); on MovieLens-100k genres carry
little of it. `reward.ground_truth` adds its top items to a GTS (`grpo.reward.category_n`), and
`conrec eval --method category_knn` runs it as a baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from feedback.split import Split


@dataclass
class CategoryKnnConfig:
    """Parameters of the category-level user-kNN (defaults: 50 neighbours, positives weighed like negatives)."""

    k: int = 50
    """Most similar training users whose negatives vote."""
    pos_weight: float = 1.0
    """Weight of the positives' category profile beside the negatives' in the similarity (0 = negatives only)."""
    column: str = ""
    """Item column with the category ('a|b' for several); '' = the dataset's first category column."""
    block_bytes: int = 1 << 27
    """Memory for one block of query × user similarities (queries are scored in blocks of this size)."""


GTS_FIX = "Name one with grpo.reward.category_knn.column, or leave grpo.reward.category_n at 0"


def _column(data, column: str) -> str:
    return column or (data.category_columns[0] if data.category_columns else "")


def has_category_column(data, column: str = "") -> bool:
    """Whether `category_column` finds a column to read (`column`, else the dataset's first category column)."""
    column = _column(data, column)
    return bool(column) and column in data.items.columns


def category_column(data, column: str = "", fix: str = GTS_FIX) -> str:
    """The item column the kNN reads: `column`, else the dataset's first category column; a clear error if none
    (`fix`: how the user who asked for the kNN turns it off or points it at a column)."""
    column = _column(data, column)
    if not has_category_column(data, column):
        raise ValueError(
            f"category kNN needs an item category column; {data.name} has "
            f"{'none' if not column else f'no column {column!r}'} (item columns: {list(data.items.columns)}). "
            + fix)
    return column


def category_matrix(items, column: str) -> tuple[np.ndarray, list[str]]:
    """Items × categories: 1/m in each of an item's m categories ('|'-separated values), and the category names."""
    lists = [[c for c in str(v).split("|") if c] if v == v else [] for v in items[column].tolist()]
    names = sorted({c for cs in lists for c in cs})
    col = {c: j for j, c in enumerate(names)}
    G = np.zeros((len(lists), len(names)))
    for r, cs in enumerate(lists):
        for c in cs:
            G[r, col[c]] = 1.0 / len(cs)
    return G, names


def nearest(S: np.ndarray, exclude: np.ndarray | None, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a query × user similarity block: the k most similar users (`exclude[b]` ≥ 0 never among them)
    and their similarities, negatives clipped to 0 (a dissimilar user gets no vote). `S` is modified."""
    if exclude is not None:
        ex = np.asarray(exclude, np.int64)
        ok = ex >= 0
        S[np.flatnonzero(ok), ex[ok]] = -np.inf
    top = np.argpartition(-S, k - 1, axis=1)[:, :k]
    return top, np.maximum(np.take_along_axis(S, top, 1), 0.0)


def _unit_rows(X: np.ndarray) -> np.ndarray:
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


class CategoryKnn:
    """Fitted on a split's training events; `item_scores` scores the catalogue for a batch of contexts."""

    def __init__(self, split: Split, cfg: CategoryKnnConfig | None = None):
        self.cfg = cfg = cfg or CategoryKnnConfig()
        if cfg.k < 1 or cfg.pos_weight < 0:
            raise ValueError(f"category kNN: k={cfg.k} must be ≥ 1 and pos_weight={cfg.pos_weight} ≥ 0")
        d = split.data
        self.column = column = category_column(d, cfg.column)
        self.G, self.categories = category_matrix(d.items, column)
        tr = split.train
        u, i, f = (tr[c].to_numpy(np.int64) for c in ("uidx", "iidx", "fb"))
        U, N = d.n_users, split.n_items
        self.neg_hist = np.zeros((U, len(self.categories)))
        np.add.at(self.neg_hist, u[f == -1], self.G[i[f == -1]])
        pos_hist = np.zeros_like(self.neg_hist)
        np.add.at(pos_hist, u[f == 1], self.G[i[f == 1]])
        self.profiles = self._profile(self.neg_hist, pos_hist)
        self.neg_share = self.neg_hist / np.maximum(self.neg_hist.sum(1, keepdims=True), 1e-12)
        expo = np.bincount(i, minlength=N).astype(np.float64)
        self.exposure = expo / max(expo.max(), 1.0)
        self.member = (self.G > 0).astype(np.float64)

    def _profile(self, neg_hist: np.ndarray, pos_hist: np.ndarray) -> np.ndarray:
        return np.hstack([_unit_rows(neg_hist), self.cfg.pos_weight * _unit_rows(pos_hist)])

    def query_profiles(self, ctx_items: list, ctx_fb: list) -> np.ndarray:
        """Profiles of contexts given as per-query arrays of item indices and feedback (-1 / 0 / 1)."""
        C = len(self.categories)
        neg, pos = np.zeros((len(ctx_items), C)), np.zeros((len(ctx_items), C))
        for r, (it, fb) in enumerate(zip(ctx_items, ctx_fb)):
            it, fb = np.asarray(it, np.int64), np.asarray(fb)
            neg[r] = self.G[it[fb == -1]].sum(0)
            pos[r] = self.G[it[fb == 1]].sum(0)
        return self._profile(neg, pos)

    def item_scores(self, ctx_items: list, ctx_fb: list, exclude_users: np.ndarray | None = None) -> np.ndarray:
        """float[B, N]: per query, Σ over its categories of the neighbours' negative share, times exposure.
        `exclude_users[b]`: a training user (uidx) never taken as b's neighbour (the query's own), or -1."""
        Q = self.query_profiles(ctx_items, ctx_fb)
        B, U = len(Q), len(self.profiles)
        k = min(self.cfg.k, max(U - 1, 1))
        out = np.empty((B, self.G.shape[0]))
        step = max(1, self.cfg.block_bytes // (8 * max(U, 1)))
        for s in range(0, B, step):
            S = Q[s:s + step] @ self.profiles.T
            top, w = nearest(S, None if exclude_users is None else exclude_users[s:s + step], k)
            cat = np.einsum("bk,bkc->bc", w, self.neg_share[top]) / np.maximum(w.sum(1, keepdims=True), 1e-12)
            out[s:s + step] = (cat @ self.member.T) * self.exposure
        return out
