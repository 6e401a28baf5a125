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
