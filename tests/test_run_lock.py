"""One run per run directory: a held lock names its holder, a dead holder's lock is taken over."""

import json
import logging
import os
import subprocess
import sys
import time

import pytest

from cluster.run_lock import LOCK_NAME, RunDirLocked, RunLock
from tests.conftest import ROOT

HOLD = ("import sys, time; from cluster.run_lock import RunLock\n"
        "with RunLock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)")


@pytest.fixture()
def holder(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield proc
    proc.kill()
    proc.wait()


def test_held_lock_names_its_holder(tmp_path, holder):
    with pytest.raises(RunDirLocked, match=f"in use by PID {holder.pid} on "):
        RunLock(tmp_path).__enter__()


def test_second_conrec_run_gets_one_line(tmp_path, holder):
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "cluster.cli", "run", "--config", str(ROOT / "configs/demo.yaml"),
                           f"run_dir={tmp_path}", "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"conrec run: error: {tmp_path} is in use by PID {holder.pid}" in proc.stderr
    assert time.monotonic() - t0 < 60  # refused before any work


def test_dead_holders_lock_is_taken_over(tmp_path, holder, caplog):
    holder.kill()  # SIGKILL: no clean release, the file still names it
    holder.wait()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == holder.pid
    with caplog.at_level(logging.WARNING), RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert f"taking over the lock of PID {holder.pid}" in caplog.text
    assert (tmp_path / LOCK_NAME).read_text() == ""  # released cleanly: empty


def test_clean_release_and_no_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        with RunLock(tmp_path):
            pass
        with RunLock(tmp_path):
            pass
    assert "taking over" not in caplog.text
