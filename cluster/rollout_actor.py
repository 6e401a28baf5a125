"""Rollout actor: one generation engine (vLLM by default, HF as fallback) on its own Ray worker."""

from __future__ import annotations

import ray

from cluster.faults import maybe_fail


@ray.remote
class RolloutActor:
    def __init__(self, engine: str, model_dir: str, sid_dir: str, seed: int = 0):
        import logging

        logging.basicConfig(level=logging.INFO)
        if engine == "vllm":
            from rollout.vllm_engine import VllmEngine

            self.engine = VllmEngine(model_dir, sid_dir, seed=seed)
        elif engine == "hf":
            from rollout.hf_engine import HFEngine

            self.engine = HFEngine(model_dir, sid_dir, seed=seed)
        else:
            raise ValueError(f"rollout engine must be 'vllm' or 'hf', got {engine!r}")

    def generate(self, prompts, sampling):
        maybe_fail("rollout_generate")
        return self.engine.generate(prompts, sampling)

    def update_weights(self, named_tensors) -> float:
        maybe_fail("rollout_sync")
        return self.engine.update_weights(named_tensors)

    def device_slot(self) -> tuple:
        from cluster.weight_sync import device_slot

        return device_slot()

    def join_sync_group(self, rank: int, addr: str, port: int, world: int, backend: str, timeout_s: float) -> bool:
        from cluster.weight_sync import SyncGroup

        self.sync_group = SyncGroup(addr, port, rank, world, backend, timeout_s)
        return True

    def receive_weights(self, meta, plan) -> float:
        """The collective transport: receive each broadcast bucket and load it; returns seconds loading."""
        maybe_fail("rollout_sync")
        return self.sync_group.receive(meta, plan, self.engine.update_weights)

    def ready(self) -> bool:
        return True
