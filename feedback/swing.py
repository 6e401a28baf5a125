"""Swing item–item similarity on a user–item graph (here: the negative-feedback graph).

    s(i, j) = Σ_{u<v, u,v ∈ U_i ∩ U_j}  w_u · w_v / (α + |I_u ∩ I_v|),   w_u = (|I_u| + offset)^(-power)

Two items are similar when several users who share few other items both reacted to them; the user
weight (power > 0, the "user-activity-weighted" variant) further discounts very active users.
power = 0 is simple Swing. Item pairs co-occurring for fewer than `min_cooccurrence` users are
dropped. Sums run over unordered user pairs (half the ordered sum; rankings are identical).

The implementation is sparse and vectorised: user pairs with ≥ 2 common items come from A·Aᵀ (in
blocks of users), and S = Bᵀ·diag(k)·B where row (u, v) of B is the item overlap of u and v.
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
    """Cap on the users per item that enter the pair sums (a seeded random sample is kept); 0 = no cap.
    Head items otherwise make the user-pair count, and the cost, grow quadratically."""
    topn: int = 200
    """Neighbours kept per item (0 = all)."""
    chunk_pairs: int = 500_000
    """User pairs whose item overlaps are multiplied out at once (memory vs. speed)."""
    block_users: int = 4096
    """Users per block of A·Aᵀ."""


def user_item_matrix(uidx: np.ndarray, iidx: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """Binary CSR user×item matrix from index arrays (repeats collapse to 1)."""
    m = sp.csr_matrix((np.ones(len(uidx), dtype=np.float32), (uidx, iidx)), shape=(n_users, n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _cap_users_per_item(A: sp.csr_matrix, cap: int, seed: int = 0) -> sp.csr_matrix:
    """Keep a seeded random sample of at most `cap` users per item (bounds the cost on head items)."""
    rng = np.random.default_rng(seed)
    C = A.tocsc()
    keep = np.ones(C.nnz, dtype=bool)
    for j in np.flatnonzero(np.diff(C.indptr) > cap):
        s, e = C.indptr[j], C.indptr[j + 1]
        drop = rng.choice(e - s, e - s - cap, replace=False)
        keep[s + drop] = False
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

    S = sp.csr_matrix((n_items, n_items), dtype=np.float64)
    At = A.T.tocsr()
    # user pairs come block by block from A·Aᵀ, so the user×user matrix never exists whole
    for lo in range(0, A.shape[0], cfg.block_users):
        UU = (A[lo:lo + cfg.block_users] @ At).tocoo()
        us, vs = UU.row + lo, UU.col
        sel = (vs > us) & (UU.data >= 2)  # a pair sharing < 2 items contributes to no pair i ≠ j
        us, vs, common = us[sel], vs[sel], UU.data[sel]
        k = w[us] * w[vs] / (cfg.alpha + common)
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
    """Plain pure-Python simple Swing in the usual per-item loop (reference and benchmark baseline)."""
    item_users: dict = {}
    for u, its in user_items.items():
        for i in its:
            item_users.setdefault(i, set()).add(u)
    sims: dict = {}
    for i, users in item_users.items():
        users = sorted(users)
        for a in range(len(users)):
            for b in range(a + 1, len(users)):
                common = user_items[users[a]] & user_items[users[b]]
                w = 1.0 / (alpha + len(common))
                for j in common:
                    if j != i:
                        sims[(i, j)] = sims.get((i, j), 0.0) + w
    return sims
