"""A GRPO learner rank: the policy on DeepSpeed ZeRO plus a frozen reference model beside it.

It takes rollout batches (prompts, sampled SID completions, rewards, group ids), recomputes the
policy's and the reference's log-probs under the trie-constrained distribution the engine sampled
from, computes advantages and the loss with verl's algorithms, and steps the optimizer. One instance
per rank; the driver (or a Ray learner actor wrapping it) hands each rank its shard of the batch.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from trainer.grpo_algo import AlgoConfig, advantages, allowed_mask, constrained_logprobs, policy_objective

log = logging.getLogger(__name__)


@dataclass
class LearnerConfig:
    zero_stage: int = 2
    lr: float = 1e-4
    micro_batch: int = 64
    """Sequences per forward/backward on one rank."""
    bf16: bool = False
    grad_clip: float = 1.0
    algo: AlgoConfig = field(default_factory=AlgoConfig)


@dataclass
class RolloutBatch:
    prompts: list[str]
    completions: list[list[int]]
    rewards: np.ndarray
    group_ids: list
    engine_logprobs: list[list[float]] | None = None
    temperature: float = 1.0


class GRPOLearner:
    def __init__(self, model_dir: str, sid_dir: str, cfg: LearnerConfig, use_reference: bool = True):
        import deepspeed
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from rollout.constrained import SidTokenMap
        from sid.index import SidIndex
        from trainer.distributed import ds_config, init_distributed

        self.rank, self.world = init_distributed()
        self.cfg = cfg
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        self.ref = copy.deepcopy(model).eval().requires_grad_(False) if use_reference else None
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
        self.engine, _, _, _ = deepspeed.initialize(
            model=model, optimizer=opt,
            config=ds_config(cfg.zero_stage, cfg.micro_batch, 1, cfg.bf16, cfg.grad_clip))
        if self.ref is not None:
            self.ref.to(self.engine.device)
        self.index = SidIndex.load(sid_dir)
        self.map = SidTokenMap(self.tok, self.index.level_sizes)
        self.step = 0

    # ------------------------------------------------------------------ tensors
    def _tensors(self, b: RolloutBatch):
        """Right-padded prompt+completion ids, the logit positions of each response token, masks."""
        p_ids = [self.tok(p, add_special_tokens=False)["input_ids"] for p in b.prompts]
        T = max(len(c) for c in b.completions)
        seqs = [p + c for p, c in zip(p_ids, b.completions)]
        L = max(map(len, seqs))
        pad = self.tok.pad_token_id
        ids = torch.full((len(seqs), L), pad, dtype=torch.long)
        att = torch.zeros_like(ids)
        resp = torch.full((len(seqs), T), pad, dtype=torch.long)
        rmask = torch.zeros(len(seqs), T)
        pos = torch.zeros(len(seqs), T, dtype=torch.long)
        for n, (p, c) in enumerate(zip(p_ids, b.completions)):
            ids[n, :len(p) + len(c)] = torch.tensor(p + c)
            att[n, :len(p) + len(c)] = 1
            resp[n, :len(c)] = torch.tensor(c)
            rmask[n, :len(c)] = 1
            pos[n] = len(p) - 1 + torch.arange(T).clamp(max=max(len(c) - 1, 0))
        allowed = allowed_mask(b.completions, self.index.trie, self.map, len(self.tok), T)
        allowed |= ~rmask.bool().unsqueeze(-1)  # padding positions: anything (masked out of the loss)
        return ids, att, resp, rmask, pos, allowed

    def _logprobs(self, model, ids, att, resp, pos, allowed, temperature):
        d = self.engine.device
        logits = model(input_ids=ids.to(d), attention_mask=att.to(d)).logits
        logits = logits.gather(1, pos.to(d).unsqueeze(-1).expand(-1, -1, logits.shape[-1]))
        return constrained_logprobs(logits, resp.to(d), allowed.to(d), temperature)

    # ------------------------------------------------------------------ the update
    def update(self, b: RolloutBatch, kl_coef: float | None = None) -> dict:
        t0 = time.perf_counter()
        ids, att, resp, rmask, pos, allowed = self._tensors(b)
        adv = advantages(b.rewards, rmask, b.group_ids, self.cfg.algo)
        metrics: dict[str, float] = {}
        n = len(b.prompts)
        if n == 0:
            raise ValueError(f"learner rank {self.rank}: empty batch shard (give every rank at least one prompt)")
        # every rank must take the same number of optimizer steps (their gradients meet in all-reduce)
        n_micro = self._all_reduce([-(-n // self.cfg.micro_batch)], "max")[0]
        self.engine.train()
        slices = []
        for chunk in np.array_split(np.arange(n), int(n_micro)):
            if len(chunk) == 0:
                chunk = np.arange(1)  # a rank with fewer rows repeats one so the collectives line up
            slices.append(slice(int(chunk[0]), int(chunk[-1]) + 1))
        # old and reference log-probs of the whole batch before any optimizer step (PPO's "old" policy is
        # the one that sampled). With one micro-step the old policy *is* the current one, so its
        # log-probs are the policy forward's own, detached: one forward pass fewer per step.
        t_lp = time.perf_counter()
        olds, refs = [], []
        with torch.no_grad():
            for sl in slices:
                olds.append(None if n_micro == 1 else self._logprobs(
                    self.engine.module, ids[sl], att[sl], resp[sl], pos[sl], allowed[sl], b.temperature)[0])
                refs.append(self._logprobs(self.ref, ids[sl], att[sl], resp[sl], pos[sl], allowed[sl],
                                           b.temperature)[0] if self.ref is not None else None)
        metrics["timing/logprob"] = time.perf_counter() - t_lp
        for sl, old, ref in zip(slices, olds, refs):
            logp, ent = self._logprobs(self.engine, ids[sl], att[sl], resp[sl], pos[sl], allowed[sl], b.temperature)
            old = logp.detach() if old is None else old
            mask = rmask[sl].to(logp.device)
            tokens, seqs = self._all_reduce([float(mask.sum()), float((mask.sum(-1) > 0).sum())], "sum")
            info = {"dp_size": self.world, "batch_num_tokens": tokens, "global_batch_size": seqs}
            loss, m = policy_objective(logp, old, ref, adv[sl].to(logp.device), mask, self.cfg.algo, kl_coef, info)
            self.engine.backward(loss)
            self.engine.step()
            m["actor/entropy"] = float((ent * mask).sum() / mask.sum().clamp(min=1))
            if b.engine_logprobs is not None:
                eng = torch.zeros_like(old)
                for r, lps in enumerate(b.engine_logprobs[sl]):
                    eng[r, :len(lps)] = torch.tensor(lps[:eng.shape[1]])
                m["rollout/logprob_abs_diff"] = float(((eng - old).abs() * mask).sum() / mask.sum().clamp(min=1))
            for k, v in m.items():
                metrics[k] = metrics.get(k, 0.0) + v / n_micro
        self.step += 1
        metrics["timing/update"] = time.perf_counter() - t0
        return metrics

    def _all_reduce(self, values: list[float], op: str) -> list[float]:
        import torch.distributed as dist

        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
        return t.tolist()

    def named_weights(self, device: str = "cpu") -> list[tuple[str, torch.Tensor]]:
        """The policy's weights as (name, tensor) pairs for the rollout engines, on rank 0. Under ZeRO-3 the
        gather is collective: every rank calls this, the others get []."""
        import deepspeed

        params = list(self.engine.module.parameters())
        with deepspeed.zero.GatheredParameters(params, enabled=self.cfg.zero_stage == 3):
            if self.rank != 0:
                return []
            return [(k, v.detach().to(device, copy=True)) for k, v in self.engine.module.state_dict().items()]
