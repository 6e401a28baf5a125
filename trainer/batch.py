"""`StepBatch`: the one batch type of a GRPO step, flowing rollout → reward → learner.

A batch is P prompt groups of G rows each, rows of a group contiguous (group g is rows g·G … g·G+G−1).
Per group: the training example, the prompt's token ids (tokenized once, by the driver: the engines and
the learner read the same ids) and, for NLL anchoring, a supervised target. Per row: the completion's
token ids, the engine's log-probs of them under the constrained distribution it drew from, the reward
and the terms that explain it. Shards are whole groups, so an advantage never spans two ranks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass
class StepBatch:
    example_ids: np.ndarray
    """[P] the training example of each group."""
    prompt_ids: list[list[int]]
    """[P] each group's prompt, as token ids."""
    completions: list[list[int]]
    """[P·G] SID tokens + EOS."""
    engine_logprobs: list[list[float] | None] | None
    """[P·G] per completion token, the engine's log-prob (None: not known, e.g. a synthetic batch; a row's
    None: the engine did not draw that row, e.g. a target injected by `grpo.inject_target`)."""
    group_size: int
    temperature: float = 1.0
    """The sampling temperature the engine's (and so the learner's) constrained distribution used."""
    rewards: np.ndarray | None = None
    """[P·G] the reward of each row (set by the reward stage)."""
    reward_terms: dict[str, np.ndarray] = field(default_factory=dict)
    """[P·G] per term, what explains the reward (logged, not trained on)."""
    targets: list[list[int]] | None = None
    """[P] each group's supervised target (SID tokens + EOS), for NLL anchoring; None when off."""

    def __post_init__(self):
        P, G = len(self.prompt_ids), self.group_size
        if len(self.example_ids) != P or len(self.completions) != P * G:
            raise ValueError(f"StepBatch: {len(self.example_ids)} example ids, {P} prompts and {len(self.completions)} "
                             f"completions do not form {P} groups of {G}")

    @property
    def n_groups(self) -> int:
        return len(self.prompt_ids)

    def __len__(self) -> int:
        return len(self.completions)

    def row_group(self) -> np.ndarray:
        """[P·G] the group of each row."""
        return np.repeat(np.arange(self.n_groups), self.group_size)

    def row_example_ids(self) -> np.ndarray:
        return np.repeat(np.asarray(self.example_ids), self.group_size)

    def groups(self, idx) -> StepBatch:
        """The batch of groups `idx` (in that order)."""
        idx = np.asarray(idx, dtype=np.int64)
        G = self.group_size
        rows = (idx[:, None] * G + np.arange(G)).ravel()

        def pick(xs):
            return [xs[r] for r in rows]

        return replace(self, example_ids=np.asarray(self.example_ids)[idx],
                       prompt_ids=[self.prompt_ids[g] for g in idx], completions=pick(self.completions),
                       engine_logprobs=pick(self.engine_logprobs) if self.engine_logprobs is not None else None,
                       rewards=self.rewards[rows] if self.rewards is not None else None,
                       reward_terms={k: v[rows] for k, v in self.reward_terms.items()},
                       targets=[self.targets[g] for g in idx] if self.targets is not None else None)

    def shard(self, n: int) -> list[StepBatch]:
        """`n` contiguous shards of whole groups (sizes differ by at most one group)."""
        return [self.groups(s) for s in np.array_split(np.arange(self.n_groups), n)]

    @staticmethod
    def concat(parts: list[StepBatch]) -> StepBatch:
        first = parts[0]

        def cat(name):
            return [x for p in parts for x in getattr(p, name)]

        def has(name):
            return all(getattr(p, name) is not None for p in parts)

        return replace(first, example_ids=np.concatenate([np.asarray(p.example_ids) for p in parts]),
                       prompt_ids=cat("prompt_ids"), completions=cat("completions"),
                       engine_logprobs=cat("engine_logprobs") if has("engine_logprobs") else None,
                       rewards=np.concatenate([p.rewards for p in parts]) if has("rewards") else None,
                       reward_terms={k: np.concatenate([p.reward_terms[k] for p in parts])
                                     for k in first.reward_terms if all(k in p.reward_terms for p in parts)},
                       targets=cat("targets") if has("targets") else None)
