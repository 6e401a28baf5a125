"""Interrupting `conrec run`: SIGTERM or Ctrl-C during SFT stops the SFT child too, prints one line with
where it stopped and how to continue, no traceback, and exits 143 / 130."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.stack


def _sft_processes(run) -> list[int]:
    """PIDs of the run's SFT process (its command line names RUN/sft/sft.yaml)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                cmd = open(f"/proc/{d}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "trainer.sft" in cmd and str(run / "sft" / "sft.yaml") in cmd:
                out.append(int(d))
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not open(f"/proc/{pid}/stat").read().split()[2] == "Z"


@pytest.mark.parametrize("how, code", [("SIGTERM", 143), ("Ctrl-C", 130)])
def test_interrupt_during_sft(tmp_path, how, code):
    run, err = tmp_path / "run", tmp_path / "stderr.txt"
    args = [sys.executable, "-m", "cluster.cli", "run", "--config", str(ROOT / "configs/demo.yaml"),
            f"run_dir={run}", "data=synthetic:users=60,items=60,days=20,seed=1", "sid.encoder.text_encoder=hashing",
            "sid.rqvae.epochs=5", "sid.rqvae.codebook_size=8", "sft.epochs=100000", "sft.model.tiny.hidden_size=64",
            "sft.model.tiny.num_hidden_layers=1", "sft.model.tiny.num_attention_heads=2",
            "sft.model.tiny.num_key_value_heads=2"]
    with open(err, "w") as f:
        # SIGINT back to its default: a shell that started these tests in the background (CI, nohup … &)
        # leaves it ignored, and an ignored disposition is inherited through exec
        proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=f, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline, sft, log = time.monotonic() + 300, [], run / "sft" / "metrics.jsonl"
        while time.monotonic() < deadline:  # the SFT child is up and has taken training steps
            time.sleep(1)
            sft = _sft_processes(run)
            if sft and log.exists() and log.read_text().count("\n") >= 2:
                break
        assert sft and log.exists(), err.read_text()[-3000:]
        if how == "SIGTERM":
            proc.send_signal(signal.SIGTERM)  # the driver only, as a scheduler or `kill` would
        else:
            os.killpg(proc.pid, signal.SIGINT)  # the whole foreground group, as a terminal's Ctrl-C
        rc = proc.wait(timeout=60)
        assert rc == code, err.read_text()[-3000:]
        time.sleep(1)
        assert not any(_alive(p) for p in sft), "the SFT child outlived the driver"
        text = err.read_text()
        assert "conrec run: interrupted at SFT" in text and "--resume" in text, text[-3000:]
        assert "Traceback" not in text, text[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
