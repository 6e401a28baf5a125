"""Rollout actor: one generation engine (vLLM by default, HF as fallback) on its own Ray worker."""

from __future__ import annotations

import ray

from cluster.weight_sync import SyncMember
from common.faults import maybe_fail


@ray.remote
class RolloutActor(SyncMember):
    def __init__(self, engine: str, model_dir: str, sid_dir: str, seed: int = 0, cfg=None):
        """`cfg`: a rollout.engine.EngineConfig (None: the CPU defaults)."""
        import logging
        import os

        from common.logs import redirect_worker_output

        if redirect_worker_output(f"rollout-pid{os.getpid()}") is None:
            logging.basicConfig(level=logging.INFO)
        if engine == "vllm":
            from rollout.vllm_engine import VllmEngine

            self.engine = VllmEngine(model_dir, sid_dir, seed=seed, cfg=cfg)
        elif engine == "hf":
            from rollout.hf_engine import HFEngine

            self.engine = HFEngine(model_dir, sid_dir, seed=seed, cfg=cfg)
        else:
            raise ValueError(f"rollout engine must be 'vllm' or 'hf', got {engine!r}")

    def generate(self, prompts, sampling):
        maybe_fail("rollout_generate")
        return self.engine.generate(prompts, sampling)

    def update_weights(self, named_tensors) -> float:
        maybe_fail("rollout_sync")
        return self.engine.update_weights(named_tensors)


    def receive_weights(self, meta, plan) -> float:
        """The collective transport: receive each broadcast bucket and load it; returns seconds loading."""
        maybe_fail("rollout_sync")
        return self.sync_group.receive(meta, plan, self.engine.update_weights)

    def ready(self) -> bool:
        return True
