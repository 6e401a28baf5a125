"""Per-example reward ground truth, built once per dataset and stored with the examples.

GTS (ground-truth set) = the example's negatives within the horizon ∪ the top-n Swing neighbours of
its context negatives (Swing on the negative-feedback graph of the training events), and optionally
∪ the top-n Swing neighbours of its future negatives, and optionally ∪ the top-n items of a category-level
user-kNN for its context (feedback/category_knn.py) and of an item-level one (feedback/user_knn.py).
FPS = its positives within the horizon. Sets
are packed as CSR arrays (indptr + item indices), which is what the reward actors receive once
through the object store. A GTS may carry a weight per item (`gts_weights`): with
`weighting="swing_score"`, a future negative weighs 1 and a neighbour its Swing score over the
example's best neighbour score, so the hit rewards pay most for the strongest collaborative signal.
With `weighting="inverse_pop"`, every GTS item weighs min(1, √((m + 1) / (c + 1))), c its count of training
negatives and m the median count of the items that have any: a hit on an item most users dislike pays less,
one on a rarer item the full reward (square-root inverse propensity, capped so rare items never pay more
than a plain hit).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from feedback.category_knn import CategoryKnn
from feedback.split import Split
from feedback.swing import SwingConfig, swing_similarity
from feedback.user_knn import UserKnn


@dataclass
class GroundTruth:
    """Packed ground truth for n samples; row i belongs to sample id i."""

    gts_indptr: np.ndarray
    gts_items: np.ndarray
    fps_indptr: np.ndarray
    fps_items: np.ndarray
    next_negative: np.ndarray
    gts_weights: np.ndarray | None = None
    """Weight of each GTS item (aligned with gts_items); None: every item weighs 1."""

    def __len__(self) -> int:
        return len(self.next_negative)

    def gts(self, i: int) -> np.ndarray:
        return self.gts_items[self.gts_indptr[i]:self.gts_indptr[i + 1]]

    def fps(self, i: int) -> np.ndarray:
        return self.fps_items[self.fps_indptr[i]:self.fps_indptr[i + 1]]

    def weights(self, i: int) -> np.ndarray:
        s, e = self.gts_indptr[i], self.gts_indptr[i + 1]
        return np.ones(e - s, np.float32) if self.gts_weights is None else self.gts_weights[s:e]

    @staticmethod
    def from_lists(gts: list, fps: list, next_negative, gts_weights: list | None = None) -> "GroundTruth":
        def pack(sets, dtype=np.int64):
            lens = np.array([len(s) for s in sets], dtype=np.int64)
            items = np.concatenate([np.asarray(s, dtype=dtype) for s in sets]) if len(sets) else np.empty(0, dtype)
            return np.r_[0, np.cumsum(lens)].astype(np.int64), items.astype(dtype)

        gi, g = pack(gts)
        fi, f = pack(fps)
        w = None
        if gts_weights is not None:
            wi, w = pack(gts_weights, np.float32)
            if not np.array_equal(wi, gi):
                raise ValueError("GTS weights must have one weight per GTS item, example by example")
        return GroundTruth(gi, g, fi, f, np.asarray(next_negative, dtype=np.int64), w)

    def to_frame(self) -> pd.DataFrame:
        cols = {"gts": [self.gts(i) for i in range(len(self))], "fps": [self.fps(i) for i in range(len(self))],
                "next_negative": self.next_negative}
        if self.gts_weights is not None:
            cols["gts_weights"] = [self.weights(i) for i in range(len(self))]
        return pd.DataFrame(cols)

    @staticmethod
    def from_frame(df: pd.DataFrame) -> "GroundTruth":
        for col in ("gts", "fps", "next_negative"):
            if col not in df.columns:
                raise ValueError(f"ground-truth table lacks column {col!r}; build it with reward.ground_truth")
        w = list(df["gts_weights"]) if "gts_weights" in df.columns else None
        return GroundTruth.from_lists(list(df["gts"]), list(df["fps"]), df["next_negative"].to_numpy(), w)


WEIGHTINGS = ("flat", "swing_score", "inverse_pop")


def transition_scores(split: Split, horizon_days: float | None = None) -> sp.csr_matrix:
    """Item × item: P(j is disliked within the horizon after i is disliked), over training users. C[i, j] counts
    the users with a negative on j within `horizon_days` (the split's horizon) after a negative on i (each user
    once per pair), divided by the users with a negative on i. A directed, time-ordered collaborative signal,
    where Swing's is symmetric co-occurrence over whole histories."""
    from feedback.split import DAY

    h = int(round((horizon_days or split.config.horizon_days) * DAY))
    neg = split.train[split.train["fb"] == -1].sort_values(["uidx", "timestamp"], kind="stable")
    u, it, ts = (neg[c].to_numpy(np.int64) for c in ("uidx", "iidx", "timestamp"))
    bounds = np.flatnonzero(np.r_[True, u[1:] != u[:-1], True])
    src, dst, usr = [], [], []
    for a, b in zip(bounds[:-1], bounds[1:]):
        t = ts[a:b]
        lo = np.searchsorted(t, t, side="right")  # strictly later events only
        hi = np.searchsorted(t, t + h, side="right")
        n = hi - lo
        if not n.sum():
            continue
        i = np.repeat(np.arange(b - a), n)
        j = np.repeat(lo - np.r_[0, np.cumsum(n)[:-1]], n) + np.arange(n.sum())
        src.append(it[a:b][i])
        dst.append(it[a:b][j])
        usr.append(np.full(len(i), u[a]))
    N = split.n_items
    if not src:
        return sp.csr_matrix((N, N))
    key = np.unique(np.stack([np.concatenate(usr), np.concatenate(src), np.concatenate(dst)]), axis=1)
    keep = key[1] != key[2]
    C = sp.csr_matrix((np.ones(int(keep.sum())), (key[1][keep], key[2][keep])), shape=(N, N))
    users_of = np.asarray((split.negative_matrix() > 0).sum(0)).ravel().astype(np.float64)
    return sp.csr_matrix(sp.diags(1.0 / np.maximum(users_of, 1.0)) @ C)


def _top_neighbours(scores: sp.csr_matrix, r: int, exclude: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row r's n best-scored items outside `exclude` (ties by item index), with their scores."""
    s, e = scores.indptr[r], scores.indptr[r + 1]
    cand, val = scores.indices[s:e], scores.data[s:e]
    keep = ~np.isin(cand, exclude)
    cand, val = cand[keep], val[keep]
    top = np.lexsort((cand, -val))[:n] if n else np.empty(0, np.int64)
    return cand[top].astype(np.int64), val[top]


def _query(lists, n: int, n_items: int) -> sp.csr_matrix:
    """Rows = examples, a 1 at each item of the example's list."""
    rows = np.repeat(np.arange(n), [len(x) for x in lists])
    cols = np.concatenate([np.asarray(x, dtype=np.int64) for x in lists]) if n else np.empty(0, np.int64)
    Q = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n_items))
    Q.data[:] = 1.0  # an item listed twice counts once
    return Q


def context_neighbours(examples: pd.DataFrame, similarity: sp.csr_matrix, n: int
                       ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per example, the `n` items with the largest summed Swing score over its context negatives (outside
    them), best first, with their scores: the collaborative part of its GTS."""
    ctx_neg = [i[f == -1] for i, f in zip(examples["ctx_items"], examples["ctx_fb"])]
    scores = (_query(ctx_neg, len(examples), similarity.shape[0]) @ similarity).tocsr()
    return [_top_neighbours(scores, r, np.unique(c), n) for r, c in enumerate(ctx_neg)]


def knn_targets(examples: pd.DataFrame, knn, n: int, block: int = 1024) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per example, the `n` best items of a user-kNN (feedback/category_knn.py, feedback/user_knn.py: anything with
    `item_scores(ctx_items, ctx_fb, exclude_users)`) for its context, outside the context, best first, with their
    scores; its own user is never its neighbour."""
    out = []
    for s in range(0, len(examples), block):
        part = examples.iloc[s:s + block]
        ctx_items, ctx_fb = list(part["ctx_items"]), list(part["ctx_fb"])
        scores = knn.item_scores(ctx_items, ctx_fb, part["uidx"].to_numpy(np.int64))
        for row, items in zip(scores, ctx_items):
            row[np.asarray(items, np.int64)] = 0.0
            cand = np.flatnonzero(row > 0)
            top = cand[np.lexsort((cand, -row[cand]))[:n]]
            out.append((top.astype(np.int64), row[top]))
    return out


def popularity_weights(neg_counts: np.ndarray) -> np.ndarray:
    """Per item: min(1, √((m + 1) / (c + 1))), c = its training negatives, m = the median c over items with c > 0."""
    c = np.asarray(neg_counts, dtype=np.float64)
    m = float(np.median(c[c > 0])) if (c > 0).any() else 0.0
    return np.minimum(1.0, np.sqrt((m + 1.0) / (c + 1.0))).astype(np.float32)


def build_ground_truth(examples: pd.DataFrame, split: Split, swing_n: int = 50,
                       swing: SwingConfig | None = None, similarity: sp.csr_matrix | None = None,
                       future_swing_n: int = 0, weighting: str = "flat", transition_n: int = 0,
                       transitions: sp.csr_matrix | None = None, neg_counts: np.ndarray | None = None,
                       category_n: int = 0, category_knn: "CategoryKnn | None" = None, user_knn_n: int = 0,
                       user_knn: "UserKnn | None" = None) -> GroundTruth:
    """GTS/FPS for every training example (rows of `feedback.split.training_examples`). `similarity`: the
    split's Swing matrix when the caller already has it (examples built in chunks share one).
    `future_swing_n`: Swing neighbours of the example's future negatives also join its GTS. `weighting`:
    "flat" (no weights), "swing_score" or "inverse_pop" (see the module docstring; `neg_counts`: the items'
    training negative counts, from the split when not given). `transition_n`: the items most likely to
    be disliked next after the context negatives (`transition_scores`, passed as `transitions` when built)
    also join the GTS. `category_n`: the best items of the category-level user-kNN for the example's context
    (`knn_targets`; `category_knn` when already fitted) also join it; `user_knn_n` likewise for the item-level
    user-kNN (`user_knn`)."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"GTS weighting {weighting!r} is unknown; use one of {WEIGHTINGS}")
    S = similarity if similarity is not None else swing_similarity(split.negative_matrix(), swing or SwingConfig())
    n = len(examples)
    ctx_neg = [i[f == -1] for i, f in zip(examples["ctx_items"], examples["ctx_fb"])]
    neighbours = context_neighbours(examples, S, swing_n)
    # one sparse product for all examples: rows = examples, columns = their future negatives
    fscores = (_query(list(examples["future_neg"]), n, split.n_items) @ S).tocsr() if future_swing_n else None
    if transition_n:
        T = transitions if transitions is not None else transition_scores(split)
        tscores = (_query(ctx_neg, n, split.n_items) @ T).tocsr()
    if category_n:
        cat_targets = knn_targets(examples, category_knn if category_knn is not None else CategoryKnn(split),
                                  category_n)
    if user_knn_n:
        user_targets = knn_targets(examples, user_knn if user_knn is not None else UserKnn(split), user_knn_n)
    if weighting == "inverse_pop":
        pop_w = popularity_weights(neg_counts if neg_counts is not None else split.train_negative_counts())
    gts, fps, weights = [], [], []
    for r, (fneg, fpos) in enumerate(zip(examples["future_neg"], examples["future_pos"])):
        fneg = np.unique(np.asarray(fneg, dtype=np.int64))
        parts = [(fneg, np.ones(len(fneg)))]
        own = np.unique(ctx_neg[r])
        parts.append(neighbours[r])
        if fscores is not None:
            parts.append(_top_neighbours(fscores, r, np.union1d(own, fneg), future_swing_n))
        if transition_n:
            parts.append(_top_neighbours(tscores, r, own, transition_n))
        if category_n:
            parts.append(cat_targets[r])
        if user_knn_n:
            parts.append(user_targets[r])
        u, inv = np.unique(np.concatenate([p[0] for p in parts]), return_inverse=True)
        gts.append(u)
        if weighting == "swing_score":
            # each neighbour list is scaled by its own best score; an item in several lists keeps its largest weight
            w = np.concatenate([p[1] / p[1].max() if len(p[1]) and p[1].max() > 0 else p[1] for p in parts])
            wu = np.zeros(len(u))
            np.maximum.at(wu, inv.ravel(), w)
            weights.append(wu.astype(np.float32))
        elif weighting == "inverse_pop":
            weights.append(pop_w[u])
        fps.append(np.asarray(fpos, dtype=np.int64))
    return GroundTruth.from_lists(gts, fps, examples["next_negative"].to_numpy(),
                                  weights if weighting != "flat" else None)


def chunked_ground_truth(split: Split, max_context: int, users_per_chunk: int, swing_n: int = 50,
                         similarity: sp.csr_matrix | None = None, **kw):
    """(training examples, their ground truth) a chunk of users at a time, in user order, all sharing one Swing
    matrix: at catalogue scale one example per context negative is millions of rows, too many at once.
    Concatenated, the chunks are `build_ground_truth(training_examples(split, max_context), split, ...)`."""
    from feedback.split import training_examples, user_chunks

    S = similarity if similarity is not None else swing_similarity(split.negative_matrix(), SwingConfig())
    if kw.get("transition_n") and kw.get("transitions") is None:
        kw["transitions"] = transition_scores(split)  # one matrix for every chunk, like Swing's
    if kw.get("category_n") and kw.get("category_knn") is None:
        kw["category_knn"] = CategoryKnn(split)  # fitted on the whole split, once
    if kw.get("user_knn_n") and kw.get("user_knn") is None:
        kw["user_knn"] = UserKnn(split)
    if kw.get("weighting") == "inverse_pop" and kw.get("neg_counts") is None:
        kw["neg_counts"] = split.train_negative_counts()  # the whole split's counts, once
    for part in user_chunks(split, users_per_chunk):
        ex = training_examples(part, max_context)
        yield ex, build_ground_truth(ex, split, swing_n, similarity=S, **kw)


def save_ground_truth(gt: GroundTruth, path: str | Path) -> Path:
    from common.atomic import write_parquet_atomic

    return write_parquet_atomic(gt.to_frame(), path)


def load_ground_truth(path: str | Path) -> GroundTruth:
    return GroundTruth.from_frame(pd.read_parquet(path))
