"""Item-level user-kNN (feedback/user_knn.py) and its GTS part, checked by hand on the toy log of
tests/test_category_knn.py (u0 dislikes 0, likes 2; u1 dislikes 1 and 4, likes 3; u2 dislikes 2, likes 4)."""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from feedback.user_knn import UserKnn, UserKnnConfig
from reward.ground_truth import build_ground_truth, knn_targets
from tests.test_category_knn import split

R2, R6 = 1 / math.sqrt(2), 1 / math.sqrt(6)


def test_item_scores_by_hand():
    """Profiles over [negatives | positives], unit length: u0 (1/√2 on neg 0, pos 2), u1 (1/√3 on neg 1, neg 4,
    pos 3), u2 (1/√2 on neg 2, pos 4). A query disliking 0 and 1 is (1/√2, 1/√2): similarities u0 1/2, u1 1/√6,
    u2 0; an item scores the similarity-weighted count of the 2 nearest users who disliked it."""
    knn = UserKnn(split(), UserKnnConfig(k=2))
    got = knn.item_scores([[0, 1]], [[-1, -1]], np.array([-1]))[0]
    assert got == pytest.approx([0.5, R6, 0.0, 0.0, R6, 0.0])
    # its own user (u0) excluded: u1 and u2 are the neighbours
    assert knn.item_scores([[0, 1]], [[-1, -1]], np.array([0]))[0] == pytest.approx([0, R6, 0, 0, R6, 0])
    # a like counts: disliking 1 and liking 3 matches u1 on both (2 · 1/√2 · 1/√3); negatives only: 1/√2
    assert knn.item_scores([[1, 3]], [[-1, 1]])[0] == pytest.approx([0, 2 * R6, 0, 0, 2 * R6, 0])
    neg_only = UserKnn(split(), UserKnnConfig(k=2, pos_weight=0.0))
    assert neg_only.item_scores([[1, 3]], [[-1, 1]])[0] == pytest.approx([0, R2, 0, 0, R2, 0])
    # scoring in blocks of one query gives the same scores
    tiny = UserKnn(split(), UserKnnConfig(k=2, block_bytes=1))
    two = tiny.item_scores([[0, 1], [1, 3]], [[-1, -1], [-1, 1]], np.array([-1, -1]))
    assert two == pytest.approx(np.stack([got, [0, 2 * R6, 0, 0, 2 * R6, 0]]))
    with pytest.raises(ValueError, match="k=0 must be ≥ 1"):
        UserKnn(split(), UserKnnConfig(k=0))


def test_gts_gains_the_user_knn_targets_outside_the_context():
    knn = UserKnn(split(), UserKnnConfig(k=2))
    ex = pd.DataFrame({"uidx": [2], "ctx_items": [np.array([0, 1])], "ctx_fb": [np.array([-1, -1])],
                       "future_neg": [np.array([3])], "future_pos": [np.array([], dtype=int)], "next_negative": [3]})
    (items, scores), = knn_targets(ex, knn, 5)
    assert items.tolist() == [4] and scores.tolist() == pytest.approx([R6])  # 0 and 1 are the context's own
    gt = build_ground_truth(ex, split(), swing_n=0, similarity=sp.csr_matrix((6, 6)), user_knn_n=5, user_knn=knn)
    assert gt.gts(0).tolist() == [3, 4]
