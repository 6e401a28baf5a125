"""Loaders and data specs, on small fixtures written by the tests (no licensed data needed)."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from feedback.loaders import load, parse_spec
from feedback.schema import DataValidationError
from feedback.simulator import SimConfig, simulate
from tests.conftest import ROOT


def write_ml_csv(d):
    # ml-latest-small style: half stars, a "(no genres listed)" movie, a header row
    (d / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,10,0.5,1000\n1,20,2.5,1100\n1,30,4.0,1200\n"
                                   "2,10,2.0,1000\n2,30,3.5,1300\n")
    (d / "movies.csv").write_text('movieId,title,genres\n10,"Heat (1995)",Action|Crime\n'
                                  '20,"Toy Story (1995)",Animation|Children\n'
                                  '30,"Odd, Film (2001)",(no genres listed)\n')


def test_movielens_csv_half_stars(tmp_path):
    write_ml_csv(tmp_path)
    d = load(f"movielens-csv:{tmp_path}")
    fb = dict(zip(zip(d.events.user_id, d.events.item_id), d.events.feedback))
    # negative ≤ 2, positive ≥ 4, else neutral: 0.5 → neg, 2.5 → neutral, 4.0 → pos, 2.0 → neg, 3.5 → neutral
    assert fb == {(1, 10): "negative", (1, 20): "neutral", (1, 30): "positive", (2, 10): "negative",
                  (2, 30): "neutral"}
    assert d.items.set_index("item_id").loc[30, "genres"] == ""
    assert d.items.set_index("item_id").loc[30, "title"] == "Odd, Film (2001)"
    # thresholds are options of the spec
    d2 = load(f"movielens-csv:{tmp_path},neg=2.5,pos=3.5")
    assert (d2.events.feedback == "neutral").sum() == 0


def test_parquet_round_trip_and_options(tmp_path):
    ev, items, truth = simulate(SimConfig(users=30, items=50, days=10, seed=1))
    ev = pd.concat([ev, ev.iloc[:2]])  # two duplicate events
    (tmp_path / "p").mkdir()
    ev.to_parquet(tmp_path / "p" / "events.parquet")
    items.to_parquet(tmp_path / "p" / "items.parquet")
    with pytest.raises(DataValidationError, match="2 duplicate"):
        load(f"parquet:{tmp_path / 'p'}")
    d = load(f"parquet:{tmp_path / 'p'},on_duplicate=drop")
    assert d.report.dropped == {"duplicate events": 2}
    assert len(d.events) == len(ev) - 2
    assert "category" in d.category_columns and "image_emb" not in d.category_columns


def test_malformed_parquet(tmp_path):
    (tmp_path / "events.parquet").write_bytes(b"PAR1 this is not parquet")
    (tmp_path / "items.parquet").write_bytes(b"nope")
    with pytest.raises(DataValidationError, match=r"events.parquet: not a readable Parquet file of 24 bytes .*"
                                                  r"Fix: if it was copied or downloaded, copy it again"):
        load(f"parquet:{tmp_path}")


def test_truncated_and_empty_parquet_are_named_and_told_apart(tmp_path):
    pd.DataFrame({"item_id": np.arange(50), "title": ["t"] * 50}).to_parquet(tmp_path / "items.parquet")
    whole = (tmp_path / "items.parquet").read_bytes()
    pd.DataFrame({"user_id": [1], "item_id": [1], "timestamp": [1], "feedback": ["negative"]}).to_parquet(
        tmp_path / "events.parquet")
    (tmp_path / "items.parquet").write_bytes(whole[: len(whole) // 2])  # a copy cut short
    with pytest.raises(DataValidationError, match=rf"items.parquet: not a readable Parquet file of {len(whole) // 2} "
                                                  "bytes.*a truncated copy reads like this"):
        load(f"parquet:{tmp_path}")
    (tmp_path / "items.parquet").write_bytes(whole)
    (tmp_path / "truth.parquet").write_bytes(b"")  # the optional ground-truth file is checked too
    with pytest.raises(DataValidationError, match="truth.parquet: not a readable Parquet file of 0 bytes.*empty"):
        load(f"parquet:{tmp_path}")


@pytest.mark.parametrize("spec, match", [
    ("ml100k", "has no kind"),
    ("foo:bar", "unknown kind 'foo'"),
    ("parquet:", "needs a folder path"),
    ("synthetic:users=10,colour=3", r"unknown simulator option\(s\) \['colour'\]"),
    ("synthetic:users", "is not key=value"),
])
def test_bad_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        load(spec)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="lacks u.data, u.item"):
        load(f"movielens-100k:{tmp_path}")


def test_parse_spec():
    assert parse_spec("movielens-100k:/a/b,neg=1") == ("movielens-100k", "/a/b", {"neg": "1"})
    assert parse_spec("synthetic:users=5,seed=2") == ("synthetic", None, {"users": "5", "seed": "2"})


def test_movielens_100k(ml100k):
    d = load(f"movielens-100k:{ml100k}")
    r = d.report
    assert (r.n_events, r.n_users, r.n_items, r.n_negative) == (100_000, 943, 1682, 17_480)
    assert d.items.iloc[0]["title"] == "Toy Story (1995)" and d.items.iloc[0]["genres"] == "Animation|Children's|Comedy"


def test_data_stats_cli(ml100k, tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "cluster.cli", "data", "stats", "--data", f"movielens-100k:{ml100k}",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "negative 17,480" in proc.stdout
    assert json.loads(out.read_text())["n_users"] == 943


def test_unreadable_file_is_a_data_error(tmp_path, monkeypatch):
    # (as root chmod cannot make a file unreadable, so the read itself is made to fail as it would)
    import feedback.loaders as loaders
    from feedback.schema import DataValidationError

    write_ml_csv(tmp_path)

    def denied(path, *a, **k):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(loaders.pd, "read_csv", denied)
    with pytest.raises(DataValidationError, match=r"ratings.csv: cannot be read \(Permission denied\).*permissions"):
        loaders.load(f"movielens-csv:{tmp_path}")


def write_ml100k(d, data_lines: str, item_lines: str = "10|Heat (1995)|01-Jan-1995||x" + "|0" * 19 + "\n"):
    d.mkdir(exist_ok=True)
    (d / "u.data").write_text(data_lines)
    (d / "u.item").write_text(item_lines, encoding="latin-1")


@pytest.mark.parametrize("rating", ["0", "6", "-1"])
def test_ratings_outside_the_scale_are_errors_naming_the_line(tmp_path, rating):
    # were silently mapped to negative (0, −1) or positive (6)
    write_ml100k(tmp_path, f"1\t10\t3\t1000\n1\t10\t{rating}\t1100\n")
    with pytest.raises(DataValidationError, match=rf"u.data: line 2: rating {rating} is outside the scale 1–5 "
                                                  r"\(1 such line\(s\)\).*scale=0-10"):
        load(f"movielens-100k:{tmp_path}")
    assert len(load(f"movielens-100k:{tmp_path},scale=-1-6").events) == 2  # the data's own scale, as an option
    write_ml_csv(tmp_path)
    (tmp_path / "ratings.csv").write_text(f"userId,movieId,rating,timestamp\n1,10,4,1000\n1,20,{rating},1100\n")
    with pytest.raises(DataValidationError, match=r"ratings.csv: line 3: rating .* is outside the scale 0.5–5"):
        load(f"movielens-csv:{tmp_path}")


@pytest.mark.parametrize("spec_opt, match", [
    ("on_duplicate=maybe", r"on_duplicate='maybe': choose one of error, drop"),
    ("on_empty_title=drop", r"on_empty_title='drop': choose one of error, fill"),
    ("scale=5", r"scale='5': write LO-HI"),
    ("scale=5-1", "LO must be below HI"),
])
def test_bad_option_values_are_refused(tmp_path, spec_opt, match):
    write_ml100k(tmp_path, "1\t10\t3\t1000\n")
    with pytest.raises(ValueError, match=match):
        load(f"movielens-100k:{tmp_path},{spec_opt}")


def test_item_table_errors_name_the_item_file_and_its_line(tmp_path):
    # used to say "u.data (items), row 1"
    item = "|Heat (1995)|01-Jan-1995||x" + "|0" * 19 + "\n"
    write_ml100k(tmp_path, "1\t10\t3\t1000\n", "10" + item + "10" + item)
    with pytest.raises(DataValidationError, match=r"u.item, column 'item_id', line 2: duplicate item id 10"):
        load(f"movielens-100k:{tmp_path}")
    write_ml_csv(tmp_path)
    (tmp_path / "movies.csv").write_text('movieId,title,genres\n10,"Heat",Action\n10,"Heat",Action\n')
    with pytest.raises(DataValidationError, match=r"movies.csv, column 'item_id', line 3: duplicate item id 10"):
        load(f"movielens-csv:{tmp_path}")


def test_event_errors_give_file_lines_even_after_dropped_rows(tmp_path):
    # line 1 and 2 are duplicates (dropped on request); the unknown item is on line 4 of u.data
    write_ml100k(tmp_path, "1\t10\t3\t1000\n1\t10\t3\t1000\n1\t10\t4\t1200\n2\t99\t1\t1300\n")
    with pytest.raises(DataValidationError, match=r"u.data, column 'item_id', line 4: 1 event\(s\) name items "
                                                  r"absent from the item table, e.g. 99"):
        load(f"movielens-100k:{tmp_path},on_duplicate=drop")


@pytest.mark.parametrize("line, match", [
    ("1\t10\tx\t1000\n", r"u.data: line 2: rating 'x' is not a number"),
    ("1\t10\t3\t1000\t7\n", r"u.data: not four tab-separated fields per line \(.*line 2"),
])
def test_bad_u_data_lines_say_which_line(tmp_path, line, match):
    write_ml100k(tmp_path, "1\t10\t3\t1000\n" + line)
    with pytest.raises(DataValidationError, match=match):
        load(f"movielens-100k:{tmp_path}")
