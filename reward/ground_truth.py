"""Per-example reward ground truth, built once per dataset and stored with the examples.

GTS (ground-truth set) = the example's negatives within the horizon ∪ the top-n Swing neighbours of
its context negatives (Swing on the negative-feedback graph of the training events). FPS = its
positives within the horizon. Sets are packed as CSR arrays (indptr + item indices), which is what
the reward actors receive once through the object store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from feedback.split import Split
from feedback.swing import SwingConfig, swing_similarity


@dataclass
class GroundTruth:
    """Packed ground truth for n samples; row i belongs to sample id i."""

    gts_indptr: np.ndarray
    gts_items: np.ndarray
    fps_indptr: np.ndarray
    fps_items: np.ndarray
    next_negative: np.ndarray

    def __len__(self) -> int:
        return len(self.next_negative)

    def gts(self, i: int) -> np.ndarray:
        return self.gts_items[self.gts_indptr[i]:self.gts_indptr[i + 1]]

    def fps(self, i: int) -> np.ndarray:
        return self.fps_items[self.fps_indptr[i]:self.fps_indptr[i + 1]]

    @staticmethod
    def from_lists(gts: list, fps: list, next_negative) -> "GroundTruth":
        def pack(sets):
            lens = np.array([len(s) for s in sets], dtype=np.int64)
            items = np.concatenate([np.asarray(s, dtype=np.int64) for s in sets]) if len(sets) else np.empty(0, int)
            return np.r_[0, np.cumsum(lens)].astype(np.int64), items.astype(np.int64)

        gi, g = pack(gts)
        fi, f = pack(fps)
        return GroundTruth(gi, g, fi, f, np.asarray(next_negative, dtype=np.int64))

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"gts": [self.gts(i) for i in range(len(self))],
                             "fps": [self.fps(i) for i in range(len(self))],
                             "next_negative": self.next_negative})

    @staticmethod
    def from_frame(df: pd.DataFrame) -> "GroundTruth":
        for col in ("gts", "fps", "next_negative"):
            if col not in df.columns:
                raise ValueError(f"ground-truth table lacks column {col!r}; build it with reward.ground_truth")
        return GroundTruth.from_lists(list(df["gts"]), list(df["fps"]), df["next_negative"].to_numpy())


def build_ground_truth(examples: pd.DataFrame, split: Split, swing_n: int = 50,
                       swing: SwingConfig | None = None, similarity: sp.csr_matrix | None = None) -> GroundTruth:
    """GTS/FPS for every training example (rows of `feedback.split.training_examples`). `similarity`: the
    split's Swing matrix when the caller already has it (examples built in chunks share one)."""
    S = similarity if similarity is not None else swing_similarity(split.negative_matrix(), swing or SwingConfig())
    gts, fps = [], []
    n = len(examples)
    # one sparse product for all examples: rows = examples, columns = their context negatives
    rows = np.repeat(np.arange(n), [int((f == -1).sum()) for f in examples["ctx_fb"]])
    cols = np.concatenate([i[f == -1] for i, f in zip(examples["ctx_items"], examples["ctx_fb"])]) if n else []
    Q = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, split.n_items))
    Q.data[:] = 1.0
    scores = (Q @ S).tocsr()
    for r, (fneg, fpos) in enumerate(zip(examples["future_neg"], examples["future_pos"])):
        s, e = scores.indptr[r], scores.indptr[r + 1]
        cand, val = scores.indices[s:e], scores.data[s:e]
        own = Q.indices[Q.indptr[r]:Q.indptr[r + 1]]
        keep = ~np.isin(cand, own)
        cand, val = cand[keep], val[keep]
        top = cand[np.lexsort((cand, -val))[:swing_n]] if swing_n else np.empty(0, np.int64)
        gts.append(np.union1d(np.asarray(fneg, dtype=np.int64), top))
        fps.append(np.asarray(fpos, dtype=np.int64))
    return GroundTruth.from_lists(gts, fps, examples["next_negative"].to_numpy())


def save_ground_truth(gt: GroundTruth, path: str | Path) -> Path:
    from common.atomic import write_parquet_atomic

    return write_parquet_atomic(gt.to_frame(), path)


def load_ground_truth(path: str | Path) -> GroundTruth:
    return GroundTruth.from_frame(pd.read_parquet(path))
