"""Public datasets by name: download from the publisher, check, unpack into a cache, reuse.

`conrec data fetch movielens-100k`, or a data spec that is a bare name (`data: movielens-100k`), finds the
dataset in the cache (`$CONREC_DATA`, else `~/.cache/conrec`) or downloads the publisher's archive, checks
its SHA-256, unpacks it beside the archive and marks the folder complete only then. Without a network it
fails at once with the URL and the folder to put the files in by hand.

Checksums: the publishers post none in SHA-256 (GroupLens posts MD5s, Zenodo MD5s), so an entry's
`sha256` is empty until pinned here. An unpinned download is trusted on first use: its SHA-256 is logged
and recorded beside it, and a checksum pinned later (`--sha256`, or `CONREC_DATA_SHA256_<NAME>`, for a
whole team) is checked against that record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tarfile
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublicDataset:
    url: str
    kind: str
    """The loader (a data spec kind) that reads the unpacked folder."""
    folder: str
    """The folder inside the archive that the loader reads."""
    sha256: str = ""
    note: str = ""


DATASETS = {
    "movielens-100k": PublicDataset("https://files.grouplens.org/datasets/movielens/ml-100k.zip", "movielens-100k",
                                    "ml-100k", note="943 users, 1,682 movies, 100k ratings 1-5"),
    "movielens-1m": PublicDataset("https://files.grouplens.org/datasets/movielens/ml-1m.zip", "movielens-1m",
                                  "ml-1m", note="6,040 users, 3,706 movies, 1M ratings 1-5"),
    "ml-latest-small": PublicDataset("https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
                                     "movielens-csv", "ml-latest-small",
                                     note="610 users, 9.7k movies, 100k half-star ratings"),
    "kuairand-pure": PublicDataset("https://zenodo.org/records/10439422/files/KuaiRand-Pure.tar.gz", "kuairand",
                                   "KuaiRand-Pure/data",
                                   note="27k users, 7.5k videos, explicit 'not interested' (is_hate)"),
}
MARK = ".conrec-fetch.json"


def cache_dir() -> Path:
    return Path(os.environ.get("CONREC_DATA") or Path.home() / ".cache" / "conrec").expanduser()


def resolve(name: str) -> str:
    """A bare dataset name → the data spec of its unpacked folder, fetching it first when not cached."""
    ds = DATASETS[name]
    return f"{ds.kind}:{fetch(name)}"


def fetch(name: str, url: str | None = None, sha256: str | None = None, timeout_s: float = 60.0) -> Path:
    """The folder the loader reads for dataset `name`, downloaded and unpacked into the cache if needed."""
    if name not in DATASETS:
        raise ValueError(f"unknown public dataset {name!r}; known: {sorted(DATASETS)} (conrec data fetch --list)")
    ds = DATASETS[name]
    url = url or ds.url
    want = (sha256 or os.environ.get(f"CONREC_DATA_SHA256_{name.upper().replace('-', '_')}") or ds.sha256).lower()
    root = cache_dir() / name
    target = root / ds.folder
    mark = root / MARK
    if mark.exists() and target.is_dir():
        rec = json.loads(mark.read_text())
        if want and rec.get("sha256") != want:
            raise ValueError(f"{root}: the cached {name} has SHA-256 {rec.get('sha256')}, not the pinned {want}; "
                             f"delete {root} and fetch again")
        return target
    if target.is_dir() and any(target.iterdir()):
        # unpacked by hand, as the offline error below tells a user to do: nothing to verify it against
        log.warning("%s: using the files placed by hand in %s (no archive, so no checksum was checked)", name, target)
        return target
    root.mkdir(parents=True, exist_ok=True)
    archive = root / Path(url.split("?")[0]).name
    part = archive.with_name(archive.name + ".part")
    log.info("fetching %s from %s", name, url)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r, open(part, "wb") as f:
            shutil.copyfileobj(r, f, 1 << 20)
    except (OSError, ValueError) as e:
        part.unlink(missing_ok=True)
        raise FileNotFoundError(
            f"cannot download {name} from {url} ({type(e).__name__}: {e}). Without a network: download that "
            f"archive elsewhere and unpack it so that {target} holds the files, then run again "
            f"(or point the data spec at any folder: {ds.kind}:/path/to/{Path(ds.folder).name})") from None
    got = _sha256(part)
    if want and got != want:
        part.unlink()
        raise ValueError(f"{url}: SHA-256 {got} does not match the pinned {want}; the download is corrupt or the "
                         "publisher changed the file (nothing was kept)")
    if not want:
        log.warning("%s: no pinned SHA-256; trusting this download (SHA-256 %s) and recording it in %s", name, got,
                    mark)
    os.replace(part, archive)
    tmp = root / ".unpack.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    _unpack(archive, tmp)
    if not (tmp / ds.folder).is_dir():
        shutil.rmtree(tmp)
        raise ValueError(f"{archive}: the archive has no folder {ds.folder!r}; the publisher changed its layout")
    shutil.rmtree(target, ignore_errors=True)
    top = Path(ds.folder).parts[0]
    os.replace(tmp / top, root / top)
    shutil.rmtree(tmp)
    mark.write_text(json.dumps({"name": name, "url": url, "sha256": got, "fetched": time.time()}, indent=2))
    return target


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _unpack(archive: Path, into: Path) -> None:
    into.mkdir(parents=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            z.extractall(into)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            t.extractall(into, filter="data")
    else:
        raise ValueError(f"{archive}: neither a zip nor a tar archive")
