"""Every validation error names where and what to do; documented repairs are counted."""

import numpy as np
import pandas as pd
import pytest

from feedback.schema import DataReport, DataValidationError, ValidationOptions, validate_events, validate_items


def items(n=3):
    return pd.DataFrame({"item_id": np.arange(1, n + 1), "title": [f"t{i}" for i in range(n)]})


def events(**cols):
    base = {"user_id": [1, 1, 2], "item_id": [1, 2, 3], "timestamp": [100, 200, 300],
            "feedback": ["negative", "positive", "neutral"]}
    base.update(cols)
    return pd.DataFrame(base)


@pytest.mark.parametrize("frame, match", [
    (events().drop(columns="feedback"), r"missing required column 'feedback'.*Fix: add a 'feedback' column"),
    (events(timestamp=["a", "b", "c"]), r"column 'timestamp'.*must be numbers of seconds.*Fix: convert"),
    (events(feedback=["negative", "meh", "neutral"]), r"column 'feedback', row 1: unknown feedback label 'meh'"),
    (events(user_id=[1, None, 2]), r"column 'user_id', row 1: null id"),
    (events(item_id=[1.5, 2.0, 3.0]), r"column 'item_id'.*ids must be integers or strings"),
    (events(timestamp=[100, 1_700_000_000_000, 300]), r"row 1: impossible timestamp.*divide milliseconds by 1000"),
    (events(timestamp=[-5, 100, 300]), r"row 0: impossible timestamp -5"),
    (events(timestamp=[100.5, 200, 300]), r"row 0: fractional timestamp"),
    (events(item_id=[1, 2, 99]), r"column 'item_id', row 2: 1 event\(s\) name items absent.*e.g. 99"),
    (events(user_id=[1, 1, 1], item_id=[1, 1, 2], timestamp=[5, 5, 6]), r"row 1: 1 duplicate \(user_id, item_id"),
    (events().iloc[:0], r"no events"),
    (events(exposed=[1, 0, 1]), r"'exposed' must be bool"),
])
def test_event_errors(frame, match):
    with pytest.raises(DataValidationError, match=match):
        validate_events(frame, "log.parquet", items())


def test_error_names_the_file():
    with pytest.raises(DataValidationError) as e:
        validate_events(events(feedback=["x", "negative", "neutral"]), "/data/events.parquet", items())
    assert str(e.value).startswith("/data/events.parquet, column 'feedback', row 0:")
    assert e.value.row == 0 and e.value.column == "feedback"


def test_repairs_are_counted():
    rep = DataReport("log")
    ev = events(user_id=[1, 1, 1, 2], item_id=[1, 1, 2, 77], timestamp=[5, 5, 6, 7],
                feedback=["negative", "negative", "positive", "neutral"])
    out = validate_events(ev, "log", items(), ValidationOptions(on_duplicate="drop", on_unknown_item="drop"), rep)
    assert len(out) == 2
    assert rep.dropped == {"duplicate events": 1, "events naming unknown items": 1}
    assert (rep.n_events, rep.n_negative, rep.n_positive, rep.n_users) == (2, 1, 1, 1)
    assert "dropped      1 duplicate events" in rep.summary()


def test_events_sorted_by_user_time_item():
    ev = events(user_id=[2, 1, 1], item_id=[3, 2, 1], timestamp=[1, 9, 9])
    out = validate_events(ev, "log", items())
    assert out[["user_id", "item_id"]].values.tolist() == [[1, 1], [1, 2], [2, 3]]


@pytest.mark.parametrize("frame, match", [
    (items().drop(columns="title"), r"missing required column 'title'"),
    (items().assign(item_id=[1, 1, 2]), r"row 1: duplicate item id 1"),
    (items().assign(title=["a", "", "c"]), r"column 'title', row 1: 1 empty title"),
    (items().assign(emb=[[0.0, 1.0], [np.nan, 1.0], [1.0, 1.0]]), r"column 'emb', row 1: NaN or inf"),
    (items().assign(emb=[[0.0, 1.0], [np.inf, 1.0], [1.0, 1.0]]), r"column 'emb', row 1: NaN or inf"),
    (items().assign(emb=[[0.0, 1.0], [1.0], [1.0, 1.0]]), r"column 'emb', row 1: embedding length 1 differs"),
])
def test_item_errors(frame, match):
    with pytest.raises(DataValidationError, match=match):
        validate_items(frame, "items.parquet")


def test_empty_title_fill_is_counted():
    rep = DataReport("items")
    out = validate_items(items().assign(title=["a", None, "c"]), "items", ValidationOptions(on_empty_title="fill"),
                         rep)
    assert out["title"].tolist() == ["a", "item 2", "c"]
    assert rep.repaired == {"empty titles filled": 1}
