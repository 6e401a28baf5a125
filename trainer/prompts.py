"""Prompt builders: the user context shared by SFT and GRPO, and the SFT task registry.

Prompts are plain words plus SID tokens, so the project-built tokenizer covers them and any HF
tokenizer (after the SID tokens are added) does too. Each task turns data into (prompt, target)
pairs; the target ends with the end-of-sequence token at training time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterator

import numpy as np

from common.registry import registrar

DAY = 86_400
TEMPLATE_WORDS = ("user disliked liked recently next dislike item title which one did the user mark not "
                  "interested bought other three answer options a b c d").split()


@dataclass
class ContextConfig:
    """What the curriculum varies: which behaviour enters the prompt, and how much of it."""

    mode: str = "neg_pos"
    """'neg_recent' (negatives of the last `recent_days` days), 'neg_all' (all negatives) or 'neg_pos'
    (negatives and positives)."""
    recent_days: float = 3.0
    max_items: int = 20
    """Token budget in items (each item is one SID): the newest are kept, older ones dropped first;
    in 'neg_pos' the budget is split evenly, unused room going to the other side."""
    mark_recent: bool = False
    """Split each side at `recent_days` before the cutoff with the word `recently`: `user disliked: <old…>
    recently: <new…>`. The prompt otherwise carries order but no time, so a model cannot tell a negative of
    this morning from one of last month. Off by default: it tied on the simulator and lowered SFT-only on
    MovieLens-100k's test split (docs/BENCHMARKS.md, "Recency marks")."""

    def for_stage(self, mode: str, max_items: int) -> "ContextConfig":
        """This context (its recency marks) with a curriculum stage's behaviour and GRPO's item budget."""
        return replace(self, mode=mode, max_items=max_items)


def context_events(max_items: int) -> int:
    """Events kept per training example for a prompt of `max_items` SIDs: the context builder filters them by
    feedback and recency, so it needs a margin (3×, at least 50)."""
    return max(max_items * 3, 50)


def build_context(ctx_items: np.ndarray, ctx_fb: np.ndarray, ctx_ts: np.ndarray, t_cut: int, sid,
                  cfg: ContextConfig) -> str:
    """`user disliked: <sid> <sid> … liked: <sid> … next dislike:` (items oldest → newest); with
    `cfg.mark_recent`, `recently:` before each side's items of the last `cfg.recent_days` days."""
    recent = ctx_ts >= t_cut - cfg.recent_days * DAY
    neg = ctx_fb == -1
    if cfg.mode == "neg_recent":
        neg &= recent
    elif cfg.mode not in ("neg_all", "neg_pos"):
        raise ValueError(f"ContextConfig.mode must be neg_recent, neg_all or neg_pos, got {cfg.mode!r}")
    pos = ctx_fb == 1 if cfg.mode == "neg_pos" else np.zeros_like(neg)
    n_neg = min(int(neg.sum()), max(cfg.max_items - min(int(pos.sum()), cfg.max_items // 2), cfg.max_items // 2))
    n_pos = min(int(pos.sum()), cfg.max_items - n_neg)

    def side(word: str, keep: np.ndarray, n: int) -> list[str]:
        idx = np.flatnonzero(keep)
        idx = idx[len(idx) - n:]  # the newest n
        toks = [sid(int(ctx_items[i])) for i in idx]
        first_recent = np.flatnonzero(recent[idx])  # the context is oldest → newest: recent items are a suffix
        if cfg.mark_recent and len(first_recent):
            toks.insert(int(first_recent[0]), "recently:")
        return [word] + toks

    parts = side("user disliked:", neg, n_neg)
    if cfg.mode == "neg_pos":
        parts += side("liked:", pos, n_pos)
    parts.append("next dislike:")
    return " ".join(parts)


TASKS: dict[str, Callable[..., Iterator[tuple[str, str]]]] = {}


register_task = registrar(TASKS, "SFT task")


@register_task("sid2title")
def sid2title(items, sid, **_) -> Iterator[tuple[str, str]]:
    for i, title in enumerate(items["title"].astype(str)):
        yield f"item {sid(i)} title:", title


@register_task("title2sid")
def title2sid(items, sid, **_) -> Iterator[tuple[str, str]]:
    for i, title in enumerate(items["title"].astype(str)):
        yield f"title: {title} item:", sid(i)


def alignment_question(neg: int, distractors: np.ndarray, sid, rng) -> tuple[str, str, list[str]]:
    """The 4-way question of the paper: which of these did the user mark not interested?

    Returns (prompt, answer, options). The answer is the disliked item's SID rather than a letter:
    the model then points at an item it can read, which a small model learns far sooner than a
    letter-position mapping, and the accuracy is measured by ranking the four options' SIDs.
    """
    options = [sid(int(i)) for i in np.r_[neg, distractors[:3]]]
    order = rng.permutation(4)
    shown = [options[o] for o in order]
    prompt = ("the user did mark one not interested and bought the other three which one options "
              + " ".join(shown) + " answer:")
    return prompt, options[0], shown


@register_task("alignment")
def alignment(train, sid, seed: int = 0, max_per_user: int = 20, **_) -> Iterator[tuple[str, str]]:
    """Correct option: a negative of the user; distractors: three of the user's positives. No history."""
    rng = np.random.default_rng(seed)
    for _, g in train.groupby("uidx", sort=False):
        negs = g.loc[g["fb"] == -1, "iidx"].to_numpy()
        pos = g.loc[g["fb"] == 1, "iidx"].to_numpy()
        if len(negs) == 0 or len(pos) < 3:
            continue
        for n in rng.permutation(negs)[:max_per_user]:
            prompt, answer, _ = alignment_question(int(n), rng.choice(pos, 3, replace=False), sid, rng)
            yield prompt, answer


@register_task("warmup")
def warmup(examples, sid, context: ContextConfig, seed: int = 0, **_) -> Iterator[tuple[str, str]]:
    """Context → one future negative (drawn from the window's negatives)."""
    rng = np.random.default_rng(seed)
    for r in examples.itertuples(index=False):
        target = int(rng.choice(r.future_neg)) if len(r.future_neg) else int(r.next_negative)
        yield build_context(r.ctx_items, r.ctx_fb, r.ctx_ts, r.t_cut, sid, context), sid(target)


@register_task("warmup_multi")
def warmup_multi(examples, sid, context: ContextConfig, seed: int = 0, max_targets: int = 8, **_
                 ) -> Iterator[tuple[str, str]]:
    """Context → each negative of the future window (up to `max_targets`, drawn without replacement): the
    multi-day future negatives the reward and FHR@K count, all as supervised targets, where `warmup`
    draws one. More pairs from the same events (augmentation); the context is built once per example."""
    rng = np.random.default_rng(seed)
    for r in examples.itertuples(index=False):
        targets = r.future_neg if len(r.future_neg) else np.array([r.next_negative])
        prompt = build_context(r.ctx_items, r.ctx_fb, r.ctx_ts, r.t_cut, sid, context)
        for t in rng.permutation(targets)[:max_targets]:
            yield prompt, sid(int(t))


@register_task("warmup_swing")
def warmup_swing(examples, split, sid, context: ContextConfig, seed: int = 0, top_n: int = 10, **_
                 ) -> Iterator[tuple[str, str]]:
    """Context → one Swing neighbour of its negatives (among the `top_n` best by summed Swing score outside the
    context, drawn in proportion to the score). These neighbours are what GRPO's reward counts as hits beside
    the future negatives (reward/ground_truth.py), and where its gain over SFT-only comes from; this teaches
    them by supervision over every example (augmentation, GRID) instead of through 45 RL steps."""
    from feedback.swing import swing_similarity
    from reward.ground_truth import context_neighbours

    rng = np.random.default_rng(seed)
    for r, (cand, score) in zip(examples.itertuples(index=False),
                                context_neighbours(examples, swing_similarity(split.negative_matrix()), top_n)):
        if len(cand) == 0 or score.sum() <= 0:
            continue
        target = int(rng.choice(cand, p=score / score.sum()))
        yield build_context(r.ctx_items, r.ctx_fb, r.ctx_ts, r.t_cut, sid, context), sid(target)


def _knn_task(examples, sid, context: ContextConfig, knn, seed: int, top_n: int, draws: int
              ) -> Iterator[tuple[str, str]]:
    """Context → `draws` items of a user-kNN teacher's `top_n` for it (outside the context, the example's own user
    never a neighbour), drawn in proportion to the teacher's score."""
    from reward.ground_truth import knn_targets

    rng = np.random.default_rng(seed)
    for r, (cand, score) in zip(examples.itertuples(index=False), knn_targets(examples, knn, top_n)):
        if len(cand) == 0 or score.sum() <= 0:
            continue
        prompt = build_context(r.ctx_items, r.ctx_fb, r.ctx_ts, r.t_cut, sid, context)
        for t in rng.choice(cand, size=min(draws, len(cand)), replace=False, p=score / score.sum()):
            yield prompt, sid(int(t))


@register_task("warmup_category_knn")
def warmup_category_knn(examples, split, sid, context: ContextConfig, seed: int = 0, top_n: int = 20,
                        draws: int = 1, **_) -> Iterator[tuple[str, str]]:
    """Context → an item the category-level user-kNN (feedback/category_knn.py, default config) ranks high for
    it: the kNN distilled by supervision over every training example. On the simulator that kNN is far above the
    SFT model on validation users, while its items as GRPO reward targets tie (docs/BENCHMARKS.md, "A
    category-level collaborative target"); this asks whether SFT can learn the function instead."""
    from feedback.category_knn import CategoryKnn

    yield from _knn_task(examples, sid, context, CategoryKnn(split), seed, top_n, draws)


@register_task("warmup_user_knn")
def warmup_user_knn(examples, split, sid, context: ContextConfig, seed: int = 0, top_n: int = 20,
                    draws: int = 1, **_) -> Iterator[tuple[str, str]]:
    """Context → an item the item-level user-kNN (feedback/user_knn.py, default config) ranks high for it."""
    from feedback.user_knn import UserKnn

    yield from _knn_task(examples, sid, context, UserKnn(split), seed, top_n, draws)
