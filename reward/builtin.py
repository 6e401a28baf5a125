"""Built-in rewards: small pure functions over a scored batch, in one registry.

Each takes a `RewardBatch` plus its own parameters and returns a dict of float arrays: "score"
(the reward) and the terms that explain it (logged as reward/<name>/<term>). Invalid outputs are
handled by the scorer before these run (they never see them as hits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from common.registry import registrar
from reward.ground_truth import GroundTruth
from reward.similarity import CodebookSpace

REWARDS: dict[str, Callable[..., dict]] = {}


register_reward = registrar(REWARDS, "reward")


@dataclass
class RewardBatch:
    sample_ids: np.ndarray  # rows of the ground truth
    out_items: np.ndarray  # generated item index per sample, -1 when the code is no catalogue item
    gt: GroundTruth
    space: CodebookSpace
    group_size: int = 1
    """Consecutive samples of one prompt's group (the batch holds whole groups, in rollout order: for beam
    groups, best first)."""


def _gts_fps_sims(b: RewardBatch) -> tuple[np.ndarray, np.ndarray]:
    """Max similarity of each output to its example's GTS (weighted, when the GTS has weights) and to its FPS."""
    g = b.space.max_sim(b.out_items, b.gt.gts_indptr, b.gt.gts_items, b.sample_ids, b.gt.gts_weights)
    f = b.space.max_sim(b.out_items, b.gt.fps_indptr, b.gt.fps_items, b.sample_ids)
    return g, f


@register_reward("future_sim")
def future_sim(b: RewardBatch, gamma: float = 0.5) -> dict:
    """max sim to the future negatives + Swing neighbours − γ · max sim to the future positives."""
    g, f = _gts_fps_sims(b)
    return {"score": g - gamma * f, "gts_sim": g, "fps_sim": f}


@register_reward("hit")
def hit(b: RewardBatch, level_rewards: tuple = (1.0, 0.1, 0.01)) -> dict:
    """By leading code levels shared with the best GTS item: all L → 1, L−1 → 0.1, L−2 → 0.01, else 0
    (for 3-level codes: 1 / 0.1 / 0.01 for 3 / 2 / 1 matching levels). A weighted GTS pays the best
    weight · level reward over its items (a full hit on a weak Swing neighbour pays its weight)."""
    m, score = b.space.best_level_reward(b.out_items, b.gt.gts_indptr, b.gt.gts_items, b.sample_ids,
                                         level_rewards, b.gt.gts_weights)
    return {"score": score.astype(np.float32), "matched_levels": m.astype(np.float32)}


def _full_hits(b: RewardBatch, h: dict) -> np.ndarray:
    """(groups, G) mask of the rows whose code matches a GTS item on every level (`h`: hit()'s output)."""
    return (h["matched_levels"] == b.space.codes.shape[1]).reshape(-1, b.group_size)


def in_fps(b: RewardBatch) -> np.ndarray:
    """1 where a row's output is one of its example's future positives (an item the user goes on to like within
    the horizon): its code matches that item's on every level, as a full hit does a GTS item's. Invalid outputs
    (-1) never are."""
    m = b.space.max_prefix_match(b.out_items, b.gt.fps_indptr, b.gt.fps_items, b.sample_ids)
    return (m == b.space.codes.shape[1]).astype(np.float32)


@register_reward("rank_hit")
def rank_hit(b: RewardBatch, penalty: float = 1.0, level_rewards: tuple = (1.0, 0.1, 0.01),
             fps_penalty: float = 0.0, fps_groups: str = "all") -> dict:
    """`hit`, plus a rank term for beam groups (best first; grpo.sampling.mode=beam): in a group holding a
    full hit, a wrong item at rank k (0-based) loses penalty · w_k / Σ_j w_j, w_k = 1 / log2(k + 2), so the
    wrong items the policy ranks highest cost most (the NDCG-shaped "ranking" reward of MiniOneRec/ReRe).
    A group without a full hit keeps the plain hit reward: the rank term never makes a gradient out of a
    group where nothing was found (that pushes the policy onto a few items).

    `fps_penalty` γ > 0 also charges γ for an output that is one of the example's future positives: the user
    interacts with it but likes it, a slot a list of dislikes wastes (the paper's future_sim has the same −γ
    term, over similarities). `fps_groups="all"` charges it in every group, so a group that found no negative
    but holds a liked item still gets a gradient (away from that item); `"hit"` only in groups holding a full
    hit, like the rank term."""
    G = b.group_size
    if G < 2 or len(b.out_items) % G:
        raise ValueError(f"rank_hit needs whole groups of ≥ 2 samples; got group_size={G} for {len(b.out_items)} "
                         "samples")
    if fps_groups not in ("all", "hit"):
        raise ValueError(f"rank_hit: fps_groups must be 'all' or 'hit', got {fps_groups!r}")
    h = hit(b, level_rewards)
    full = _full_hits(b, h)
    w = 1.0 / np.log2(np.arange(G) + 2.0)
    pen = (penalty * w / w.sum())[None, :] * (~full & full.any(1, keepdims=True))
    res = {"matched_levels": h["matched_levels"], "rank_penalty": pen.ravel().astype(np.float32)}
    score = h["score"] - pen.ravel()
    if fps_penalty:
        liked = in_fps(b).reshape(-1, G)
        if fps_groups == "hit":
            liked = liked * full.any(1, keepdims=True)
        score = score - fps_penalty * liked.ravel()
        res["fps_hit"] = liked.ravel().astype(np.float32)
    return {"score": score.astype(np.float32), **res}


@register_reward("topk_hit")
def topk_hit(b: RewardBatch, k: int = 20, penalty: float = 1.0, level_rewards: tuple = (1.0, 0.1, 0.01)) -> dict:
    """A reward shaped like FHR@k, for beam groups larger than k (best first; grpo.sampling.mode=beam, n > k).
    The group's first k rows stand for the evaluated top-k list. A group whose top k already holds a full hit
    pays every row 1: the list is right, there is nothing to move, so the group carries no gradient (dynamic
    sampling refills it). A group whose full hits all sit below rank k (a near miss) pays `hit`, minus
    penalty / k for each wrong item in its top k: the hit is pulled into the list and the items keeping it
    out are pushed down, while wrong items below k are left alone. Other groups keep the plain hit reward.
    Unlike rank_hit, which reorders lists that already hold a hit, a full hit makes a gradient here only
    where moving it can change the metric."""
    G = b.group_size
    if G <= k or len(b.out_items) % G:
        raise ValueError(f"topk_hit needs whole beam groups larger than k={k} (grpo.sampling.n > k); got "
                         f"group_size={G} for {len(b.out_items)} samples")
    h = hit(b, level_rewards)
    full = _full_hits(b, h)
    satisfied = full[:, :k].any(1, keepdims=True)
    near_miss = full.any(1, keepdims=True) & ~satisfied
    pen = np.zeros(full.shape)
    pen[:, :k] = (penalty / k) * (near_miss & ~full[:, :k])
    score = np.where(satisfied, 1.0, h["score"].reshape(-1, G) - pen)
    return {"score": score.ravel().astype(np.float32), "matched_levels": h["matched_levels"],
            "satisfied": np.repeat(satisfied[:, 0], G).astype(np.float32),
            "near_miss": np.repeat(near_miss[:, 0], G).astype(np.float32),
            "rank_penalty": pen.ravel().astype(np.float32)}


@register_reward("next_negative_sim")
def next_negative_sim(b: RewardBatch) -> dict:
    """Similarity to the single next negative: the conventional target, for ablations."""
    s = b.space.sim(b.out_items, b.gt.next_negative[b.sample_ids])
    return {"score": s, "next_sim": s}


@register_reward("threshold_sim")
def threshold_sim(b: RewardBatch, threshold: float = 0.8, gamma: float = 0.5) -> dict:
    """1[max sim to GTS ≥ τ] − γ · 1[max sim to FPS ≥ τ]."""
    g, f = _gts_fps_sims(b)
    gh, fh = (g >= threshold).astype(np.float32), (f >= threshold).astype(np.float32)
    return {"score": gh - gamma * fh, "gts_hit": gh, "fps_hit": fh}
