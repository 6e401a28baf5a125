"""Score a batch of rollouts: parse the generated codes, apply the configured rewards, explain them.

The same `RewardScorer` runs in-process and inside every reward actor. Built-in rewards are
vectorised over the batch; plug-ins run with their own concurrency and timeouts. Rewards combine as
Σ weight · score; a generated code that is no catalogue item gets `invalid_penalty` instead and is
counted (reward/invalid_rate).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from feedback.category_knn import CategoryKnnConfig
from feedback.user_knn import UserKnnConfig
from reward.builtin import REWARDS, RewardBatch
from reward.ground_truth import GroundTruth
from reward.plugins import FAILURES, Plugin
from reward.similarity import CodebookSpace
from sid.vocab import code_to_str, str_to_code


@dataclass
class RewardTerm:
    """One reward in the mix: a built-in name or a plug-in spec (`pkg.mod:fn`, `file.py:fn`)."""

    name: str = "future_sim"
    weight: float = 1.0
    params: dict = field(default_factory=dict)
    """Keyword arguments of a built-in reward (e.g. gamma for future_sim)."""
    batched: bool = False
    """Plug-ins: the function takes whole batches (verl's batched form)."""
    timeout_s: float = 10.0
    """Plug-ins: sync per-sample functions must score a whole batch within this (queued samples too: size
    max_concurrency for slow calls); async ones, per call; batched ones, per batch."""
    on_error: str = "fail"
    """Plug-ins: 'fail' the step, or 'fallback' (assign `fallback`, count it)."""
    fallback: float = 0.0
    max_concurrency: int = 8


@dataclass
class RewardConfig:
    terms: list[RewardTerm] = field(default_factory=lambda: [RewardTerm()])
    invalid_penalty: float = -1.0
    """Reward of a generated code that maps to no catalogue item."""
    swing_n: int = 50
    """Swing neighbours of the context negatives added to each example's GTS."""
    future_swing_n: int = 0
    """Swing neighbours of the example's future negatives also added to its GTS (0 = none)."""
    transition_n: int = 0
    """The items most often disliked within the horizon after the context negatives, over training users
    (reward.ground_truth.transition_scores), also added to the GTS (0 = none)."""
    category_n: int = 0
    """The best items of a category-level user-kNN for the example's context (feedback/category_knn.py: what
    users with the same category profile of negatives and positives dislike) also added to the GTS (0 = none).
    Needs an item category column."""
    category_knn: CategoryKnnConfig = field(default_factory=CategoryKnnConfig)
    """Its neighbours, positive weight and category column."""
    user_knn_n: int = 0
    """The best items of an item-level user-kNN for the example's context (feedback/user_knn.py: what the users
    whose negatives and positives overlap the context's most dislike) also added to the GTS (0 = none)."""
    user_knn: UserKnnConfig = field(default_factory=UserKnnConfig)
    """Its neighbours and positive weight."""
    gts_weighting: str = "flat"
    """'flat': a hit on any GTS item counts the same; 'swing_score': a future negative weighs 1, a Swing
    neighbour its score over the example's best neighbour score; 'inverse_pop': an item weighs
    min(1, √((m + 1) / (c + 1))) by its training negatives c (m: their median), so hits on items most users
    dislike pay less (hit, rank_hit and future_sim use the weights)."""
    num_workers: int = 2
    """Reward actors in the server pool."""
    batch_timeout_s: float = 120.0
    """The server's deadline for one batch across all actors."""
    max_restarts: int = 2
    data_source: str = "conrec"


class RewardScorer:
    def __init__(self, cfg: RewardConfig, gt: GroundTruth, index, token_to_code: np.ndarray | None = None):
        """`index`: a `sid.index.SidIndex`. `token_to_code[token_id]` = (level, value) or (-1, -1), from
        `sid.tokens.SidTokenMap.table`."""
        self.cfg, self.gt, self.index = cfg, gt, index
        self.space = CodebookSpace.from_index(index)
        self.levels = index.levels
        self.token_to_code = token_to_code
        # exact catalogue strings resolve by one dict lookup; anything else goes through the parser
        self._item_of_sid = {index.sid(i): i for i in range(len(index.codes))}
        self.builtin, self.plugins = [], []
        for t in cfg.terms:
            if t.name in REWARDS:
                self.builtin.append(t)
            elif ":" in t.name or t.name.endswith(".py") or "." in t.name:
                self.plugins.append((t, Plugin(t.name, t.batched, t.timeout_s, t.on_error, t.fallback,
                                               t.max_concurrency)))
            else:
                raise ValueError(f"reward term {t.name!r} is neither a built-in ({sorted(REWARDS)}) nor a plug-in "
                                 "spec ('pkg.module:fn' or 'file.py:fn')")

    # ---------------------------------------------------------------- parsing
    def parse(self, outputs) -> tuple[np.ndarray, list[str]]:
        """Generated outputs (SID strings, or token-id lists) → (item index or -1, normalised text)."""
        items = np.full(len(outputs), -1, dtype=np.int64)
        texts = []
        for b, out in enumerate(outputs):
            if isinstance(out, str):
                hit = self._item_of_sid.get(out)
                if hit is not None:
                    items[b] = hit
                    texts.append(out)
                    continue
                code = str_to_code(out, self.levels)
                text = out
            else:
                code = self._tokens_to_code(out)
                text = code_to_str(code) if code is not None else ""
            if code is not None:
                idx = self.index.trie.item(code)
                items[b] = -1 if idx is None else idx
            texts.append(text)
        return items, texts

    def _tokens_to_code(self, token_ids) -> tuple | None:
        if self.token_to_code is None:
            raise ValueError("RewardScorer got token ids but no token_to_code table; pass SID strings or the table")
        ids = [t for t in token_ids if 0 <= t < len(self.token_to_code)]
        lv = [tuple(self.token_to_code[t]) for t in ids]
        lv = [x for x in lv if x[0] >= 0]
        if len(lv) != self.levels or [x[0] for x in lv] != list(range(self.levels)):
            return None
        return tuple(int(x[1]) for x in lv)

    # ---------------------------------------------------------------- scoring
    def score(self, sample_ids, outputs, group_size: int = 1) -> dict:
        """Rewards of a batch; `group_size` consecutive samples form one prompt's group (rank-aware rewards
        read positions within it)."""
        t0 = time.perf_counter()
        sample_ids = np.asarray(sample_ids, dtype=np.int64)
        if len(sample_ids) != len(outputs):
            raise ValueError(f"reward: {len(sample_ids)} sample ids but {len(outputs)} outputs")
        if group_size < 1 or len(sample_ids) % group_size:
            raise ValueError(f"reward: {len(sample_ids)} samples are not whole groups of {group_size}")
        if len(sample_ids) and (sample_ids.min() < 0 or sample_ids.max() >= len(self.gt)):
            raise ValueError(f"reward: sample ids must lie in [0, {len(self.gt)}), got {sample_ids.min()}.."
                             f"{sample_ids.max()}")
        items, texts = self.parse(outputs)
        valid = items >= 0
        total = np.zeros(len(items), dtype=np.float64)
        terms: dict[str, np.ndarray] = {}
        batch = RewardBatch(sample_ids, items, self.gt, self.space, group_size)
        for t in self.builtin:
            out = REWARDS[t.name](batch, **t.params)
            total += t.weight * out["score"]
            for k, v in out.items():
                terms[f"{t.name}/{k}"] = np.asarray(v, dtype=np.float32)
        metrics: dict[str, float] = {}
        if self.plugins and valid.any():
            v_idx = np.flatnonzero(valid)
            gts = [self._ground_truth(s) for s in sample_ids[v_idx]]
            infos = [{"sample_id": int(s), "item_index": int(i)} for s, i in zip(sample_ids[v_idx], items[v_idx])]
            for t, plugin in self.plugins:
                res = plugin(sample_ids[v_idx], self.cfg.data_source, [texts[i] for i in v_idx], gts, infos)
                full = np.zeros(len(items), dtype=np.float32)
                full[v_idx] = res.scores
                total += t.weight * full
                terms[f"{plugin.name}/score"] = full
                for k, arr in res.extras.items():
                    e = np.full(len(items), np.nan, dtype=np.float32)
                    e[v_idx] = arr
                    terms[f"{plugin.name}/{k}"] = e
                for kind in FAILURES:
                    metrics[f"reward/plugin/{plugin.name}/{kind}"] = float(res.failures[kind])
        total[~valid] = self.cfg.invalid_penalty
        for k in terms:
            terms[k][~valid] = np.nan  # an invalid sample has no terms, only the penalty
        terms["invalid"] = (~valid).astype(np.float32)
        metrics["reward/invalid_rate"] = float((~valid).mean()) if len(valid) else 0.0
        metrics["reward/mean"] = float(total.mean()) if len(total) else 0.0
        for k, v in terms.items():
            if k != "invalid" and np.isfinite(v).any():
                metrics[f"reward/{k}_mean"] = float(np.nanmean(v))
        metrics["timing/reward_score_s"] = time.perf_counter() - t0
        return {"score": total.astype(np.float32), "terms": terms, "metrics": metrics}

    def _ground_truth(self, sample_id: int) -> dict:
        """What a plug-in receives as `ground_truth`: SID strings of the example's sets."""
        s = self.index.sid
        return {"gts": [s(i) for i in self.gt.gts(sample_id)], "fps": [s(i) for i in self.gt.fps(sample_id)],
                "next_negative": s(int(self.gt.next_negative[sample_id]))}
