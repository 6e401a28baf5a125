"""Make item → code a bijection.

- 'reassign' (default): in each group of items sharing a code, the item closest to the last-level
  codeword keeps it; the others move to the nearest last-level codeword still free under the same
  prefix. Codes stay L tokens long and every item keeps its own codebook embedding (the reward's
  similarity space). A prefix with no free last-level code falls back to 'extra_level' for all.
- 'extra_level': append one token, the item's rank within its collision group (0 for unique codes),
  as TIGER does. Items of one group then share their codebook embedding.
"""

from __future__ import annotations

import numpy as np


def count_collisions(codes: np.ndarray) -> int:
    """Items whose code another item also has, minus one per shared code (= items that must move)."""
    _, counts = np.unique(codes, axis=0, return_counts=True)
    return int((counts - 1).sum())


def extra_level(codes: np.ndarray) -> np.ndarray:
    _, inv = np.unique(codes, axis=0, return_inverse=True)
    inv = inv.ravel()
    order = np.argsort(inv, kind="stable")
    rank = np.empty(len(codes), dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(inv[order])) + 1]
    sizes = np.diff(np.r_[starts, len(order)])
    rank[order] = np.arange(len(order)) - np.repeat(starts, sizes)
    return np.concatenate([codes, rank[:, None]], axis=1)


def reassign_last_level(codes: np.ndarray, last_residual: np.ndarray, last_codebook: np.ndarray
                        ) -> np.ndarray | None:
    """Resolve collisions by moving items to free last-level codes; None if some prefix is full."""
    codes = codes.copy()
    prefix = [tuple(p) for p in codes[:, :-1].tolist()]
    used: dict[tuple, set] = {}
    for p, c in zip(prefix, codes[:, -1].tolist()):
        used.setdefault(p, set()).add(c)
    _, inv, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    order = np.argsort(inv, kind="stable")
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    for g in np.flatnonzero(counts > 1):
        members = order[starts[g]:starts[g] + counts[g]]
        # distances only for colliding items: [m, K]
        dist = ((last_residual[members, None, :] - last_codebook[None, :, :]) ** 2).sum(-1)
        c = codes[members[0], -1]
        rank = np.argsort(dist[:, c], kind="stable")  # the closest keeps the code
        for r in rank[1:]:
            m = members[r]
            p = prefix[m]
            free = [int(k) for k in np.argsort(dist[r], kind="stable") if int(k) not in used[p]]
            if not free:
                return None
            codes[m, -1] = free[0]
            used[p].add(free[0])
    return codes


def resolve(codes: np.ndarray, last_residual: np.ndarray, last_codebook: np.ndarray, method: str = "reassign"
            ) -> tuple[np.ndarray, str]:
    """Collision-free codes and the method actually used."""
    if count_collisions(codes) == 0:
        return codes, "none needed"
    if method == "reassign":
        out = reassign_last_level(codes, last_residual, last_codebook)
        if out is not None:
            return out, "reassign"
        method = "extra_level"  # a prefix ran out of last-level codes
    if method == "extra_level":
        return extra_level(codes), "extra_level"
    raise ValueError(f"collision method must be 'reassign' or 'extra_level', got {method!r}")
