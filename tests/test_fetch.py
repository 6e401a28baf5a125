"""Public data by name, offline: a file:// URL and fixture archives stand in for the publisher (checksum good,
checksum bad, archive missing, cache reuse); the MovieLens-1M and KuaiRand loaders on fixture files in their
documented schemas."""

import hashlib
import io
import tarfile
import zipfile

import numpy as np
import pytest

from feedback.fetch import MARK, fetch
from feedback.loaders import load
from feedback.schema import DataValidationError

ML1M_RATINGS = "1::10::1::978300760\n1::20::5::978300761\n2::10::2::978300800\n2::30::4::978300900\n"
ML1M_MOVIES = "10::Star Wars: Episode IV (1977)::Action|Sci-Fi\n20::Amélie (2001)::Comedy\n30::Heat (1995)::Crime\n"


def ml1m_zip(path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("ml-1m/ratings.dat", ML1M_RATINGS.encode("latin-1"))
        z.writestr("ml-1m/movies.dat", ML1M_MOVIES.encode("latin-1"))
    return path


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONREC_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_fetch_by_name_unpacks_and_reuses_the_cache(tmp_path, cache, caplog):
    src = ml1m_zip(tmp_path / "ml-1m.zip")
    folder = fetch("movielens-1m", url=src.as_uri())
    assert folder == cache / "movielens-1m" / "ml-1m" and (folder / "ratings.dat").exists()
    assert "no pinned SHA-256" in caplog.text  # trusted on first use, and recorded
    assert hashlib.sha256(src.read_bytes()).hexdigest() in (cache / "movielens-1m" / MARK).read_text()
    src.unlink()  # the publisher is gone: the cache still serves, and a bare-name spec reads it
    data = load("movielens-1m")
    assert len(data.events) == 4 and data.name.startswith("movielens-1m:")


def test_fetch_checksums(tmp_path, cache):
    src = ml1m_zip(tmp_path / "ml-1m.zip")
    good = hashlib.sha256(src.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match="does not match the pinned"):
        fetch("movielens-1m", url=src.as_uri(), sha256="0" * 64)
    assert not (cache / "movielens-1m" / "ml-1m").exists() and not list((cache / "movielens-1m").glob("*.zip*"))
    assert fetch("movielens-1m", url=src.as_uri(), sha256=good).is_dir()
    with pytest.raises(ValueError, match="not the pinned"):  # a later pin that disagrees with the record
        fetch("movielens-1m", sha256="1" * 64)


def test_fetch_without_the_archive_says_where_to_put_the_files(tmp_path, cache):
    with pytest.raises(FileNotFoundError, match=r"cannot download movielens-1m from file://.*Without a network.*"
                                                r"movielens-1m/ml-1m holds the files"):
        fetch("movielens-1m", url=(tmp_path / "missing.zip").as_uri())
    # doing what the message says works: the files placed by hand are read, with no network (a regression:
    # the folder was ignored without the mark a download writes, so the advice led to the same error)
    with zipfile.ZipFile(ml1m_zip(tmp_path / "ml-1m.zip")) as z:
        z.extractall(cache / "movielens-1m")
    assert fetch("movielens-1m", url=(tmp_path / "missing.zip").as_uri()) == cache / "movielens-1m" / "ml-1m"
    assert len(load("movielens-1m").events) == 4
    with pytest.raises(ValueError, match="unknown public dataset"):
        fetch("movielens-2m")


def test_movielens_1m_loader(tmp_path):
    d = tmp_path / "ml-1m"
    d.mkdir()
    (d / "ratings.dat").write_bytes(ML1M_RATINGS.encode("latin-1"))
    (d / "movies.dat").write_bytes(ML1M_MOVIES.encode("latin-1"))
    data = load(f"movielens-1m:{d}")
    assert data.events["feedback"].tolist().count("negative") == 2  # ratings 1 and 2 are negative
    titles = data.items["title"].tolist()
    assert "Amélie (2001)" in titles and "Star Wars: Episode IV (1977)" in titles
    (d / "ratings.dat").write_text("1::10::x::978300760\n")
    with pytest.raises(DataValidationError, match=r"ratings.dat: line 1: rating .x. is not a number"):
        load(f"movielens-1m:{d}")
    (d / "ratings.dat").write_text("1::10::5\n")
    with pytest.raises(DataValidationError, match="line 1 has 3 '::'-separated fields"):
        load(f"movielens-1m:{d}")


KR_LOG = ("user_id,video_id,date,hourmin,time_ms,is_click,is_like,is_follow,is_comment,is_forward,is_hate,"
          "long_view,play_time_ms,duration_ms,profile_stay_time,comment_stay_time,is_profile_enter,is_rand,tab\n"
          "0,100,20220408,1000,1649412000000,1,0,0,0,0,1,0,1000,20000,0,0,0,0,1\n"
          "0,101,20220408,1000,1649412060500,1,1,0,0,0,0,0,9000,20000,0,0,0,0,1\n"
          "1,100,20220409,1200,1649498400000,1,0,0,0,0,0,0,500,20000,0,0,0,0,1\n"
          "1,102,20220409,1200,1649498460000,1,0,0,0,0,0,1,19000,30000,0,0,0,0,1\n")
KR_RANDOM = KR_LOG.splitlines()[0] + "\n1,101,20220425,1200,1650888000000,0,0,0,0,0,1,0,0,20000,0,0,0,1,1\n"
KR_VIDEOS = ("video_id,author_id,video_type,upload_dt,upload_type,visible_status,video_duration,server_width,"
             "server_height,music_id,music_type,tag\n100,7,NORMAL,2022-01-01,ShortImport,public,20000,720,1280,5,9,"
             "60\n101,8,AD,2022-01-02,ShortImport,public,20000,720,1280,6,4,11\n")


def test_kuairand_pure_fetched_and_loaded(tmp_path, cache):
    buf = tmp_path / "KuaiRand-Pure.tar.gz"
    with tarfile.open(buf, "w:gz") as t:
        for name, text in (("log_standard_4_08_to_4_21_pure.csv", KR_LOG),
                           ("log_random_4_22_to_5_08_pure.csv", KR_RANDOM),
                           ("video_features_basic_pure.csv", KR_VIDEOS)):
            info = tarfile.TarInfo(f"KuaiRand-Pure/data/{name}")
            info.size = len(text.encode())
            t.addfile(info, io.BytesIO(text.encode()))
    fetch("kuairand-pure", url=buf.as_uri())
    data = load("kuairand-pure")
    ev = data.events.sort_values(["user_id", "timestamp"])
    # is_hate → negative; a like or a long view → positive
    assert ev["feedback"].tolist() == ["negative", "positive", "neutral", "positive"]
    assert ev["timestamp"].iloc[1] == 1649412060  # milliseconds → seconds
    assert set(data.items["item_id"]) == {100, 101, 102}  # 102 has logs but no feature row: kept, by id
    assert "tag 60" in data.items.set_index("item_id").loc[100, "text"]
    everything = load("kuairand-pure,logs=all")
    assert len(everything.events) == 5 and np.sum(everything.events["feedback"] == "negative") == 2
