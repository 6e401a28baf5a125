"""Metric math against hand-computed values."""

import numpy as np
import pytest

from evaluation.metrics import any_hit, candidate_accuracy, hit_rate, item_coverage


def test_any_hit_and_hit_rate():
    topk = np.array([[1, 2, 3], [4, 5, -1], [7, 8, 9]])
    targets = [np.array([3]), np.array([6, 9]), np.array([9, 10])]
    assert any_hit(topk, targets).tolist() == [True, False, True]
    assert hit_rate(topk, targets) == pytest.approx(2 / 3)
    assert hit_rate(topk, targets, mask=np.array([False, True, True])) == pytest.approx(0.5)
    assert np.isnan(hit_rate(topk, targets, mask=np.zeros(3, bool)))


def test_padding_never_hits():
    # -1 marks "no item" (an invalid generated code): even a -1 target cannot match it
    assert any_hit(np.array([[-1, -1]]), [np.array([-1])]).tolist() == [False]


def test_any_hit_shape_mismatch():
    with pytest.raises(ValueError, match="2 top-K rows but 1 target"):
        any_hit(np.zeros((2, 3), int), [np.array([1])])


def test_candidate_accuracy_with_ties():
    scores = np.array([
        [0.9, 0.1, 0.2],  # true first: 1
        [0.1, 0.9, 0.2],  # not first: 0
        [0.5, 0.5, 0.1],  # tied with one other: 1/2
        [1.0, 1.0, 1.0],  # all tied: 1/3
    ])
    assert candidate_accuracy(scores) == pytest.approx((1 + 0 + 0.5 + 1 / 3) / 4)


def test_item_coverage():
    assert item_coverage(np.array([[0, 1], [1, -1]]), 4) == pytest.approx(0.5)
