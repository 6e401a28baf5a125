"""Category-level user-kNN (feedback/category_knn.py) and its GTS part, checked by hand on six items, three users."""

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from feedback.category_knn import CategoryKnn, CategoryKnnConfig, category_matrix
from reward.ground_truth import build_ground_truth, knn_targets

# items 0, 1: A; 2, 3: B; 4: C; 5: A|C (half in each)
ITEMS = pd.DataFrame({"item_id": range(1, 7), "category": ["A", "A", "B", "B", "C", "A|C"]})
# u0: dislikes 0 (A), likes 2 (B); u1: dislikes 1 (A) and 4 (C), likes 3 (B); u2: dislikes 2 (B), likes 4 (C)
TRAIN = pd.DataFrame({"uidx": [0, 0, 1, 1, 1, 2, 2], "iidx": [0, 2, 1, 4, 3, 2, 4], "fb": [-1, 1, -1, -1, 1, -1, 1]})


def split(items=ITEMS, cats=("category",)):
    data = SimpleNamespace(name="toy", items=items, category_columns=list(cats), n_users=3)
    return SimpleNamespace(data=data, train=TRAIN, n_items=len(items))


def test_category_matrix_splits_multi_valued_categories():
    G, names = category_matrix(ITEMS, "category")
    assert names == ["A", "B", "C"]
    assert G[5].tolist() == [0.5, 0.0, 0.5] and G[2].tolist() == [0.0, 1.0, 0.0]


def test_item_scores_by_hand():
    """Profiles [neg | pos], each half unit-length: u0 [1,0,0 | 0,1,0], u1 [1/√2,0,1/√2 | 0,1,0], u2 [0,1,0 | 0,0,1].
    The query (dislikes 0, likes 2) has u0's profile: similarities u0 2, u1 1 + 1/√2, u2 0. Exposure: events per
    item over the most shown (2): [0.5, 0.5, 1, 0.5, 1, 0]."""
    knn = CategoryKnn(split(), CategoryKnnConfig(k=2))
    assert knn.exposure.tolist() == [0.5, 0.5, 1.0, 0.5, 1.0, 0.0]
    # own user excluded: neighbours u1 (weight 1.7071) and u2 (0) → category shares of u1 = [0.5, 0, 0.5]
    own = knn.item_scores([[0, 2]], [[-1, 1]], np.array([0]))[0]
    assert own == pytest.approx([0.25, 0.25, 0.0, 0.0, 0.5, 0.0])
    # no exclusion: u0 (2) and u1 (1.7071) → A: (2 + 1.7071 · 0.5) / 3.7071, C: 1.7071 · 0.5 / 3.7071
    s1 = 1 + 1 / math.sqrt(2)
    a, c = (2 + 0.5 * s1) / (2 + s1), 0.5 * s1 / (2 + s1)
    free = knn.item_scores([[0, 2]], [[-1, 1]], np.array([-1]))[0]
    assert free == pytest.approx([0.5 * a, 0.5 * a, 0.0, 0.0, c, 0.0])
    # positives weigh nothing: similarities u0 1, u1 1/√2, u2 0 → the same two neighbours for the own-user query
    assert CategoryKnn(split(), CategoryKnnConfig(k=2, pos_weight=0.0)).item_scores(
        [[0, 2]], [[-1, 1]], np.array([0]))[0] == pytest.approx(own)


def test_gts_gains_the_knn_targets_outside_the_context():
    knn = CategoryKnn(split(), CategoryKnnConfig(k=2))
    ex = pd.DataFrame({"uidx": [0], "ctx_items": [np.array([0, 2])], "ctx_fb": [np.array([-1, 1])],
                       "future_neg": [np.array([3])], "future_pos": [np.array([], dtype=int)], "next_negative": [3]})
    (items, scores), = knn_targets(ex, knn, 2)
    # scores [0.25, 0.25, 0, 0, 0.5, 0]; context items 0 and 2 never count; ties by item index
    assert items.tolist() == [4, 1] and scores.tolist() == pytest.approx([0.5, 0.25])
    assert knn_targets(ex, knn, 1)[0][0].tolist() == [4]
    gt = build_ground_truth(ex, split(), swing_n=0, similarity=sp.csr_matrix((6, 6)), category_n=2, category_knn=knn)
    assert gt.gts(0).tolist() == [1, 3, 4]
    w = build_ground_truth(ex, split(), swing_n=0, similarity=sp.csr_matrix((6, 6)), category_n=2, category_knn=knn,
                           weighting="swing_score")
    assert w.weights(0).tolist() == pytest.approx([0.5, 1.0, 1.0])  # each list scaled by its best score


def test_a_log_without_categories_is_a_clear_error():
    with pytest.raises(ValueError, match="needs an item category column; toy has none"):
        CategoryKnn(split(cats=()))
    with pytest.raises(ValueError, match="no column 'genre'"):
        CategoryKnn(split(), CategoryKnnConfig(column="genre"))


def test_sft_task_distils_the_knn_by_its_scores():
    """`warmup_category_knn`: the query of test_item_scores_by_hand as a training example of u0 scores items
    [0.25, 0.25, 0, 0, 0.5, 0]; outside the context (0, 2) that leaves 4 (0.5) and 1 (0.25), drawn 2 : 1."""
    from trainer.prompts import TASKS, ContextConfig, _knn_task

    knn = CategoryKnn(split(), CategoryKnnConfig(k=2))
    ex = pd.DataFrame({"uidx": [0], "ctx_items": [np.array([0, 2])], "ctx_fb": [np.array([-1, 1])],
                       "ctx_ts": [np.array([0, 0])], "t_cut": [86_400]})
    kw = dict(examples=ex, sid=lambda i: f"<{i}>", context=ContextConfig(mode="neg_pos"), knn=knn)
    assert list(_knn_task(seed=0, top_n=1, draws=1, **kw)) == [("user disliked: <0> liked: <2> next dislike:", "<4>")]
    both = list(_knn_task(seed=0, top_n=2, draws=5, **kw))  # draws are without replacement: each once
    assert sorted(t for _, t in both) == ["<1>", "<4>"]
    got = [t for s in range(300) for _, t in _knn_task(seed=s, top_n=2, draws=1, **kw)]
    assert 0.57 < got.count("<4>") / len(got) < 0.76
    # the registered task fits the default kNN (k 50, capped at the 2 other users): the same top item
    kw.pop("knn")
    assert list(TASKS["warmup_category_knn"](top_n=1, split=split(), **kw)) == [
        ("user disliked: <0> liked: <2> next dislike:", "<4>")]
