"""A GRPO learner rank: the policy on DeepSpeed ZeRO plus a frozen reference model beside it.

It takes a step's `StepBatch` shard (prompt ids, SID completions, rewards, groups), recomputes the
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

from trainer.batch import StepBatch
from trainer.grpo_algo import (
    EXACT_KL,
    AlgoConfig,
    advantages,
    allowed_mask,
    confident_groups,
    constrained_logprobs,
    exact_kl,
    policy_objective,
)
from trainer.packing import Layout, per_sample, shared_prompt

log = logging.getLogger(__name__)


@dataclass
class LearnerConfig:
    zero_stage: int = 2
    lr: float = 1e-4
    micro_batch: int = 64
    """Sequences per forward/backward on one rank."""
    bf16: bool = False
    grad_clip: float = 1.0
    nll_coef: float = 0.0
    """NLL anchoring: this weight × the supervised loss of each prompt's target (a future negative of its
    training example, under the trie-constrained distribution) is added to the GRPO loss, so the policy
    keeps the SFT objective while RL reshapes it (AdaGRPO; GRPO + NLL regularisation). 0 = off."""
    pg_gate_top_k: int = 0
    """AdaGRPO-style gate: a group whose `pg_gate_top_k` most likely samples (by the engine's log-probs)
    already include its best reward gets no policy gradient, only the NLL anchor and the KL term: RL acts
    where the policy is uncertain instead of sharpening what it already ranks first. 0 = off."""
    pack_groups: bool = True
    """Score each group's G samples as one sequence with the prompt once (trainer/packing.py): the same
    log-probs at ≈ G× fewer tokens. False: one row per sample."""
    algo: AlgoConfig = field(default_factory=AlgoConfig)


class GRPOLearner:
    def __init__(self, model_dir: str, sid_dir: str, cfg: LearnerConfig, use_reference: bool = True):
        import deepspeed
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from sid.index import SidIndex
        from sid.tokens import SidTokenMap
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
    def _responses(self, completions: list[list[int]]):
        """Right-padded response ids [N, T], their mask, and the trie's allowed tokens [N, T, V]."""
        T = max(len(c) for c in completions)
        resp = torch.full((len(completions), T), self.tok.pad_token_id, dtype=torch.long)
        rmask = torch.zeros(len(completions), T)
        for n, c in enumerate(completions):
            resp[n, :len(c)] = torch.tensor(c)
            rmask[n, :len(c)] = 1
        allowed = allowed_mask(completions, self.index.trie, self.map, len(self.tok), T)
        allowed |= ~rmask.bool().unsqueeze(-1)  # padding positions: anything (masked out of the loss)
        return resp, rmask, allowed

    def _layout(self, b: StepBatch, sl: slice, T: int) -> Layout:
        groups = b.row_group()[sl]
        prompts, comps = [b.prompt_ids[g] for g in groups], b.completions[sl]
        if self.cfg.pack_groups:
            return shared_prompt(prompts, comps, list(groups), self.tok.pad_token_id, T)
        return per_sample(prompts, comps, self.tok.pad_token_id, T)

    def _logprobs(self, model, lay: Layout, resp, allowed, temperature, full: bool = False):
        d = self.engine.device
        mask = lay.attention_mask.to(d)
        kw = {}
        if mask.dim() == 4:  # a block mask: additive, in the model's dtype (eager and SDPA attention both add it)
            dtype = next(getattr(model, "module", model).parameters()).dtype
            mask = torch.zeros(mask.shape, dtype=dtype, device=d).masked_fill(~mask, torch.finfo(dtype).min)
            kw["position_ids"] = lay.position_ids.to(d)
        logits = model(input_ids=lay.input_ids.to(d), attention_mask=mask, **kw).logits
        logits = logits.reshape(-1, logits.shape[-1])[lay.index.to(d).reshape(-1)]
        return constrained_logprobs(logits.view(*lay.index.shape, -1), resp.to(d), allowed.to(d), temperature, full)

    # ------------------------------------------------------------------ the update
    def update(self, b: StepBatch, kl_coef: float | None = None) -> dict:
        t0 = time.perf_counter()
        n = len(b)
        if n == 0:
            raise ValueError(f"learner rank {self.rank}: empty batch shard (give every rank at least one prompt)")
        resp, rmask, allowed = self._responses(b.completions)
        adv = advantages(b.rewards, rmask, b.row_group(), self.cfg.algo, b.completions)
        metrics: dict[str, float] = {}
        if self.cfg.pg_gate_top_k > 0:
            if b.engine_logprobs is None:
                raise ValueError("grpo.learner.pg_gate_top_k needs the engine's log-probs in the batch; set it to 0 "
                                 "for batches without them")
            # a row the engine did not draw (an injected target) is never among the policy's most likely
            seq = np.array([sum(lps) if lps is not None else -np.inf for lps in b.engine_logprobs])
            gated = confident_groups(b.rewards, seq, b.group_size, self.cfg.pg_gate_top_k)
            adv = adv * torch.as_tensor(~gated[b.row_group()], dtype=adv.dtype).unsqueeze(-1)
            metrics["actor/pg_gated_share"] = float(gated.mean())
        slices = self._micro_slices(n)
        self.engine.train()
        layouts = [self._layout(b, sl, resp.shape[1]) for sl, _ in slices]
        # old and reference log-probs of the whole batch before any optimizer step (PPO's "old" policy is
        # the one that sampled). With one micro-step the old policy *is* the current one, so its
        # log-probs are the policy forward's own, detached: one forward pass fewer per step.
        # an exact KL needs the reference's whole next-token distribution, not only the sampled tokens' log-probs
        full = self.cfg.algo.kl_estimator in EXACT_KL and self.ref is not None
        t_lp = time.perf_counter()
        olds, refs, ref_alls = [], [], []
        with torch.no_grad():
            for (sl, _), lay in zip(slices, layouts):
                olds.append(None if len(slices) == 1 else self._logprobs(
                    self.engine.module, lay, resp[sl], allowed[sl], b.temperature)[0])
                r = self._logprobs(self.ref, lay, resp[sl], allowed[sl], b.temperature, full) \
                    if self.ref is not None else (None, None, None)
                refs.append(r[0])
                ref_alls.append(r[2] if full else None)
        metrics["timing/logprob"] = time.perf_counter() - t_lp
        self.grad_norms = []
        real = sum(not pad for _, pad in slices)
        for (sl, pad), lay, old, ref, ref_all in zip(slices, layouts, olds, refs, ref_alls):
            logp, ent, *dist = self._logprobs(self.engine, lay, resp[sl], allowed[sl], b.temperature, full)
            token_kl = (exact_kl(dist[0], ref_all, forward=self.cfg.algo.kl_estimator == "full_forward")
                        if full else None)
            old = logp.detach() if old is None else old
            # a padding micro-step (this rank ran out of rows) only keeps the collectives in line: an
            # all-zero mask gives it zero loss and zero gradient, and it adds no tokens to the global count
            mask = rmask[sl].to(logp.device) * (0.0 if pad else 1.0)
            tokens, seqs = self._all_reduce([float(mask.sum()), float((mask.sum(-1) > 0).sum())], "sum")
            info = {"dp_size": self.world, "batch_num_tokens": max(tokens, 1.0), "global_batch_size": max(seqs, 1.0)}
            loss, m = policy_objective(logp, old, ref, adv[sl].to(logp.device), mask, self.cfg.algo, kl_coef, info,
                                       token_kl)
            if self.cfg.nll_coef > 0 and b.targets is not None and not pad:
                nll = self._target_nll(b, sl)
                loss = loss + self.cfg.nll_coef * nll
                m["actor/nll"] = float(nll.detach())
            self.engine.backward(loss)
            self.engine.step()
            self.grad_norms.append(float(self.engine.get_global_grad_norm() or 0.0))
            if pad:
                continue
            m["actor/entropy"] = float((ent * mask).sum() / mask.sum().clamp(min=1))
            if b.engine_logprobs is not None:
                eng, drawn = torch.zeros_like(old), torch.zeros_like(mask)
                for r, lps in enumerate(b.engine_logprobs[sl]):
                    if lps is not None:  # injected rows have no engine log-probs to compare
                        eng[r, :len(lps)] = torch.tensor(lps[:eng.shape[1]])
                        drawn[r] = 1.0
                dm = mask * drawn
                m["rollout/logprob_abs_diff"] = float(((eng - old).abs() * dm).sum() / dm.sum().clamp(min=1))
            for k, v in m.items():
                metrics[k] = metrics.get(k, 0.0) + v / real
        self.step += 1
        metrics["timing/update"] = time.perf_counter() - t0
        return metrics

    def _micro_slices(self, n: int) -> list[tuple[slice, bool]]:
        """This rank's micro-steps as (rows, is_padding). Every rank must take the same number of optimizer
        steps (their gradients meet in all-reduce), so a rank with fewer rows than the busiest rank has
        micro-steps takes padding ones (row 0, contributing nothing)."""
        n_micro = int(self._all_reduce([-(-n // self.cfg.micro_batch)], "max")[0])
        return [(slice(int(c[0]), int(c[-1]) + 1), False) if len(c) else (slice(0, 1), True)
                for c in np.array_split(np.arange(n), n_micro)]

    def _target_nll(self, b: StepBatch, sl: slice) -> torch.Tensor:
        """Mean negative log-likelihood of the targets of the groups in `sl` (one per group), under the
        same trie-constrained distribution the policy samples from."""
        groups = np.unique(b.row_group()[sl])
        targets = [b.targets[g] for g in groups]
        resp, mask, allowed = self._responses(targets)
        lay = per_sample([b.prompt_ids[g] for g in groups], targets, self.tok.pad_token_id, resp.shape[1])
        logp, _ = self._logprobs(self.engine, lay, resp, allowed, 1.0)
        mask = mask.to(logp.device)
        return -(logp * mask).sum() / mask.sum().clamp(min=1)

    def set_lr(self, lr: float) -> None:
        """The learning rate of every parameter group (the curriculum lowers it for a retried stage)."""
        for g in self.engine.optimizer.param_groups:
            g["lr"] = lr

    def _all_reduce(self, values: list[float], op: str) -> list[float]:
        import torch.distributed as dist

        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
        return t.tolist()

    def save_pretrained(self, out_dir: str) -> None:
        """The policy as an HF folder (weights + tokenizer), written by rank 0. Collective: every rank calls
        it, because under ZeRO-3 each holds only a shard and the full weights must be gathered first."""
        named = self.named_weights()
        if self.rank == 0:
            self.engine.module.save_pretrained(out_dir, state_dict=dict(named))
            self.tok.save_pretrained(out_dir)

    def named_weights(self, device: str = "cpu") -> list[tuple[str, torch.Tensor]]:
        """The policy's weights as (name, tensor) pairs for the rollout engines, on rank 0. Under ZeRO-3 the
        gather is collective: every rank calls this, the others get []."""
        import deepspeed

        zero3 = self.cfg.zero_stage == 3
        with deepspeed.zero.GatheredParameters(list(self.engine.module.parameters()), enabled=zero3):
            if self.rank != 0:
                return []
            # ZeRO-3 frees the gathered storage on leaving this block, so keep copies; otherwise the live
            # tensors do (their consumers copy them anyway: Ray on return, the broadcast into its buffer)
            return [(k, v.detach().to(device, copy=zero3)) for k, v in self.engine.module.state_dict().items()]
