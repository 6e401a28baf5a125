"""The 20-slot fusions of two top-K lists (bench.list_fusion), checked by hand."""

import numpy as np

from bench.list_fusion import fill, rrf


def test_fill_takes_m_then_the_other_list_without_repeats():
    a = np.array([[1, 2, 3, 4], [5, -1, -1, -1]])
    b = np.array([[2, 9, 8, 7], [6, 5, 7, 8]])
    # row 0: 1, 2 from a; then b's 2 is a repeat, 9 and 8 fill; row 1: 5 (the -1 pads are skipped), then 6, 7
    assert fill(a, b, 2, k=4).tolist() == [[1, 2, 9, 8], [5, 6, 7, 8]]
    assert fill(a, b, 4, k=4).tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]


def test_fill_pads_when_both_lists_run_out():
    assert fill(np.array([[1]]), np.array([[1, -1]]), 1, k=3).tolist() == [[1, -1, -1]]


def test_rrf_scores_by_weighted_reciprocal_rank():
    a = np.array([[1, 2, 3]])
    b = np.array([[3, 4, 1]])
    # c = 10: item 1: 1/10 + w/12, item 2: 1/11, item 3: 1/12 + w/10, item 4: w/11
    # w = 1: items 1 and 3 tie at 1/10 + 1/12 (kept in a's order), then 2 (0.0909), then 4 (0.0909 as well,
    # inserted later)
    assert rrf(a, b, 1.0, k=4).tolist() == [[1, 3, 2, 4]]
    # w = 0.25: 1 (0.1208) > 3 (0.1083) > 2 (0.0909) > 4 (0.0227)
    assert rrf(a, b, 0.25, k=4).tolist() == [[1, 3, 2, 4]]
    # w = 2: 3 (0.2833) > 1 (0.2667) > 4 (0.1818) > 2 (0.0909)
    assert rrf(a, b, 2.0, k=4).tolist() == [[3, 1, 4, 2]]
