"""GRPO's algorithm pieces, taken from verl's core algorithms and chosen by config.

- advantages: verl's registered estimators (default `grpo`: A_i = (r_i − mean_group) / (std_group + ε));
- policy loss: verl's registered losses (default `vanilla`: PPO-clip with dual clip);
- KL to the frozen reference: verl's estimators (default `low_var_kl`) on the sampled tokens, or the exact KL
  over every token the trie allows at each generated position (`exact_kl`: `full` and `full_forward`),
  aggregated like the loss;
- constrained log-probs: the learner scores each sampled SID token under the same distribution the
  rollout engine sampled from — logits / temperature, masked to the trie's continuations — or the
  importance ratio would compare different distributions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class AlgoConfig:
    adv_estimator: str = "grpo"
    """Any advantage estimator registered in verl (grpo, rloo, …), or ours: `grpo_positive` and `tree_grpo`
    (below)."""
    norm_adv_by_std: bool = True
    """GRPO: divide by the group std (False gives Dr.GRPO-style mean-centering)."""
    policy_loss: str = "vanilla"
    """Any policy loss registered in verl (vanilla = PPO-clip with dual clip, gspo, clip_cov, …)."""
    clip_ratio: float = 0.2
    clip_ratio_low: float | None = None
    clip_ratio_high: float | None = None
    clip_ratio_c: float = 3.0
    loss_agg_mode: str = "token-mean"
    kl_estimator: str = "low_var_kl"
    """verl's KL estimators on the sampled tokens: kl (k1), abs, mse (k2), low_var_kl (k3), each optionally with
    verl's straight-through `+` (e.g. `k3+`); or `full`: the exact KL(π ‖ π_ref) over every token the trie allows
    at each generated position (`exact_kl`); or `full_forward`: the exact KL(π_ref ‖ π) there, which weighs each
    token by the reference's probability, so it charges the policy for the mass it takes from the SFT model's
    likely items (mass-covering, as in distillation) where the reverse KL charges mostly for the mass it adds.
    The sampled estimators assume samples drawn from π; beam groups are π's top items instead, so they see
    only those items' log-ratios, while the exact ones also weigh the items a step pushes out of the beam."""
    kl_coef: float = 0.04
    """β; the curriculum may set it per stage."""


KL_ESTIMATORS = ("kl", "k1", "abs", "mse", "k2", "low_var_kl", "k3", "kl+", "k1+", "abs+", "low_var_kl+", "k3+",
                 "full", "full_forward")
"""The names `kl_estimator` accepts: verl's sampled-token estimators (with its straight-through `+`), and the exact
`full` (KL(π ‖ π_ref)) and `full_forward` (KL(π_ref ‖ π))."""
EXACT_KL = ("full", "full_forward")

TREE_GRPO = "tree_grpo"
"""Our estimator computed beside verl's registry: it needs the completions' tokens, which verl's signature lacks."""


def _register_estimators() -> None:
    """Our advantage estimators, in verl's registry beside its own (so `adv_estimator` names either)."""
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, register_adv_est

    if "grpo_positive" in ADV_ESTIMATOR_REGISTRY:
        return

    @register_adv_est("grpo_positive")
    def grpo_positive(token_level_rewards, response_mask, index, epsilon: float = 1e-6,
                      norm_adv_by_std_in_grpo: bool = True, config=None):
        """GRPO's advantages with the negative ones set to 0: the samples above their group's mean are pushed
        up as in GRPO, the ones below are left alone (reward-weighted fine-tuning on the group's winners, as in
        RAFT / ReST). Tests whether pushing the policy's wrong top items down is what costs rare negatives."""
        adv, ret = ADV_ESTIMATOR_REGISTRY["grpo"](token_level_rewards, response_mask, index, epsilon,
                                                  norm_adv_by_std_in_grpo, config)
        return adv.clamp(min=0.0), ret.clamp(min=0.0)


def registered() -> tuple[list[str], list[str]]:
    """The advantage estimators and policy losses `AlgoConfig` may name: verl's registries, with ours."""
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, POLICY_LOSS_REGISTRY

    _register_estimators()
    return sorted([*ADV_ESTIMATOR_REGISTRY, TREE_GRPO]), sorted(POLICY_LOSS_REGISTRY)


def tree_advantages(rewards: np.ndarray, completions: list[list[int]], group_ids, T: int,
                    norm_by_std: bool = True, epsilon: float = 1e-6) -> torch.Tensor:
    """Token-level advantages [N, T] credited along each group's prefix tree of completions.

    A group's completions (SID tokens + EOS) form a tree; a node's value is the mean reward of the group's rows
    under it. The token that moves row i from prefix p to child q gets V(q) − V(p): a level-2 code is judged
    against the other level-2 codes under the same level-1 code, not against the whole group, and a token every
    row under p shares (a level with one child, the EOS) gets 0. The row's advantages telescope to GRPO's
    r_i − mean_group; they are divided by the group's std as GRPO's are and multiplied by the completion's length,
    so a row's advantages sum to what GRPO spreads evenly over its tokens (the same step size, redistributed).
    The idea is the sibling-relative / tree-redistributed advantage of V-STAR (arXiv 2602.10699) and TreeAdv
    (arXiv 2601.03703); with beam groups many rows share their first codes, and sequence-level GRPO credits a
    shared prefix with the sum of its rows' advantages while every deeper token inherits the prefix's credit."""
    r = np.asarray(rewards, dtype=np.float64)
    gid = np.asarray(group_ids)
    if len(r) != len(completions) or len(gid) != len(r):
        raise ValueError(f"tree_advantages: {len(r)} rewards, {len(completions)} completions, {len(gid)} group ids")
    adv = torch.zeros(len(r), T, dtype=torch.float32)
    for g in np.unique(gid):
        rows = np.flatnonzero(gid == g)
        under: dict[tuple, list[float]] = {}  # node (a prefix) → rewards of the group's rows under it
        for i in rows:
            for t in range(len(completions[i]) + 1):
                under.setdefault(tuple(completions[i][:t]), []).append(r[i])
        std = float(np.std(r[rows], ddof=1)) if len(rows) > 1 else 1.0
        scale = 1.0 / (std + epsilon) if norm_by_std else 1.0
        for i in rows:
            c = completions[i]
            v = np.array([np.mean(under[tuple(c[:t])]) for t in range(len(c) + 1)])
            adv[i, :len(c)] = torch.as_tensor(np.diff(v) * scale * len(c), dtype=torch.float32)
    return adv


def advantages(rewards: np.ndarray, response_mask: torch.Tensor, group_ids, cfg: AlgoConfig,
               completions: list[list[int]] | None = None) -> torch.Tensor:
    """Token-level advantages [N, T] from sequence rewards [N] and the rollouts' group ids (`tree_grpo` also
    needs the completions)."""
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    if cfg.adv_estimator == TREE_GRPO:
        if completions is None:
            raise ValueError("adv_estimator=tree_grpo needs the completions' token ids")
        return tree_advantages(rewards, completions, group_ids, response_mask.shape[1], cfg.norm_adv_by_std)
    _register_estimators()
    token_rewards = torch.zeros_like(response_mask, dtype=torch.float32)
    last = (response_mask.cumsum(-1) == response_mask.sum(-1, keepdim=True)) & (response_mask > 0)
    token_rewards[last] = torch.as_tensor(np.asarray(rewards, dtype=np.float32))[last.any(-1)]
    fn = get_adv_estimator_fn(cfg.adv_estimator)
    kw = {"norm_adv_by_std_in_grpo": cfg.norm_adv_by_std} if cfg.adv_estimator in ("grpo", "grpo_positive") else {}
    adv, _ = fn(token_level_rewards=token_rewards, response_mask=response_mask.float(),
                index=np.asarray(group_ids), **kw)
    return adv


def confident_groups(rewards: np.ndarray, seq_logprobs: np.ndarray, group_size: int, top_k: int) -> np.ndarray:
    """[P] bool: groups whose `top_k` most likely rows (by the sampler's sequence log-prob) already hold one of
    the group's best rewards, i.e. where the policy is already right and the reward has nothing to teach.

    AdaGRPO's policy-side gate: the policy gradient is applied only where the policy is uncertain; a confident
    group keeps the supervised anchor and the KL term but no advantage. Ties in reward count as best."""
    r = np.asarray(rewards, dtype=np.float64).reshape(-1, group_size)
    lp = np.asarray(seq_logprobs, dtype=np.float64).reshape(-1, group_size)
    if top_k < 1:
        return np.zeros(len(r), dtype=bool)
    top = np.argsort(-lp, axis=1, kind="stable")[:, :top_k]
    best = r >= r.max(1, keepdims=True) - 1e-8
    separates = r.std(1) > 1e-8  # a group with equal rewards has no advantage to gate
    return np.take_along_axis(best, top, 1).any(1) & separates


def _verl_actor_config(cfg: AlgoConfig, batch_info: dict):
    from omegaconf import OmegaConf

    return OmegaConf.create({"clip_ratio": cfg.clip_ratio, "clip_ratio_low": cfg.clip_ratio_low,
                             "clip_ratio_high": cfg.clip_ratio_high, "clip_ratio_c": cfg.clip_ratio_c,
                             "loss_agg_mode": cfg.loss_agg_mode, "global_batch_info": batch_info})


def exact_kl(logp_all: torch.Tensor, ref_all: torch.Tensor, forward: bool = False) -> torch.Tensor:
    """KL(π ‖ π_ref) [N, T] at each position, summed over the vocabulary: Σ_v π(v) (log π(v) − log π_ref(v));
    with `forward`, KL(π_ref ‖ π) = Σ_v π_ref(v) (log π_ref(v) − log π(v)).

    Both are log-softmax outputs [N, T, V] over the same allowed tokens (`constrained_logprobs(..., full=True)`);
    a token outside them is −inf in both and contributes 0."""
    a, b = (ref_all, logp_all) if forward else (logp_all, ref_all)
    diff = (a - b).masked_fill(~torch.isfinite(a), 0.0)
    return (a.exp() * diff).sum(-1)


def policy_objective(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None, adv: torch.Tensor,
                     mask: torch.Tensor, cfg: AlgoConfig, kl_coef: float | None = None, batch_info: dict | None = None,
                     token_kl: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """Policy loss + β · KL(π ‖ π_ref), both aggregated over the response tokens; and their metrics.

    `batch_info` is verl's global-batch description for data parallelism: {"dp_size", "batch_num_tokens",
    "global_batch_size"} summed over all ranks, so the ranks' averaged gradients equal the global mean.
    `token_kl` [N, T] is the exact per-position KL (`exact_kl`), which `kl_estimator=full` / `full_forward` need
    in place of the sampled tokens' `ref_logp`.
    """
    from verl.trainer.ppo.core_algos import agg_loss, get_policy_loss_fn, kl_penalty

    mask = mask.float()
    batch_info = batch_info or {}
    pg_loss, m = get_policy_loss_fn(cfg.policy_loss)(old_logp, logp, adv, mask, cfg.loss_agg_mode,
                                                     _verl_actor_config(cfg, batch_info))
    metrics = {k: float(v) for k, v in m.items()}
    metrics["actor/pg_loss"] = float(pg_loss.detach())
    beta = cfg.kl_coef if kl_coef is None else kl_coef
    loss = pg_loss
    exact = cfg.kl_estimator in EXACT_KL
    if exact and beta > 0 and ref_logp is not None and token_kl is None:
        raise ValueError(f"kl_estimator={cfg.kl_estimator} needs the exact per-token KL (token_kl = exact_kl(...)), "
                         "not only the sampled tokens' reference log-probs")
    if ref_logp is not None and beta > 0:
        kl = token_kl if exact else kl_penalty(logp, ref_logp, cfg.kl_estimator)
        kl_loss = agg_loss(kl, mask, cfg.loss_agg_mode, **batch_info)
        loss = loss + beta * kl_loss
        metrics["actor/kl"] = float(kl_loss.detach())
    metrics["actor/loss"] = float(loss.detach())
    return loss, metrics


def constrained_logprobs(logits: torch.Tensor, targets: torch.Tensor, allowed: torch.Tensor,
                         temperature: float = 1.0, full: bool = False):
    """Log-probs of `targets` [N, T] under softmax(logits / temperature) restricted to `allowed` [N, T, V]
    (bool); and the entropy of that distribution per token. With `full`, also the whole log-softmax
    [N, T, V] (−inf outside `allowed`), for `exact_kl`."""
    z = (logits.float() / max(temperature, 1e-6)).masked_fill(~allowed, float("-inf"))
    logp_all = torch.log_softmax(z, -1)
    logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    p = logp_all.exp()
    ent = -(p * logp_all.masked_fill(~allowed, 0.0)).sum(-1)
    return (logp, ent, logp_all) if full else (logp, ent)


def allowed_mask(completions: list[list[int]], trie, token_map, vocab_size: int, length: int) -> torch.Tensor:
    """[N, length, V] bool: at each generated position, the tokens the trie allowed the sampler."""
    out = torch.zeros(len(completions), length, vocab_size, dtype=torch.bool)
    for n, toks in enumerate(completions):
        for j in range(min(length, len(toks))):
            prefix = token_map.prefix(toks[:j])
            out[n, j, torch.as_tensor(np.asarray(token_map.allowed_ids(trie, prefix)))] = True
            if token_map.value_of.get(int(toks[j])) is None:
                break
    return out
