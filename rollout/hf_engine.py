"""Hugging Face `generate` behind the rollout interface (any causal LM; slower than vLLM).

Sampling goes through the SID-trie logits processor; the returned log-probabilities come from the
processed scores (after the trie mask and temperature), matching what was sampled. Beam mode runs
`level_beam_search` with one forward pass per level over every live (prompt + prefix) row.
"""

from __future__ import annotations

import time

import torch

from rollout.constrained import TrieLogitsProcessor
from rollout.engine import Completion, EngineConfig, RolloutEngine, SamplingConfig, prompt_ids
from sid.tokens import SidTokenMap


class HFEngine(RolloutEngine):
    def __init__(self, model_dir: str, sid_dir: str, seed: int = 0, cfg: EngineConfig | None = None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from sid.index import SidIndex

        cfg = cfg or EngineConfig()
        self.device = cfg.hf_device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.tok.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, cfg.dtype))
        self.model = self.model.to(self.device).eval()
        self.index = SidIndex.load(sid_dir)
        self.map = SidTokenMap(self.tok, self.index.level_sizes)
        self.seed = seed

    @torch.no_grad()
    def generate(self, prompts: list, cfg: SamplingConfig) -> list[list[Completion]]:
        from transformers import LogitsProcessorList

        if cfg.mode == "beam":
            return self._beam(prompt_ids(self.tok, prompts), cfg)
        torch.manual_seed(cfg.seed)
        enc = self.tok.pad({"input_ids": prompt_ids(self.tok, prompts)}, return_tensors="pt").to(self.device)
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

    @torch.no_grad()
    def _beam(self, p_ids: list[list[int]], cfg: SamplingConfig, batch: int = 64) -> list[list[Completion]]:
        from rollout.constrained import level_beam_search
        from rollout.engine import beam_completions

        def expand(reqs):
            res = []
            for s in range(0, len(reqs), batch):
                chunk = reqs[s:s + batch]
                rows = [p_ids[p] + [int(self.map.ids[lvl][v]) for lvl, v in enumerate(pre)] for p, pre in chunk]
                L = max(map(len, rows))
                ids = torch.full((len(rows), L), self.tok.pad_token_id, dtype=torch.long)
                att = torch.zeros_like(ids)
                for r, x in enumerate(rows):  # left padding; positions count from each row's first token
                    ids[r, L - len(x):], att[r, L - len(x):] = torch.tensor(x), 1
                pos = (att.cumsum(-1) - 1).clamp(min=0)
                logits = self.model(input_ids=ids.to(self.device), attention_mask=att.to(self.device),
                                    position_ids=pos.to(self.device), logits_to_keep=1).logits[:, -1].float().cpu()
                for r, (_, pre) in enumerate(chunk):
                    vals = self.index.trie.next_values(pre)
                    z = logits[r, torch.as_tensor(self.map.ids[len(pre)][vals])] / cfg.temperature
                    lp = torch.log_softmax(z, -1)  # the trie-constrained distribution of this level
                    top = torch.topk(lp, min(cfg.n, len(vals)))
                    res.append([(int(vals[i]), float(x)) for i, x in zip(top.indices.tolist(), top.values.tolist())])
            return res

        beams = level_beam_search(len(p_ids), self.map.levels, cfg.n, expand)
        return beam_completions(beams, self.map, cfg.n)

    def update_weights(self, named_tensors: list) -> float:
        t0 = time.perf_counter()
        self.model.load_state_dict(dict(named_tensors), strict=False)
        return time.perf_counter() - t0
