"""The simulator: deterministic, well-formed, and it reproduces the paper's coverage ordering."""

import numpy as np
import pandas as pd
import pytest

from evaluation.coverage import coverage_study
from feedback.loaders import load
from feedback.simulator import SimConfig, simulate
from feedback.split import make_split


def test_deterministic_by_seed():
    a = simulate(SimConfig(users=50, items=80, days=8, seed=4))
    b = simulate(SimConfig(users=50, items=80, days=8, seed=4))
    c = simulate(SimConfig(users=50, items=80, days=8, seed=5))
    pd.testing.assert_frame_equal(a[0], b[0])
    assert not a[0].equals(c[0])


def test_negative_items_never_shown_again():
    ev, items, truth = simulate(SimConfig(users=200, items=300, days=30, seed=0))
    neg = ev[ev.feedback == "negative"]
    assert not neg.duplicated(["user_id", "item_id"]).any()
    first_neg = neg.groupby(["user_id", "item_id"]).timestamp.min().rename("t_neg")
    later = ev.join(first_neg, on=["user_id", "item_id"], how="inner")
    assert (later.timestamp <= later.t_neg).all()


def test_truth_and_items():
    ev, items, truth = simulate(SimConfig(users=100, items=150, days=10, seed=0, dislikes_per_user=4))
    assert truth.neg_interests.map(len).eq(4).all()
    assert set(np.concatenate(truth.neg_interests.to_list())) <= set(items.category)
    assert np.allclose(np.linalg.norm(np.stack(items.image_emb.to_list()), axis=1), 1, atol=1e-5)
    # negatives concentrate on the user's disliked categories
    cat = dict(zip(items.item_id, items.category))
    inter = dict(zip(truth.user_id, truth.neg_interests))
    neg = ev[ev.feedback == "negative"]
    in_dislikes = np.mean([cat[i] in inter[u] for u, i in zip(neg.user_id, neg.item_id)])
    assert in_dislikes > 0.7


def test_coverage_order_matches_the_paper():
    split = make_split(load("synthetic:users=800,items=1500,days=45,seed=0"))
    cov = coverage_study(split)["coverage"]
    for k in ("top1", "top4"):
        assert cov["next_negative"][k] < cov["future_negatives"][k] < cov["future_negatives+swing"][k]


def test_coverage_needs_truth(ml100k):
    with pytest.raises(ValueError, match="only the simulator"):
        coverage_study(make_split(load(f"movielens-100k:{ml100k}")))
