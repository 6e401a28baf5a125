"""Swing item–item similarity on a user–item graph (here: the negative-feedback graph).

    s(i, j) = Σ_{u<v, u,v ∈ U_i ∩ U_j}  w_u · w_v / (α + |I_u ∩ I_v|),   w_u = (|I_u| + offset)^(-power)

Two items are similar when several users who share few other items both reacted to them; the user
weight (power > 0, the "user-activity-weighted" variant) further discounts very active users.
power = 0 is simple Swing. Item pairs co-occurring for fewer than `min_cooccurrence` users are
dropped. Sums run over unordered user pairs (half the ordered sum; rankings are identical).

The implementation is sparse and vectorised: user pairs with ≥ 2 common items come from A·Aᵀ, and
S = Bᵀ·diag(k)·B where row (u, v) of B is the item overlap of u and v, processed in chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass
class SwingConfig:
    """Swing parameters (defaults: simple Swing, α = 1)."""

    alpha: float = 1.0
    """Smoothing in 1 / (α + |I_u ∩ I_v|)."""
    user_weight_power: float = 0.0
    """β in w_u = (|I_u| + offset)^-β; 0 gives simple Swing, 0.5 the usual weighted variant."""
    user_weight_offset: float = 5.0
    min_cooccurrence: int = 2
    """Drop item pairs disliked together by fewer users than this (2 is Swing's own minimum)."""
    max_users_per_item: int = 0
    """Cap on the users per item that enter the pair sums (most recent kept); 0 = no cap."""
    topn: int = 200
    """Neighbours kept per item (0 = all)."""
    chunk_pairs: int = 2_000_000


def user_item_matrix(uidx: np.ndarray, iidx: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """Binary CSR user×item matrix from index arrays (repeats collapse to 1)."""
    m = sp.csr_matrix((np.ones(len(uidx), dtype=np.float32), (uidx, iidx)), shape=(n_users, n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _cap_users_per_item(A: sp.csr_matrix, cap: int) -> sp.csr_matrix:
    """Keep at most `cap` users per item (the highest user indices; callers pass recency-ordered users)."""
    C = A.tocsc()
    keep = np.ones(C.nnz, dtype=bool)
    for j in np.flatnonzero(np.diff(C.indptr) > cap):
        s, e = C.indptr[j], C.indptr[j + 1]
        keep[s:e - cap] = False
    C.data = C.data * keep
    C.eliminate_zeros()
    return C.tocsr()


def swing_similarity(A: sp.csr_matrix, cfg: SwingConfig | None = None) -> sp.csr_matrix:
    """Item×item Swing similarity (CSR, float64, zero diagonal, top-n per row)."""
    cfg = cfg or SwingConfig()
    A = sp.csr_matrix(A, dtype=np.float64)
    A.data[:] = 1.0
    if cfg.max_users_per_item:
        A = _cap_users_per_item(A, cfg.max_users_per_item)
    n_items = A.shape[1]
    deg = np.asarray(A.sum(1)).ravel()
    w = (deg + cfg.user_weight_offset) ** (-cfg.user_weight_power) if cfg.user_weight_power else np.ones_like(deg)

    UU = sp.triu(A @ A.T, k=1).tocoo()
    sel = UU.data >= 2  # a pair sharing < 2 items contributes to no item pair i ≠ j
    us, vs, common = UU.row[sel], UU.col[sel], UU.data[sel]
    k = w[us] * w[vs] / (cfg.alpha + common)

    S = sp.csr_matrix((n_items, n_items), dtype=np.float64)
    for s in range(0, len(us), cfg.chunk_pairs):
        e = s + cfg.chunk_pairs
        B = A[us[s:e]].multiply(A[vs[s:e]]).tocsr()
        S = S + (B.T @ sp.diags(k[s:e]) @ B).tocsr()
    S.setdiag(0.0)
    S.eliminate_zeros()
    if cfg.min_cooccurrence > 2:
        S = S.multiply((A.T @ A) >= cfg.min_cooccurrence).tocsr()
    if cfg.topn:
        S = top_n_per_row(S, cfg.topn)
    return S


def top_n_per_row(S: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Keep the n largest entries of each row (ties broken by column index)."""
    S = S.tocsr()
    counts = np.diff(S.indptr)
    if counts.max(initial=0) <= n:
        return S
    rows = np.repeat(np.arange(S.shape[0]), counts)
    # order within each row by value desc, then column asc
    order = np.lexsort((S.indices, -S.data, rows))
    rank = np.arange(len(order)) - np.repeat(S.indptr[:-1], counts)
    keep = order[rank < n]
    return sp.csr_matrix((S.data[keep], (rows[keep], S.indices[keep])), shape=S.shape)


def swing_python(user_items: dict, alpha: float = 1.0) -> dict:
    """Plain pure-Python simple Swing, the textbook triple loop (reference and benchmark baseline)."""
    item_users: dict = {}
    for u, its in user_items.items():
        for i in its:
            item_users.setdefault(i, set()).add(u)
    sims: dict = {}
    items = list(item_users)
    for a in range(len(items)):
        i = items[a]
        for b in range(a + 1, len(items)):
            j = items[b]
            common = sorted(item_users[i] & item_users[j])
            if len(common) < 2:
                continue
            s = 0.0
            for x in range(len(common)):
                for y in range(x + 1, len(common)):
                    s += 1.0 / (alpha + len(user_items[common[x]] & user_items[common[y]]))
            sims[(i, j)] = sims[(j, i)] = s
    return sims
