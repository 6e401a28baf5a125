"""Loaders and data specs, on small fixtures written by the tests (no licensed data needed)."""

import json
import subprocess
import sys

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
    with pytest.raises(DataValidationError, match="cannot read Parquet.*Fix: rewrite"):
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
