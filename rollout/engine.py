"""The rollout-engine interface: groups of SID completions (sampled, or a constrained beam), and weight updates.

Every engine returns, per prompt, G completions as token ids with the log-probabilities of their
tokens under the *constrained* distribution (the trie-masked softmax at the sampling temperature),
so the learner's importance ratios compare like with like.
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
    mode: str = "sample"
    """'sample': G draws from the constrained policy (duplicates possible). 'beam': the G best *distinct*
    catalogue codes of a constrained beam search, best first (MiniOneRec / ReRe groups: the hardest
    negatives, and an order a rank-aware reward can use); top_p is not used, temperature scales the
    log-probs the group carries."""

    def __post_init__(self):
        if self.mode not in ("sample", "beam"):
            raise ValueError(f"sampling.mode must be 'sample' or 'beam', got {self.mode!r}")
        if self.mode == "beam" and self.temperature <= 0:
            raise ValueError("sampling.mode=beam needs temperature > 0 (it scales the group's log-probs); "
                             f"got {self.temperature}")


@dataclass
class Completion:
    token_ids: list[int]
    logprobs: list[float]


def beam_completions(beams: list[list[tuple[tuple, tuple]]], token_map, n: int) -> list[list[Completion]]:
    """`level_beam_search` results → G completions per prompt: the code's tokens and EOS (which the trie
    forces after a full code: log-prob 0). A prompt whose trie holds fewer than G codes repeats its
    last one, so every group has G rows (the repeats are scored like any sample)."""
    out = []
    for group in beams:
        comps = [Completion([int(token_map.ids[lvl][v]) for lvl, v in enumerate(code)] + [token_map.eos],
                            [float(x) for x in lps] + [0.0]) for code, lps in group]
        out.append(comps + [comps[-1]] * (n - len(comps)))
    return out


class RolloutEngine:
    def generate(self, prompts: list[str], cfg: SamplingConfig) -> list[list[Completion]]:
        raise NotImplementedError

    def update_weights(self, named_tensors: list) -> float:
        """Load (name, tensor) pairs into the engine; returns seconds taken."""
        raise NotImplementedError
