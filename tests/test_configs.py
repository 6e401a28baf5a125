"""Every shipped config builds into its dataclasses (a renamed key or a bad value fails here, not on a GPU)."""

from pathlib import Path

import pytest

from cluster.run_config import RunConfig
from common.config import build
from tests.conftest import ROOT

RUN_CONFIGS = sorted(p for p in (ROOT / "configs").glob("*.yaml") if not p.name.startswith("sft_"))


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: p.name)
def test_shipped_run_configs_build(path: Path):
    cfg = build(RunConfig, path.read_text())
    assert cfg.grpo.prompts_per_step >= cfg.topology.learner_ranks
    if cfg.grpo.sampling.mode == "beam":
        assert cfg.grpo.sampling.n <= cfg.rollout.max_logprobs


def test_gpu_config_sets_the_engine():
    cfg = build(RunConfig, (ROOT / "configs/gpu.yaml").read_text(), ["rollout.tensor_parallel_size=2"])
    assert cfg.rollout.dtype == "bfloat16" and not cfg.rollout.enforce_eager
    assert cfg.rollout.tensor_parallel_size == 2 and cfg.topology.gpus_per_rollout == 1
