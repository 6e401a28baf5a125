"""Learner actor: one GRPO learner rank (DeepSpeed inside, torch.distributed across the group)."""

from __future__ import annotations

import os

import ray

from cluster.weight_sync import SyncMember
from common.faults import maybe_fail


@ray.remote
class LearnerActor(SyncMember):
    def __init__(self, rank: int, world: int, master_addr: str, master_port: int):
        from common.logs import redirect_worker_output

        redirect_worker_output(f"learner-rank{rank}-pid{os.getpid()}")
        os.environ.update(MASTER_ADDR=master_addr, MASTER_PORT=str(master_port), RANK=str(rank),
                          LOCAL_RANK="0", WORLD_SIZE=str(world))

    def ready(self) -> bool:
        return True

    def setup(self, model_dir: str, sid_dir: str, cfg) -> bool:
        import logging

        logging.basicConfig(level=logging.INFO)  # a no-op when the output was redirected (configured there)
        from trainer.grpo_learner import GRPOLearner

        self.learner = GRPOLearner(model_dir, sid_dir, cfg)
        return True

    def update(self, batch, kl_coef: float) -> dict:
        maybe_fail("learner_update")
        return self.learner.update(batch, kl_coef)

    def set_lr(self, lr: float) -> None:
        self.learner.set_lr(lr)

    def greedy_codes(self, prompts) -> list:
        """Trie-constrained greedy codes of the current policy (to verify the engines' weights)."""
        from rollout.constrained import trie_beam_search

        lr = self.learner
        beams = trie_beam_search(lr.engine.module.eval(), lr.tok, prompts, lr.index.trie, lr.map, num_beams=1)
        lr.engine.module.train()
        return [b[0][0] for b in beams]

    def code_logprobs(self, prompts: list, codes):
        """log p(code | prompt) [B, C] for this rank's shard (the final evaluation's candidate and alignment
        scores). A plain forward on the rank's own module: ZeRO stages 0-2 hold the whole model on every rank."""
        import numpy as np
        import torch

        from rollout.constrained import batched_code_logprobs

        lr = self.learner
        if lr.cfg.zero_stage == 3:
            raise ValueError("the final evaluation on the engines scores candidates on the learners, which needs "
                             "the whole model on each rank: grpo.learner.zero_stage ≤ 2, or evaluate_on=driver")
        if not len(prompts):
            return np.zeros((0, codes.shape[1]), dtype=np.float64)
        model = lr.engine.module.eval()
        try:
            with torch.no_grad():
                return batched_code_logprobs(model, lr.tok, prompts, codes, lr.map)
        finally:
            model.train()

    def named_weights(self):
        return self.learner.named_weights()

    # the collective weight-sync group (cluster.weight_sync, SyncMember): rank 0 of it is learner rank 0
    def free_port(self) -> tuple[str, int]:
        return free_port_on_node()

    def weight_meta(self) -> list:
        from cluster.weight_sync import tensor_meta

        return tensor_meta(self.learner.named_weights())

    def send_weights(self, plan) -> None:
        """Broadcast the weights bucket by bucket (rank 0); other ranks only join a ZeRO-3 gather."""
        named = self.learner.named_weights(self.sync_group.device if self.learner.rank == 0 else "cpu")
        if self.learner.rank == 0:
            self.sync_group.send(named, plan)

    def save(self, out_dir: str) -> str:
        """Collective (every rank calls it): the HF folder of the gathered weights, written by rank 0."""
        self.learner.save_pretrained(out_dir)
        return out_dir

    def save_state(self, d: str) -> None:
        """DeepSpeed state of this rank (weights, optimizer, scheduler, RNG); every rank calls it."""
        from trainer.checkpoint import save_engine_state

        save_engine_state(self.learner.engine, d, step=self.learner.step)

    def load_state(self, d: str) -> None:
        from trainer.checkpoint import load_engine_state

        self.learner.step = load_engine_state(self.learner.engine, d)["step"]

    def load_weights(self, named_tensors) -> None:
        missing, unexpected = self.learner.engine.module.load_state_dict(dict(named_tensors), strict=False)
        if unexpected or any(not k.startswith("lm_head") for k in missing):  # lm_head may be tied to the embeddings
            raise ValueError(f"weights do not fit the learner: missing {missing}, unexpected {unexpected}")


def free_port_on_node() -> tuple[str, int]:
    """Run inside a Ray task on the node of rank 0: its IP (the address Ray uses, 127.0.0.1 for a local
    run) and a free port there."""
    import socket

    from ray.util import get_node_ip_address

    ip = get_node_ip_address()
    with socket.socket() as s:
        s.bind((ip, 0))
        return ip, s.getsockname()[1]
