"""bench.list_composition's count, by hand."""

import numpy as np

from bench.list_composition import overlap


def test_overlap_counts_list_items_in_each_users_set():
    lists = np.array([[3, 1, 4, -1], [5, 9, 2, 6], [-1, -1, -1, -1]])
    sets = [np.array([1, 4, 7]), np.array([8]), np.array([-1, 2])]  # a -1 pad in a list never counts as an item
    assert overlap(lists, sets).tolist() == [2, 0, 0]
