"""`conrec doctor` names the component that fails, exits non-zero, and passes when all is well."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def _doctor(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "cluster.cli", "doctor", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=env)


def test_doctor_reports_versions_and_passes_verl():
    proc = _doctor("--only", "verl")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for comp in ("torch", "transformers", "ray", "deepspeed", "vllm", "verl", "datasets", "pyarrow"):
        assert f"\n  {comp} " in proc.stdout
    assert "[ok  ] verl" in proc.stdout and "all checks passed" in proc.stdout


def test_doctor_names_a_broken_vllm(tmp_path):
    # A module named vllm that cannot import shadows the real one: a broken install, as a user would have it.
    (tmp_path / "vllm.py").write_text("raise ImportError('simulated broken vllm install')\n")
    pythonpath = os.pathsep.join([str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH", "")])
    proc = _doctor("--only", "vllm", "verl", env_extra={"PYTHONPATH": pythonpath})
    assert proc.returncode == 1
    assert "[FAIL] vllm" in proc.stdout and "simulated broken vllm install" in proc.stdout
    assert "fix: vLLM could not serve" in proc.stdout
    assert "[ok  ] verl" in proc.stdout  # one failure hides nothing else
    assert "1 check(s) failed: vllm" in proc.stdout


def test_cli_unknown_command():
    proc = subprocess.run([sys.executable, "-m", "cluster.cli", "frobnicate"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "unknown command 'frobnicate'" in proc.stderr
