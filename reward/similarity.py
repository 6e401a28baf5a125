"""Similarity in the codebook space: cosine between reconstructed SID embeddings (sum of codewords).

Everything here is vectorised over a batch of generated items and their variable-size target sets:
targets are gathered as one flat array and reduced per sample with `np.maximum.reduceat`.
"""

from __future__ import annotations

import numpy as np


class CodebookSpace:
    """Unit-normalised item embeddings of a catalogue (from `SidIndex.item_embeddings`) and their codes."""

    def __init__(self, item_embeddings: np.ndarray, codes: np.ndarray):
        e = np.asarray(item_embeddings, dtype=np.float32)
        n = np.linalg.norm(e, axis=1, keepdims=True)
        self.unit = e / np.where(n > 0, n, 1.0)
        self.codes = np.asarray(codes, dtype=np.int64)

    @classmethod
    def from_index(cls, index) -> "CodebookSpace":
        return cls(index.item_embeddings, index.codes)

    def max_sim(self, out_items: np.ndarray, indptr: np.ndarray, items: np.ndarray, rows: np.ndarray,
                weights: np.ndarray | None = None) -> np.ndarray:
        """For sample b (set row rows[b]): max cosine between item out_items[b] and that row's set (max of
        weight · cosine when the set items carry `weights`, aligned with `items`).

        Invalid outputs (-1) and empty sets give 0. Rollouts of one prompt share its row (GRPO's G
        samples), so each row's set is gathered once, padded, and met by all of that row's outputs in
        one batched matmul: [rows, G, D] × [rows, D, L].
        """
        out_items = np.asarray(out_items, dtype=np.int64)
        rows = np.asarray(rows, dtype=np.int64)
        res = np.zeros(len(out_items), dtype=np.float32)
        ok = (indptr[rows + 1] > indptr[rows]) & (out_items >= 0)
        if not ok.any():
            return res
        uniq, inv, cnt = np.unique(rows[ok], return_inverse=True, return_counts=True)
        inv = inv.ravel()
        lens = indptr[uniq + 1] - indptr[uniq]
        pos = np.arange(int(lens.max()))[None, :]
        valid = pos < lens[:, None]
        at = np.where(valid, indptr[uniq][:, None] + pos, 0)
        T = self.unit[items[at]]  # [U, L, D]
        order = np.argsort(inv, kind="stable")
        rank = np.empty(len(inv), dtype=np.int64)
        rank[order] = np.arange(len(inv)) - np.repeat(np.r_[0, np.cumsum(cnt)[:-1]], cnt)
        outs = np.zeros((len(uniq), int(cnt.max()), self.unit.shape[1]), dtype=np.float32)
        outs[inv, rank] = self.unit[out_items[ok]]
        dots = np.matmul(outs, T.transpose(0, 2, 1))  # [U, G, L]
        if weights is not None:
            dots = dots * weights[at][:, None, :]
        dots = np.where(valid[:, None, :], dots, -np.inf)
        res[ok] = dots.max(axis=2)[inv, rank]
        return res

    def sim(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Elementwise cosine of items a[i], b[i] (0 where either is -1)."""
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        ok = (a >= 0) & (b >= 0)
        out = np.zeros(len(a), dtype=np.float32)
        out[ok] = np.einsum("ij,ij->i", self.unit[a[ok]], self.unit[b[ok]])
        return out

    def _prefix_runs(self, out_items: np.ndarray, indptr: np.ndarray, items: np.ndarray, rows: np.ndarray):
        """Every (sample, set item) pair of the samples with a valid output and a non-empty set: which samples
        (`ok`), each pair's set position (`flat`), its leading run of shared code levels, and where each
        sample's pairs start (`seg`)."""
        out_items = np.asarray(out_items, dtype=np.int64)
        starts, lens = indptr[rows], indptr[rows + 1] - indptr[rows]
        ok = (lens > 0) & (out_items >= 0)
        lo, ln, o = starts[ok], lens[ok], out_items[ok]
        flat = np.repeat(lo - np.r_[0, np.cumsum(ln)[:-1]], ln) + np.arange(ln.sum())
        eq = self.codes[np.repeat(o, ln)] == self.codes[items[flat]]
        return ok, flat, np.cumprod(eq, axis=1).sum(1), np.r_[0, np.cumsum(ln)[:-1]]

    def max_prefix_match(self, out_items: np.ndarray, indptr: np.ndarray, items: np.ndarray, rows: np.ndarray
                         ) -> np.ndarray:
        """For sample b: the longest leading run of code levels shared with any item of its set."""
        res = np.zeros(len(out_items), dtype=np.int64)
        ok, _, run, seg = self._prefix_runs(out_items, indptr, items, rows)
        if ok.any():
            res[ok] = np.maximum.reduceat(run, seg)
        return res

    def best_level_reward(self, out_items: np.ndarray, indptr: np.ndarray, items: np.ndarray, rows: np.ndarray,
                          table, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """For sample b: (its longest leading run of shared code levels, its best weights[j] · table[L − run_j]
        over its set). `table`: the reward by levels short of a full match (table[0] for all L levels, table[1]
        for one short, ...); `weights`: one per set item, aligned with `items` (None: all 1)."""
        res = np.zeros(len(out_items), dtype=np.int64)
        best = np.zeros(len(out_items), dtype=np.float32)
        ok, flat, run, seg = self._prefix_runs(out_items, indptr, items, rows)
        if not ok.any():
            return res, best
        table = np.asarray(table, dtype=np.float32)
        short = self.codes.shape[1] - run
        pay = np.where((run > 0) & (short < len(table)), table[np.minimum(short, len(table) - 1)], 0.0)
        if weights is not None:
            pay = pay * weights[flat]
        res[ok] = np.maximum.reduceat(run, seg)
        best[ok] = np.maximum.reduceat(pay, seg)
        return res, best
