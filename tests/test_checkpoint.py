"""Checkpoint integrity: a manifest of sizes and SHA-256 hashes, and fallback to the previous good one."""

import logging

from trainer.checkpoint import latest_checkpoint, step_dir, verify, write_manifest


def make(run, step, payload: bytes, keep=0):
    d = step_dir(run, step)
    (d / "ds").mkdir(parents=True)
    (d / "ds" / "state.pt").write_bytes(payload)
    (d / "driver.json").write_text('{"step": %d}' % step)
    write_manifest(d, {"step": step}, keep=keep)
    return d


def test_manifest_records_sizes_and_hashes(tmp_path):
    d = make(tmp_path, 3, b"abc")
    import json

    m = json.loads((d / "manifest.json").read_text())
    # sha256("abc"), the FIPS 180-2 test vector
    assert m["files"]["ds/state.pt"] == {"size": 3, "sha256":
                                         "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step_000003"
    assert verify(d) is None


def test_corrupted_truncated_and_unsealed_checkpoints_fall_back(tmp_path, caplog):
    good = make(tmp_path, 1, b"x" * 100)
    bad = make(tmp_path, 2, b"y" * 100)
    assert latest_checkpoint(tmp_path) == bad
    with open(bad / "ds" / "state.pt", "r+b") as f:  # a flipped byte, same size
        f.write(b"z")
    with caplog.at_level(logging.WARNING):
        assert latest_checkpoint(tmp_path) == good
    assert "step_000002 is unusable: ds/state.pt does not match its SHA-256" in caplog.text

    (bad / "ds" / "state.pt").write_bytes(b"y" * 10)  # truncated
    assert "has 10 bytes, the manifest says 100" in verify(bad)
    (bad / "ds" / "state.pt").unlink()
    assert verify(bad) == "ds/state.pt is missing"
    (bad / "manifest.json").unlink()  # a crash before the seal
    assert verify(bad) == "no manifest (the save did not finish)"
    (bad / "manifest.json").write_text("{not json")
    assert verify(bad).startswith("unreadable manifest")
    assert latest_checkpoint(tmp_path) == good
    (good / "driver.json").write_text("{}")  # every checkpoint broken: none, not a wrong one
    assert latest_checkpoint(tmp_path) is None


def test_keep_prunes_all_but_the_newest(tmp_path):
    for s in range(1, 6):
        make(tmp_path, s, b"p%d" % s, keep=2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*")) == ["step_000004", "step_000005"]
