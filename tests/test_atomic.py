"""Atomic writes: the file appears whole or not at all, with the mode any new file would get (umask)."""

import os
import stat

import pytest

from common.atomic import write_json_atomic, write_npz_atomic, write_text_atomic


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_atomic_writes_respect_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        paths = [write_json_atomic({"a": 1}, tmp_path / "r.json"), write_text_atomic("x", tmp_path / "r.md"),
                 write_npz_atomic({"v": [1, 2]}, tmp_path / "r.npz")]
    finally:
        os.umask(old)
    assert [stat.S_IMODE(p.stat().st_mode) for p in paths] == [mode] * 3  # mkstemp alone gives 0600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(TypeError):
        write_json_atomic({"a": object()}, tmp_path / "r.json")
    assert list(tmp_path.iterdir()) == []


def test_parquet_parts_appear_whole_or_not_at_all(tmp_path):
    import pandas as pd

    from common.atomic import write_parquet_parts_atomic

    parts = [pd.DataFrame({"a": [1, 2], "b": [[1], [2, 3]]}), pd.DataFrame({"a": [3], "b": [[4]]})]
    assert write_parquet_parts_atomic(iter(parts), tmp_path / "x.parquet") == 3
    assert pd.read_parquet(tmp_path / "x.parquet")["a"].tolist() == [1, 2, 3]

    def broken():
        yield parts[0]
        raise MemoryError("a part could not be built")

    with pytest.raises(MemoryError):
        write_parquet_parts_atomic(broken(), tmp_path / "y.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.parquet"]  # no partial file, no temp file
    with pytest.raises(ValueError, match="no part"):
        write_parquet_parts_atomic(iter([]), tmp_path / "z.parquet")
