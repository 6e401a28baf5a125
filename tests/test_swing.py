"""Swing against hand-computed values and against the textbook pure-Python loop."""

import numpy as np
import pytest

from feedback.swing import SwingConfig, swing_python, swing_similarity, top_n_per_row, user_item_matrix


def _matrix(ui: dict, n_users: int, n_items: int):
    u = [k for k, v in ui.items() for _ in v]
    i = [x for v in ui.values() for x in v]
    return user_item_matrix(np.array(u), np.array(i), n_users, n_items)


UI = {0: {0, 1, 2}, 1: {0, 1}, 2: {0, 1, 3}, 3: {2, 3}}


def test_simple_swing_hand_computed():
    # items 0,1 share users {0,1,2}; every user pair of them shares exactly {0,1}: 3 × 1/(1+2) = 1.
    # items 2,3 share only user 3: no pair, similarity 0. Diagonal is 0.
    S = swing_similarity(_matrix(UI, 4, 4)).toarray()
    want = np.zeros((4, 4))
    want[0, 1] = want[1, 0] = 1.0
    np.testing.assert_allclose(S, want)


def test_weighted_swing_hand_computed():
    # w_u = (|I_u| + 5)^-0.5: |I_0| = 3, |I_1| = 2, |I_2| = 3
    cfg = SwingConfig(user_weight_power=0.5, alpha=1.0)
    S = swing_similarity(_matrix(UI, 4, 4), cfg).toarray()
    w = {0: 8 ** -0.5, 1: 7 ** -0.5, 2: 8 ** -0.5}
    want = (w[0] * w[1] + w[0] * w[2] + w[1] * w[2]) / 3
    assert S[0, 1] == pytest.approx(want)


def test_vectorised_equals_pure_python():
    rng = np.random.default_rng(3)
    ui = {u: set(rng.choice(30, rng.integers(2, 9), replace=False).tolist()) for u in range(40)}
    S = swing_similarity(_matrix(ui, 40, 30), SwingConfig(topn=0)).toarray()
    ref = swing_python(ui)
    dense = np.zeros((30, 30))
    for (i, j), v in ref.items():
        dense[i, j] = v
    np.testing.assert_allclose(S, dense, rtol=1e-12)
    # chunking does not change the sum
    S2 = swing_similarity(_matrix(ui, 40, 30), SwingConfig(topn=0, chunk_pairs=7)).toarray()
    np.testing.assert_allclose(S, S2)


def test_min_cooccurrence_threshold():
    # items 0,1 co-disliked by 3 users; a threshold of 4 removes the pair
    assert swing_similarity(_matrix(UI, 4, 4), SwingConfig(min_cooccurrence=3)).nnz == 2
    assert swing_similarity(_matrix(UI, 4, 4), SwingConfig(min_cooccurrence=4)).nnz == 0


def test_top_n_per_row():
    import scipy.sparse as sp

    S = sp.csr_matrix(np.array([[0, 3, 1, 2], [5, 0, 5, 1], [0, 0, 0, 0], [1, 0, 0, 0]], dtype=float))
    T = top_n_per_row(S, 2).toarray()
    np.testing.assert_array_equal(T, [[0, 3, 0, 2], [5, 0, 5, 0], [0, 0, 0, 0], [1, 0, 0, 0]])
