"""SID-trie constrained decoding for Hugging Face `generate` (beam search or sampling).

At every step the processor looks at what each row generated after its prompt, reads it as a SID
prefix, and leaves only the tokens of the trie's next values open; after a full code only EOS is
open. Every finished sequence is therefore a code of the catalogue.
"""

from __future__ import annotations

import numpy as np
import torch

from sid.vocab import LETTERS


class SidTokenMap:
    """SID token ids ↔ (level, value), for one tokenizer."""

    def __init__(self, tokenizer, level_sizes: list[int]):
        self.levels = len(level_sizes)
        self.ids = []  # ids[level][value] = token id
        for lvl, k in enumerate(level_sizes):
            ids = tokenizer.convert_tokens_to_ids([f"<{LETTERS[lvl]}_{v}>" for v in range(k)])
            if any(i is None or i == tokenizer.unk_token_id for i in ids):
                raise ValueError(f"tokenizer lacks SID tokens of level {lvl}: build it with the SID vocabulary "
                                 "(trainer.models.build_tokenizer) or add index.tokens()")
            self.ids.append(np.asarray(ids, dtype=np.int64))
        self.value_of = {}
        for lvl, ids in enumerate(self.ids):
            for v, t in enumerate(ids.tolist()):
                self.value_of[t] = (lvl, v)
        self.eos = tokenizer.eos_token_id

    def decode(self, token_ids) -> tuple[int, ...] | None:
        """Token ids → code, None unless exactly one token per level in order (EOS/pad ignored)."""
        out = []
        for t in token_ids:
            lv = self.value_of.get(int(t))
            if lv is None:
                if int(t) in (self.eos,):
                    break
                return None
            if lv[0] != len(out):
                return None
            out.append(lv[1])
        return tuple(out) if len(out) == self.levels else None


class TrieLogitsProcessor:
    """A `transformers` logits processor masking each row to its trie continuations."""

    def __init__(self, trie, token_map: SidTokenMap, prompt_len: int):
        self.trie, self.map, self.prompt_len = trie, token_map, prompt_len
        self._cache: dict[tuple, torch.Tensor] = {}

    def _allowed(self, prefix: tuple) -> np.ndarray:
        if len(prefix) >= self.map.levels:
            return np.array([self.map.eos])
        vals = self.trie.next_values(prefix)
        return self.map.ids[len(prefix)][vals] if len(vals) else np.array([self.map.eos])

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        mask = torch.full_like(scores, float("-inf"))
        for r, row in enumerate(input_ids[:, self.prompt_len:].tolist()):
            prefix = []
            for t in row:
                lv = self.map.value_of.get(t)
                if lv is None:
                    break
                prefix.append(lv[1])
            key = tuple(prefix)
            allowed = self._cache.get(key)
            if allowed is None:
                allowed = torch.as_tensor(self._allowed(key), dtype=torch.long)
                self._cache[key] = allowed
            mask[r, allowed] = 0.0
        return scores + mask


@torch.no_grad()
def beam_topk(model, tokenizer, prompts: list[str], trie, token_map: SidTokenMap, k: int,
              num_beams: int | None = None) -> list[list[tuple[int, ...]]]:
    """Top codes per prompt by trie-constrained beam search (best first; only catalogue codes)."""
    from transformers import LogitsProcessorList

    num_beams = num_beams or k
    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    proc = TrieLogitsProcessor(trie, token_map, enc.input_ids.shape[1])
    out = model.generate(**enc, max_new_tokens=token_map.levels + 1, num_beams=num_beams,
                         num_return_sequences=num_beams, do_sample=False, early_stopping=True,
                         logits_processor=LogitsProcessorList([proc]), pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    gen = out[:, enc.input_ids.shape[1]:].tolist()
    res = []
    for p in range(len(prompts)):
        codes = []
        for row in gen[p * num_beams:(p + 1) * num_beams]:
            c = token_map.decode(row)
            if c is not None and c not in codes:
                codes.append(c)
        res.append(codes)
    return res


@torch.no_grad()
def sequence_logprobs(model, tokenizer, prompts: list[str], targets: list[str], batch: int = 64) -> np.ndarray:
    """Sum of log p(target tokens | prompt) for each (prompt, target) pair (teacher forcing)."""
    out = np.zeros(len(prompts), dtype=np.float64)
    for s in range(0, len(prompts), batch):
        ps, ts = prompts[s:s + batch], targets[s:s + batch]
        rows, n_prompt = [], []
        for p, t in zip(ps, ts):
            pi = tokenizer(p, add_special_tokens=False)["input_ids"]
            ti = tokenizer(" " + t, add_special_tokens=False)["input_ids"]
            rows.append(pi + ti)
            n_prompt.append(len(pi))
        L = max(map(len, rows))
        ids = torch.full((len(rows), L), tokenizer.pad_token_id, dtype=torch.long)
        att = torch.zeros_like(ids)
        for r, x in enumerate(rows):
            ids[r, :len(x)] = torch.tensor(x)
            att[r, :len(x)] = 1
        logits = model(input_ids=ids.to(model.device), attention_mask=att.to(model.device)).logits.float()
        logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None].to(model.device))[..., 0].cpu()
        for r, x in enumerate(rows):
            out[s + r] = float(logp[r, n_prompt[r] - 1:len(x) - 1].sum())
    return out
