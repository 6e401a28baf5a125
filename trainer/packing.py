"""Model inputs for scoring GRPO samples: one row per sample, or each group's prompt shared.

The G samples of a prompt share the whole prompt (≈ 70 tokens) and differ only in a 4-token SID, so
scoring them as G separate rows feeds the prompt G times through every pass. `pack_groups` lays a
group out as one sequence, the prompt once and then each response:

    tokens     p0 p1 … p(P-1) | a0 a1 a2 a3 | b0 b1 b2 b3 | …
    positions  0  1  … P-1    | P P+1 …     | P P+1 …     | …

with a block attention mask: the prompt is causal, a response sees the prompt and its own earlier
tokens, never another response. Every response token then gets exactly the logits it would get in
its own row (same tokens, same positions, same visible keys), at ≈ G× fewer tokens.

Both layouts return the same `Layout`; `index[n, j]` is the flat (row-major over `input_ids`)
position whose logits predict response token j of sample n (the last prompt token for j = 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Layout:
    input_ids: torch.Tensor        # [B, S]
    attention_mask: torch.Tensor   # [B, S] (per-sample rows) or [B, 1, S, S] bool, True = may attend
    position_ids: torch.Tensor | None
    index: torch.Tensor            # [N, T] flat positions into input_ids


def per_sample(prompts: list[list[int]], completions: list[list[int]], pad: int, T: int) -> Layout:
    """One right-padded row per sample (prompt + completion)."""
    L = max(len(p) + len(c) for p, c in zip(prompts, completions))
    ids = torch.full((len(prompts), L), pad, dtype=torch.long)
    att = torch.zeros_like(ids)
    index = torch.zeros(len(prompts), T, dtype=torch.long)
    for n, (p, c) in enumerate(zip(prompts, completions)):
        ids[n, :len(p) + len(c)] = torch.tensor(p + c)
        att[n, :len(p) + len(c)] = 1
        index[n] = n * L + len(p) - 1 + torch.arange(T).clamp(max=max(len(c) - 1, 0))
    return Layout(ids, att, None, index)


def shared_prompt(prompts: list[list[int]], completions: list[list[int]], groups: list, pad: int, T: int) -> Layout:
    """One row per group of samples with equal `groups` key (they must share the prompt); rows keep the
    groups' first-appearance order and `index` keeps the samples' order."""
    members: dict = {}
    for n, g in enumerate(groups):
        members.setdefault(g, []).append(n)
    packed = []
    for g, ns in members.items():
        p = prompts[ns[0]]
        if any(prompts[n] != p for n in ns):
            raise ValueError(f"samples of group {g!r} have different prompts; they cannot share one")
        packed.append((p, ns))
    S = max(len(p) + sum(len(completions[n]) for n in ns) for p, ns in packed)
    B = len(packed)
    ids = torch.full((B, S), pad, dtype=torch.long)
    pos = torch.zeros((B, S), dtype=torch.long)
    mask = torch.zeros((B, 1, S, S), dtype=torch.bool)
    index = torch.zeros(len(prompts), T, dtype=torch.long)
    for b, (p, ns) in enumerate(packed):
        P = len(p)
        ids[b, :P] = torch.tensor(p)
        pos[b, :P] = torch.arange(P)
        mask[b, 0, :P, :P] = torch.ones(P, P, dtype=torch.bool).tril()
        off = P
        for n in ns:
            c = completions[n]
            k = len(c)
            ids[b, off:off + k] = torch.tensor(c, dtype=torch.long)
            pos[b, off:off + k] = P + torch.arange(k)
            mask[b, 0, off:off + k, :P] = True
            mask[b, 0, off:off + k, off:off + k] = torch.ones(k, k, dtype=torch.bool).tril()
            # token j is predicted at the previous token: the last prompt token, then the response's own
            prev = torch.cat([torch.tensor([P - 1]), off + torch.arange(max(k - 1, 0))]) if k else torch.tensor([P - 1])
            index[n] = b * S + prev[torch.arange(T).clamp(max=len(prev) - 1)]
            off += k
        end = off
        idx = torch.arange(end, S)
        mask[b, 0, idx, idx] = True  # padding sees itself only (no all-masked rows: no NaN)
    return Layout(ids, mask, pos, index)
