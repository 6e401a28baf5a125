"""Hugging Face `generate` behind the rollout interface (any causal LM; slower than vLLM).

Sampling goes through the SID-trie logits processor; the returned log-probabilities come from the
processed scores (after the trie mask and temperature), matching what was sampled.
"""

from __future__ import annotations

import time

import torch

from rollout.constrained import SidTokenMap, TrieLogitsProcessor
from rollout.engine import Completion, RolloutEngine, SamplingConfig


class HFEngine(RolloutEngine):
    def __init__(self, model_dir: str, sid_dir: str, seed: int = 0, device: str | None = None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from sid.index import SidIndex

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.tok.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(self.device).eval()
        self.index = SidIndex.load(sid_dir)
        self.map = SidTokenMap(self.tok, self.index.level_sizes)
        self.seed = seed

    @torch.no_grad()
    def generate(self, prompts: list[str], cfg: SamplingConfig) -> list[list[Completion]]:
        from transformers import LogitsProcessorList

        torch.manual_seed(cfg.seed)
        enc = self.tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        proc = TrieLogitsProcessor(self.index.trie, self.map, enc.input_ids.shape[1])
        greedy = cfg.temperature == 0
        out = self.model.generate(**enc, max_new_tokens=cfg.max_tokens, num_return_sequences=cfg.n,
                                  do_sample=not greedy, temperature=None if greedy else cfg.temperature,
                                  top_p=None if greedy else cfg.top_p, logits_processor=LogitsProcessorList([proc]),
                                  output_scores=True, return_dict_in_generate=True,
                                  pad_token_id=self.tok.pad_token_id, eos_token_id=self.tok.eos_token_id)
        gen = out.sequences[:, enc.input_ids.shape[1]:]
        logps = torch.stack([torch.log_softmax(s.float(), -1) for s in out.scores], 1)  # [B*n, T, V]
        res = []
        for p in range(len(prompts)):
            group = []
            for r in range(p * cfg.n, (p + 1) * cfg.n):
                ids = []
                for t in gen[r].tolist():
                    ids.append(t)
                    if t == self.tok.eos_token_id:
                        break
                group.append(Completion(ids, [float(logps[r, j, t]) for j, t in enumerate(ids)]))
            res.append(group)
        return res

    def update_weights(self, named_tensors: list) -> float:
        t0 = time.perf_counter()
        self.model.load_state_dict(dict(named_tensors), strict=False)
        return time.perf_counter() - t0
