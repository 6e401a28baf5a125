"""The rollout-engine interface: group sampling of SID completions, and weight updates.

Every engine returns, per prompt, G completions as token ids with the log-probabilities of the
sampled tokens under the *constrained* distribution (the one the sampler drew from), so the
learner's importance ratios compare like with like.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SamplingConfig:
    n: int = 8
    """Rollouts per prompt (GRPO's group size G)."""
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 4
    """A SID is `levels` tokens plus EOS."""
    seed: int = 0


@dataclass
class Completion:
    token_ids: list[int]
    logprobs: list[float]


class RolloutEngine:
    def generate(self, prompts: list[str], cfg: SamplingConfig) -> list[list[Completion]]:
        raise NotImplementedError

    def update_weights(self, named_tensors: list) -> float:
        """Load (name, tensor) pairs into the engine; returns seconds taken."""
        raise NotImplementedError
