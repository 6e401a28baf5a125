"""Shared-prompt packing: the layout by hand, and the same log-probs as one row per sample."""

import pytest
import torch

from trainer.packing import per_sample, shared_prompt


def test_shared_prompt_layout_by_hand():
    # two groups: prompt [5, 6] with responses [1, 2] and [3]; prompt [7] with response [4, 9]
    lay = shared_prompt([[5, 6], [5, 6], [7]], [[1, 2], [3], [4, 9]], ["g", "g", "h"], pad=0, T=2)
    assert lay.input_ids.tolist() == [[5, 6, 1, 2, 3], [7, 4, 9, 0, 0]]
    assert lay.position_ids.tolist() == [[0, 1, 2, 3, 2], [0, 1, 2, 0, 0]]
    m = lay.attention_mask[:, 0].int().tolist()
    assert m[0] == [[1, 0, 0, 0, 0],   # p0
                    [1, 1, 0, 0, 0],   # p1
                    [1, 1, 1, 0, 0],   # response 1, token 1: prompt + itself
                    [1, 1, 1, 1, 0],   # response 1, token 2
                    [1, 1, 0, 0, 1]]   # response 2 sees the prompt, not response 1
    assert m[1] == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1]]
    # response token j is predicted at the previous token; row 1's flat positions start at 5
    assert lay.index.tolist() == [[1, 2], [1, 1], [5, 6]]


def test_per_sample_layout_by_hand():
    lay = per_sample([[5, 6], [7]], [[1, 2], [4]], pad=0, T=2)
    assert lay.input_ids.tolist() == [[5, 6, 1, 2], [7, 4, 0, 0]]
    assert lay.attention_mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert lay.index.tolist() == [[1, 2], [4, 4]]


def test_group_with_different_prompts_is_refused():
    with pytest.raises(ValueError, match="different prompts"):
        shared_prompt([[1], [2]], [[3], [3]], [0, 0], pad=0, T=1)


def test_packed_logits_equal_per_sample_logits():
    from trainer.models import TinyModelConfig, build_tiny_qwen2

    torch.manual_seed(0)
    model = build_tiny_qwen2(50, TinyModelConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                                 num_key_value_heads=1)).eval()
    prompts, comps, groups = [], [], []
    for g, plen in enumerate((7, 3, 11)):
        p = torch.randint(1, 50, (plen,)).tolist()
        for k in range(4):
            prompts.append(p)
            comps.append(torch.randint(1, 50, (4 if k % 3 else 2,)).tolist())
            groups.append(g)
    out = []
    for lay in (per_sample(prompts, comps, 0, 4), shared_prompt(prompts, comps, groups, 0, 4)):
        mask = lay.attention_mask
        kw = {}
        if mask.dim() == 4:
            mask = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)
            kw["position_ids"] = lay.position_ids
        with torch.no_grad():
            logits = model(input_ids=lay.input_ids, attention_mask=mask, **kw).logits
        out.append(logits.reshape(-1, 50)[lay.index.reshape(-1)])
    assert sum(len(c) for c in comps) == 36 and out[0].shape == (48, 50)
    torch.testing.assert_close(out[1], out[0], rtol=1e-5, atol=1e-5)
