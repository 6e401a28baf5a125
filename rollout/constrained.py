"""SID-trie constrained decoding.

- `TrieLogitsProcessor` for Hugging Face `generate` (sampling or beam search): each step reads what a
  row generated after its prompt as a SID prefix and leaves only the trie's next values open (after
  a full code, only EOS), so every finished sequence is a catalogue code.
- `trie_beam_search`: top-K codes for evaluation and serving, one prompt prefill + KV cache, beams
  expanded only along the trie.
- `code_logprobs` / `sequence_logprobs`: teacher-forced log-probabilities of given targets.

SID targets follow the prompt directly (no space token), exactly as the SFT data encodes them.
"""

from __future__ import annotations

import numpy as np
import torch

from sid.tokens import SidTokenMap


class TrieLogitsProcessor:
    """A `transformers` logits processor masking each row to its trie continuations."""

    def __init__(self, trie, token_map: SidTokenMap, prompt_len: int):
        self.trie, self.map, self.prompt_len = trie, token_map, prompt_len
        self._cache: dict[tuple, torch.Tensor] = {}

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        mask = torch.full_like(scores, float("-inf"))
        for r, row in enumerate(input_ids[:, self.prompt_len:].tolist()):
            key = self.map.prefix(row)
            allowed = self._cache.get(key)
            if allowed is None:
                allowed = torch.as_tensor(self.map.allowed_ids(self.trie, key), dtype=torch.long)
                self._cache[key] = allowed
            mask[r, allowed] = 0.0
        return scores + mask


@torch.no_grad()
def sequence_logprobs(model, tokenizer, prompts: list[str], targets: list[str], batch: int = 64) -> np.ndarray:
    """Sum of log p(target tokens | prompt) for each (prompt, target) pair (teacher forcing)."""
    out = np.zeros(len(prompts), dtype=np.float64)
    for s in range(0, len(prompts), batch):
        ps, ts = prompts[s:s + batch], targets[s:s + batch]
        rows, n_prompt = [], []
        for p, t in zip(ps, ts):
            pi = tokenizer(p, add_special_tokens=False)["input_ids"]
            ti = tokenizer(t if t.startswith("<") else " " + t, add_special_tokens=False)["input_ids"]
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


def _prefill(model, tokenizer, prompts: list):
    """Left-padded prompts (strings or token ids) through the model once: last-position log-probs, the KV
    cache, lengths."""
    from rollout.engine import prompt_ids

    tokenizer.padding_side = "left"
    enc = tokenizer.pad({"input_ids": prompt_ids(tokenizer, prompts)}, return_tensors="pt").to(model.device)
    att = enc.attention_mask
    pos = (att.cumsum(-1) - 1).clamp(min=0)  # positions as in training, whatever the left padding
    out = model(input_ids=enc.input_ids, attention_mask=att, position_ids=pos, use_cache=True, logits_to_keep=1)
    return torch.log_softmax(out.logits[:, -1].float(), -1), out.past_key_values, att, att.sum(-1)


@torch.no_grad()
def trie_beam_search(model, tokenizer, prompts: list[str], trie, token_map: SidTokenMap, num_beams: int,
                     renormalize: bool = False) -> list[list[tuple[tuple[int, ...], float]]]:
    """Beam search over the SID trie with one prompt prefill and a KV cache: per prompt, up to
    `num_beams` catalogue codes with their summed log-probabilities, best first. `renormalize`: each level's
    log-probs renormalised over the trie's open values (the constrained distribution the rollout engines rank
    by) instead of the raw log-probs of those values (the evaluation protocol's ranking)."""
    B = len(prompts)
    logp, past, att, lens = _prefill(model, tokenizer, prompts)
    beams: list[list[tuple[tuple, float]]] = [[((), 0.0)] for _ in range(B)]
    rows = torch.arange(B)  # cache row of every live beam, in order
    for level in range(token_map.levels):
        lp = logp.cpu().numpy()
        new: list[list[tuple[tuple, float, int]]] = []
        r = 0
        for b in range(B):
            cand = []
            for prefix, score in beams[b]:
                vals = trie.next_values(prefix)
                if len(vals):
                    x = lp[r, token_map.ids[level][vals]]
                    if renormalize:
                        x = x - np.logaddexp.reduce(x)
                    s = score + x
                    cand += [(prefix + (int(v),), float(x), r) for v, x in zip(vals, s)]
                r += 1
            cand.sort(key=lambda c: -c[1])
            new.append(cand[:num_beams])
        beams = [[(p, s) for p, s, _ in c] for c in new]
        if level == token_map.levels - 1:
            break
        src = torch.tensor([row for c in new for _, _, row in c], dtype=torch.long)
        past.reorder_cache(src.to(model.device))  # keep (and copy) the cache rows the new beams extend
        owner = rows.new_tensor([b for b, c in enumerate(new) for _ in c])
        tok = torch.tensor([[int(token_map.ids[level][p[-1]])] for c in new for p, _, _ in c], device=model.device)
        att = torch.cat([att[src.to(att.device)], torch.ones(len(src), 1, dtype=att.dtype, device=att.device)], 1)
        pos = (lens[owner.to(lens.device)] + level).unsqueeze(1)
        out = model(input_ids=tok, attention_mask=att, position_ids=pos, past_key_values=past, use_cache=True)
        past = out.past_key_values
        logp = torch.log_softmax(out.logits[:, -1].float(), -1)
        rows = owner
    return beams


@torch.no_grad()
def code_logprobs(model, tokenizer, prompts: list[str], codes: np.ndarray, token_map: SidTokenMap) -> np.ndarray:
    """log p(code | prompt) for every prompt × each of its C codes ([B, C, L] → [B, C]); one prefill per
    prompt, the C codes scored together on the repeated cache."""
    B, C, L = codes.shape
    logp0, past, att, lens = _prefill(model, tokenizer, prompts)
    tok = torch.tensor(np.stack([token_map.ids[lvl][codes[..., lvl]] for lvl in range(L)], -1), dtype=torch.long)
    first = logp0.cpu().gather(1, tok[:, :, 0])  # [B, C]
    if L == 1:
        return first.numpy()
    past.batch_repeat_interleave(C)
    att = torch.cat([att.repeat_interleave(C, 0), torch.ones(B * C, L - 1, dtype=att.dtype, device=att.device)], 1)
    pos = lens.repeat_interleave(C).unsqueeze(1) + torch.arange(L - 1, device=lens.device)
    inp = tok[:, :, :-1].reshape(B * C, L - 1).to(model.device)
    out = model(input_ids=inp, attention_mask=att, position_ids=pos, past_key_values=past, use_cache=True)
    lp = torch.log_softmax(out.logits.float(), -1).cpu()
    rest = lp.gather(2, tok[:, :, 1:].reshape(B * C, L - 1, 1))[..., 0].sum(1).reshape(B, C)
    return (first + rest).numpy()


def batched_code_logprobs(model, tokenizer, prompts: list[str], codes: np.ndarray, token_map: SidTokenMap,
                          batch: int = 32) -> np.ndarray:
    """`code_logprobs` over any number of prompts, `batch` prompts per forward."""
    return np.concatenate([code_logprobs(model, tokenizer, prompts[s:s + batch], codes[s:s + batch], token_map)
                           for s in range(0, len(prompts), batch)])


def level_beam_search(n_prompts: int, levels: int, width: int, expand) -> list[list[tuple[tuple, tuple]]]:
    """Constrained beam search one SID level at a time, for rollout engines that score a batch of
    (prompt, SID prefix) requests per call: per prompt, up to `width` distinct catalogue codes, best first
    by the sum of their per-level constrained log-probs, each as (code, per-level log-probs).

    `expand(requests)` takes [(prompt index, prefix)] and returns, per request, [(next value, log-prob)]:
    the trie's continuations of that prefix under the constrained distribution (its top `width` suffice).
    Ties break on the code, so a group is a function of the weights and the prompt alone."""
    beams: list[list[tuple[tuple, tuple]]] = [[((), ())] for _ in range(n_prompts)]
    for _ in range(levels):
        reqs = [(p, prefix, lps) for p in range(n_prompts) for prefix, lps in beams[p]]
        conts = expand([(p, prefix) for p, prefix, _ in reqs])
        cand: list[list[tuple[tuple, tuple]]] = [[] for _ in range(n_prompts)]
        for (p, prefix, lps), nxt in zip(reqs, conts):
            cand[p] += [(prefix + (int(v),), lps + (float(lp),)) for v, lp in nxt]
        beams = [sorted(c, key=lambda b: (-sum(b[1]), b[0]))[:width] for c in cand]
    return beams
