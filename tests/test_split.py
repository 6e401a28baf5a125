"""The evaluation protocol on a hand-built log: cutoffs, windows, labels, candidates, examples."""

import numpy as np
import pandas as pd
import pytest

from feedback.dataset import FeedbackData
from feedback.schema import DataReport, validate_events, validate_items
from feedback.split import (
    SplitConfig,
    carve_validation,
    fresh_tail,
    in_fresh_tail,
    latest_examples,
    load_split,
    make_split,
    save_split,
    training_examples,
)

D = 86_400
T0 = 1_000_000_000
N, P, U = "negative", "positive", "neutral"


def build(rows, n_items=12) -> FeedbackData:
    ev = pd.DataFrame(rows, columns=["user_id", "item_id", "day", "feedback"])
    ev["timestamp"] = T0 + (ev.pop("day") * D).astype(np.int64)
    items = validate_items(pd.DataFrame({"item_id": np.arange(1, n_items + 1),
                                         "title": [f"item {i}" for i in range(1, n_items + 1)]}), "items")
    rep = DataReport("test")
    return FeedbackData("test", validate_events(ev, "test", items, report=rep), items, rep)


ROWS = [
    # user 1: 11 events → cut at floor(8.8) = 8, t_cut = day 20; window [20, 27): item 9 (neg), item 10 (pos);
    # item 11 at exactly day 27 is outside the window
    (1, 1, 0, P), (1, 2, 1, N), (1, 3, 2, P), (1, 4, 3, U), (1, 5, 4, N), (1, 6, 5, N), (1, 7, 6, P),
    (1, 8, 7, N), (1, 9, 20, N), (1, 10, 21, P), (1, 11, 27, N),
    # user 2: 5 events → cut 4, window holds only a positive: not a test user
    (2, 1, 0, N), (2, 2, 1, P), (2, 3, 2, P), (2, 4, 3, P), (2, 5, 12, P),
    # user 3: ties at day 0 order by item id (3 before 7); cut 4 → window [10, 17): item 4 (neg)
    (3, 7, 0, P), (3, 3, 0, P), (3, 1, 1, P), (3, 2, 2, N), (3, 4, 10, N),
]


def idx(items):  # item ids → item indices (items are 1..n in table order)
    return [i - 1 for i in items]


def test_per_user_split_labels():
    s = make_split(build(ROWS))
    assert s.test["user_id"].tolist() == [1, 3]
    u1, u3 = s.test.iloc[0], s.test.iloc[1]
    assert u1.t_cut == T0 + 20 * D
    assert list(u1.context_items) == idx([1, 2, 3, 4, 5, 6, 7, 8])
    assert list(u1.context_neg) == idx([2, 5, 6, 8]) and list(u1.context_pos) == idx([1, 3, 7])
    assert u1.next_negative == idx([9])[0]
    assert list(u1.future_neg) == idx([9]) and list(u1.future_pos) == idx([10])
    assert list(u3.context_items) == idx([3, 7, 1, 2])
    assert list(u3.future_neg) == idx([4])
    # training data: exactly the context events of every user (8 + 4 + 4)
    assert len(s.train) == 16
    assert not ((s.train["user_id"] == 1) & (s.train["timestamp"] >= T0 + 20 * D)).any()


def test_candidates():
    s = make_split(build(ROWS))
    c = list(s.test.iloc[0].candidates)
    assert len(c) == 20 and c[0] == idx([9])[0]
    assert c[1] == idx([10])[0]  # window non-negatives come first
    real = [x for x in c[1:] if x >= 0]
    assert set(real[1:5]) == set(idx([1, 3, 4, 7]))  # then the user's other non-negative items
    assert set(real[5:]) == set(idx([12]))  # then never-disliked catalogue items; the rest pads
    assert not set(real) & set(idx([2, 5, 6, 8, 9, 11]))
    assert c.count(-1) == 19 - 6


def test_global_split():
    s = make_split(build(ROWS), SplitConfig(method="global", global_quantile=0.8))
    t_cut = int(np.quantile(s.data.events["timestamp"], 0.8))
    assert (s.train["timestamp"] < t_cut).all()
    assert (s.test["t_cut"] == t_cut).all()


def test_validation_carved_from_training_only():
    s = make_split(build(ROWS))
    v = carve_validation(s)
    assert len(v.data.events) == len(s.train)
    assert v.data.events["timestamp"].max() < T0 + 20 * D


def test_training_examples_slide_and_clip():
    s = make_split(build(ROWS))
    ex = training_examples(s, max_context=3)
    u1 = ex[ex["uidx"] == 0]
    # one example per context negative with ≥ 1 event before it: items 2, 5, 6, 8
    assert [x + 1 for x in u1["next_negative"]] == [2, 5, 6, 8]
    first = u1.iloc[0]
    assert list(first.ctx_items) == idx([1])
    # window of the item-5 example: days [4, 11) within the context → negatives 5, 6, 8, positive 7
    e5 = u1.iloc[1]
    assert sorted(x + 1 for x in e5.future_neg) == [5, 6, 8] and [x + 1 for x in e5.future_pos] == [7]
    assert list(e5.ctx_items) == idx([2, 3, 4])  # last 3 events
    # the item-8 example's window [7, 14) stops at the evaluation cutoff: item 9 (day 20) is unseen anyway
    assert [x + 1 for x in u1.iloc[3].future_neg] == [8]


def test_latest_examples_keeps_each_users_newest():
    ex = training_examples(make_split(build(ROWS)), max_context=3)
    two = latest_examples(ex, 2)
    # user 1 has examples at items 2, 5, 6, 8 (cut positions 1, 4, 5, 7): the two latest are 6 and 8;
    # user 3 has one (item 2), kept whole
    assert [(u, x + 1) for u, x in zip(two["uidx"], two["next_negative"])] == [(0, 6), (0, 8), (2, 2)]
    assert latest_examples(ex, 0) is ex and len(latest_examples(ex, 9)) == len(ex)


def test_fresh_tail_holds_each_users_last_events_out_and_its_examples_are_grpos():
    s = make_split(build(ROWS))
    short, starts = fresh_tail(s, 0.25)
    # user 1: 8 training events, floor(2) held out → positions 0-5 kept; users 2 and 3: 4 events, one held out
    assert starts == {0: 6, 1: 3, 2: 3}
    assert short.train.groupby("uidx").size().to_dict() == {0: 6, 1: 3, 2: 3} and len(s.train) == 16
    # SFT's examples stop before the tail and their windows are clipped at it: user 1's example at item 6
    # (cut 5) no longer sees item 8 (day 7, held out)
    sft = training_examples(short, max_context=3)
    assert [(u, x + 1) for u, x in zip(sft["uidx"], sft["next_negative"])] == [(0, 2), (0, 5), (0, 6)]
    assert [f.tolist() for f in sft["future_neg"]] == [[1, 4, 5], [4, 5], [5]]
    # GRPO's: the examples cut inside the tail, with windows over the full training events
    grpo = in_fresh_tail(training_examples(s, max_context=3), starts)
    assert [(u, x + 1) for u, x in zip(grpo["uidx"], grpo["next_negative"])] == [(0, 8), (2, 2)]
    assert len(in_fresh_tail(training_examples(s), fresh_tail(s, 0.0)[1])) == 0  # nothing held out, no example


def test_saved_split_reads_back_exactly(tmp_path):
    """`conrec run` hands its split to the SFT process this way: the same events, indexes and labels."""
    from feedback.loaders import load

    s = make_split(load("synthetic:users=40,items=50,days=15,seed=2"), SplitConfig(horizon_days=5.0))
    back = load_split(save_split(s, tmp_path / "split"))
    assert back.config == s.config and back.data.category_columns == s.data.category_columns
    pd.testing.assert_frame_equal(back.train, s.train)
    pd.testing.assert_frame_equal(back.data.items, s.data.items)
    assert list(back.data.user_ids) == list(s.data.user_ids)
    for col in s.test.columns:
        assert all(np.array_equal(a, b) for a, b in zip(back.test[col], s.test[col])), col
    a, b = training_examples(s), training_examples(back)
    assert all(np.array_equal(x, y) for col in a.columns for x, y in zip(a[col], b[col]))
    with pytest.raises(FileNotFoundError, match="holds no saved split"):
        load_split(tmp_path)


def test_unknown_split_method():
    with pytest.raises(ValueError, match="'per_user' or 'global'"):
        make_split(build(ROWS), SplitConfig(method="weekly"))


def test_split_where_a_users_history_is_a_read_only_view():
    """pandas 3 hands out read-only arrays; shuffling one in place for the CandAcc distractors failed on
    this log (ValueError: array is read-only)."""
    from feedback.loaders import load
    from feedback.split import make_split

    sp = make_split(load("synthetic:users=40,items=40,days=20,seed=3"))
    assert len(sp.test) > 0 and all(len(c) == sp.config.n_candidates for c in sp.test["candidates"])


def test_validation_run_never_reads_the_test_windows():
    from feedback.loaders import load
    from feedback.split import SplitConfig, make_split

    data = load("synthetic:users=80,items=60,days=30,seed=1")
    full = make_split(data)
    tune = make_split(data, SplitConfig(validation_run=True))
    # the tuning split lives entirely inside the full split's training events
    assert len(tune.train) < len(full.train)
    last_train = full.train.groupby("user_id")["timestamp"].max()
    for _, r in tune.test.iterrows():
        assert r["t_cut"] <= last_train[r["user_id"]]
    assert "[validation]" in tune.data.name


def test_data_split_cli_writes_parquet_and_a_datasetdict(tmp_path):
    import datasets

    from cluster.cli import main as conrec

    assert conrec(["data", "split", "--data", "synthetic:users=60,items=60,days=20,seed=1", "--out",
                   str(tmp_path / "s")]) == 0
    dd = datasets.load_from_disk(str(tmp_path / "s" / "hf"))
    assert set(dd) == {"train", "test", "examples"}
    for name in ("train", "test", "examples"):
        assert dd[name].num_rows == len(pd.read_parquet(tmp_path / "s" / f"{name}.parquet"))
    assert sorted(p.name for p in (tmp_path / "s").iterdir() if p.name.startswith(".")) == []  # no temp, no cache


def test_data_split_writes_examples_a_chunk_of_users_at_a_time_and_the_same_as_whole(tmp_path):
    import pyarrow.parquet as pq

    from cluster.cli import main as conrec
    from feedback.loaders import load
    from reward.ground_truth import build_ground_truth

    spec = "synthetic:users=60,items=60,days=20,seed=1"
    assert conrec(["data", "split", "--data", spec, "--out", str(tmp_path / "s"), "users_per_chunk=7"]) == 0
    got = pd.read_parquet(tmp_path / "s" / "examples.parquet")
    assert pq.ParquetFile(tmp_path / "s" / "examples.parquet").num_row_groups >= 5  # one per chunk of users
    split = make_split(load(spec))
    ex = training_examples(split, 50)
    gt = build_ground_truth(ex, split, 50)
    assert got["uidx"].tolist() == ex["uidx"].tolist() and got["cut_pos"].tolist() == ex["cut_pos"].tolist()
    assert [g.tolist() for g in got["gts"]] == [gt.gts(i).tolist() for i in range(len(gt))]
    assert [c.tolist() for c in got["ctx_items"]] == [c.tolist() for c in ex["ctx_items"]]


def test_sft_holds_out_what_the_curriculum_validates_on():
    # the curriculum's validation users are test users of the split carved from the training events; a model
    # trained on those users' events from their validation cutoff on would be validated on its own targets
    from feedback.loaders import load
    from feedback.split import validation_users, without_validation_future

    split = make_split(load("synthetic:users=60,items=40,days=30,seed=2"))
    val = validation_users(split, 10, seed=0)
    assert len(val.test) == 10
    assert validation_users(split, 10, seed=0).test["user_id"].tolist() == val.test["user_id"].tolist()  # stable
    held = without_validation_future(split, val)
    uid = np.asarray(split.data.user_ids)
    cut = dict(zip(val.test["user_id"], val.test["t_cut"]))
    kept = held.train.assign(user=uid[held.train["uidx"]])
    for u, t in cut.items():
        mine = kept[kept["user"] == u]
        assert len(mine) and (mine["timestamp"] < t).all()  # the user's earlier events stay
    others = split.train[~np.isin(uid[split.train["uidx"]], list(cut))]
    assert len(held.train) == len(others) + sum((kept["user"] == u).sum() for u in cut)  # nobody else loses any
    # SFT's examples of a validation user all end before that user's validation cutoff
    ex = training_examples(held)
    ex_user = uid[ex["uidx"]]
    assert all((ex["t_cut"][ex_user == u] < cut[u]).all() for u in cut)
