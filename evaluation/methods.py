"""The recommender interface the evaluator calls, and the non-LLM baselines.

A method is fitted on the training events of a `Split` and then either scores the whole catalogue
for a batch of users (`ScoreMethod`), or returns its own top-K lists and candidate scores (a model
that generates codes). Methods register by name, so `conrec eval --method NAME` finds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.sparse as sp

from common.registry import registrar
from feedback.category_knn import CategoryKnn, CategoryKnnConfig
from feedback.split import Split
from feedback.swing import SwingConfig, swing_similarity
from feedback.user_knn import UserKnn, UserKnnConfig

METHODS: dict[str, Callable[..., "Method"]] = {}
LAZY = {"model": "evaluation.model_method"}  # registered on import (pulls in torch/transformers)


register_method = registrar(METHODS, "evaluation method", set_name=True)


def get_method(name: str, **kwargs) -> "Method":
    if name not in METHODS and name in LAZY:
        import importlib

        importlib.import_module(LAZY[name])
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; registered: {sorted(METHODS)}")
    return METHODS[name](**kwargs)


class Method:
    name = "method"

    def fit(self, split: Split) -> None:
        raise NotImplementedError

    def recommend(self, test_rows: np.ndarray, k: int) -> np.ndarray:
        """int[B, K] item indices for the given rows of split.test (context items excluded)."""
        raise NotImplementedError

    def score_candidates(self, test_rows: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """float[B, C] scores of each row's candidates (higher = more likely disliked)."""
        raise NotImplementedError


class ScoreMethod(Method):
    """A method defined by a dense score over the catalogue; recommend/candidates derive from it."""

    split: Split

    def scores(self, test_rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def recommend(self, test_rows: np.ndarray, k: int) -> np.ndarray:
        s = self.scores(test_rows).astype(np.float64, copy=True)
        test = self.split.test
        for b, r in enumerate(test_rows):
            s[b, test["context_items"].iat[r]] = -np.inf  # never recommend what the user already met
        k_eff = min(k, s.shape[1])
        part = np.argpartition(-s, k_eff - 1, axis=1)[:, :k_eff]
        # sort the K by score desc, ties by item index (deterministic)
        order = np.lexsort((part, -np.take_along_axis(s, part, 1)), axis=1)
        top = np.take_along_axis(part, order, 1)
        top[np.take_along_axis(s, top, 1) == -np.inf] = -1
        return top

    def score_candidates(self, test_rows: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        return np.take_along_axis(self.scores(test_rows), candidates, 1)


@register_method("pop")
class Pop(ScoreMethod):
    """Most-disliked items in the training events."""

    def fit(self, split: Split) -> None:
        self.split = split
        self.counts = split.train_negative_counts().astype(np.float64)

    def scores(self, test_rows):
        return np.broadcast_to(self.counts, (len(test_rows), len(self.counts)))


@register_method("random")
@dataclass
class Random(ScoreMethod):
    seed: int = 0

    def fit(self, split: Split) -> None:
        self.split = split

    def scores(self, test_rows):
        # per-user streams: the same user gets the same scores whatever the batching
        n = self.split.n_items
        return np.stack([np.random.default_rng([self.seed, int(r)]).random(n) for r in test_rows])


@register_method("swing")
@dataclass
class Swing(ScoreMethod):
    """score(j) = Σ over the user's context negatives i of swing(i, j), on the negative graph.

    Users whose negatives have no Swing neighbours fall back to popularity: `pop_tiebreak` adds the
    normalised negative counts times a weight far below any Swing score difference.
    """

    swing: SwingConfig = field(default_factory=SwingConfig)
    pop_tiebreak: float = 1e-6

    def fit(self, split: Split) -> None:
        self.split = split
        self.S = swing_similarity(split.negative_matrix(), self.swing)
        counts = split.train_negative_counts().astype(np.float64)
        self.pop = counts / max(counts.max(), 1.0)

    def scores(self, test_rows):
        test = self.split.test
        rows, cols = [], []
        for b, r in enumerate(test_rows):
            neg = np.unique(test["context_neg"].iat[r])
            rows.append(np.full(len(neg), b))
            cols.append(neg)
        rows = np.concatenate(rows) if rows else np.empty(0, int)
        cols = np.concatenate(cols) if cols else np.empty(0, int)
        Q = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(test_rows), self.split.n_items))
        return np.asarray((Q @ self.S).todense()) + self.pop_tiebreak * self.pop


class KnnMethod(ScoreMethod):
    """A user-kNN model (anything with `item_scores(ctx_items, ctx_fb, exclude_users)`) as a method; `model_cls`
    builds it from the split and `self.knn`. Popularity breaks ties far below any kNN score difference."""

    model_cls: type
    knn: object
    pop_tiebreak: float = 1e-6

    def fit(self, split: Split) -> None:
        self.split = split
        self.model = self.model_cls(split, self.knn)
        counts = split.train_negative_counts().astype(np.float64)
        self.pop = counts / max(counts.max(), 1.0)

    def scores(self, test_rows):
        test = self.split.test
        rows = np.asarray(test_rows)
        ctx_items = [test["context_items"].iat[r] for r in rows]
        ctx_fb = [test["context_fb"].iat[r] for r in rows]
        # the test user's own training row is their context: never their own neighbour
        own = test["uidx"].to_numpy(np.int64)[rows]
        return self.model.item_scores(ctx_items, ctx_fb, own) + self.pop_tiebreak * self.pop


@register_method("category_knn")
@dataclass
class CategoryKnnMethod(KnnMethod):
    """Category-level user-kNN on the training events (feedback/category_knn.py): the negatives of the users
    whose category profile (negatives and positives) is closest to the test user's context."""

    knn: CategoryKnnConfig = field(default_factory=CategoryKnnConfig)
    model_cls = CategoryKnn


@register_method("user_knn")
@dataclass
class UserKnnMethod(KnnMethod):
    """Item-level user-kNN on the training events (feedback/user_knn.py): the negatives of the users whose
    negatives and positives overlap the test user's context most."""

    knn: UserKnnConfig = field(default_factory=UserKnnConfig)
    model_cls = UserKnn
