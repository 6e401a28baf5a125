"""Shared test fixtures. Real-stack tests start what they need themselves and clean up after."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CONREC_SHARED_DATA", ROOT.parent / "shared" / "data"))
ML100K = SHARED_DATA / "movielens-100k"

# vLLM in-process (no engine subprocess) and a small KV cache: fast and light on a 2-core machine.
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


@pytest.fixture(scope="session")
def ml100k() -> Path:
    if not (ML100K / "u.data").exists():
        pytest.skip(f"MovieLens-100k not found at {ML100K} (set CONREC_SHARED_DATA); its licence forbids "
                    "copying it into the project")
    return ML100K


def python_cmd(*args: str) -> list[str]:
    return [sys.executable, *args]


# The tiny `conrec run` the real-stack tests share: a 100-item simulator, a 1-layer model, one SFT epoch; SID and
# SFT take seconds, so what a run costs here is starting Ray, vLLM and DeepSpeed (≈ 30 s on 2 cores).
TINY_ARGS = ["data=synthetic:users=120,items=100,days=30,seed=1", "sid.encoder.text_encoder=hashing",
             "sid.rqvae.epochs=10", "sid.rqvae.codebook_size=16", "sft.epochs=1", "sft.model.tiny.hidden_size=64",
             "sft.model.tiny.num_hidden_layers=1", "sft.model.tiny.num_attention_heads=2",
             "sft.model.tiny.num_key_value_heads=2", "grpo.val_users=20", "grpo.prompts_per_step=4"]
# 6 steps with a checkpoint after each: room for a run to be stopped twice and still have steps left to resume
TINY_GRPO = ["grpo.save_every=1", "topology.rollout_actors=2", "topology.learner_ranks=2",
             "curriculum.stages=[{name: neg_recent, context_mode: neg_recent, steps: 3},"
             "{name: neg_pos, context_mode: neg_pos, steps: 3}]"]


def conrec_cmd(run, *extra) -> list[str]:
    return [sys.executable, "-m", "cluster.cli", "run", "--config", str(ROOT / "configs/demo.yaml"),
            f"run_dir={run}", *TINY_ARGS, *TINY_GRPO, *extra]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One uninterrupted tiny run, weights verified after every sync: test_run.py checks what it writes,
    test_faults.py compares interrupted runs against it bit for bit, and others start from its SIDs and SFT
    model (`seeded_from`) instead of building their own."""
    import subprocess

    run = tmp_path_factory.mktemp("tiny") / "ref"
    proc = subprocess.run(conrec_cmd(run, "grpo.verify_sync_every=1"), cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return run, proc


def seeded_from(ref, run):
    """A new run dir holding `ref`'s finished SID and SFT stages (the pipeline skips them with --resume)."""
    import shutil

    run.mkdir()
    shutil.copytree(ref / "sid", run / "sid")
    shutil.copytree(ref / "sft" / "final", run / "sft" / "final")
    return run
