"""Atomic file writes: a reader never sees a half-written output that looks complete."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def write_atomic(path, write) -> Path:
    """`write(tmp_path)` into a temp file beside `path`, then rename it into place (any writer: safetensors, …)."""
    return _atomic(Path(path), write)


def _atomic(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; the result gets the mode of any new file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_writable(path, kind: str = "file", flag: str = "--out") -> None:
    """Fail now, before any work, if `path` cannot receive a result of `kind` ('file' or 'folder')."""
    p = Path(path)
    if kind == "file" and p.is_dir():
        raise ValueError(f"{flag} {p} is a folder; give a file name (e.g. {p / 'result.json'})")
    if kind == "folder" and p.exists() and not p.is_dir():
        raise ValueError(f"{flag} {p} is a file; give a folder")
    parent = p if kind == "folder" and p.exists() else p.parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {p}: {parent} is not writable; choose another place")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_parquet_atomic(df, path) -> Path:
    return _atomic(Path(path), lambda tmp: df.to_parquet(tmp, index=False))


def write_parquet_parts_atomic(frames, path) -> int:
    """Each DataFrame of the iterable `frames` as one row group of one Parquet file, so that only one part is in
    memory at a time; the file appears whole at the end or not at all. Returns the number of rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 0

    def w(tmp):
        nonlocal rows
        writer = None
        try:
            for df in frames:
                table = pa.Table.from_pandas(df, schema=writer.schema if writer else None, preserve_index=False)
                writer = writer or pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
                rows += len(df)
        finally:
            if writer:
                writer.close()
        if writer is None:
            raise ValueError(f"{path}: no part to write")

    _atomic(Path(path), w)
    return rows


def write_json_atomic(obj, path) -> Path:
    def w(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False)
            f.write("\n")

    return _atomic(Path(path), w)


def write_text_atomic(text: str, path) -> Path:
    def w(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return _atomic(Path(path), w)


def write_npz_atomic(arrays: dict, path) -> Path:
    import numpy as np

    def w(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    return _atomic(Path(path), w)
