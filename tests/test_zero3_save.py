"""Under ZeRO-3 on 2 gloo ranks, the saved HF folder holds the gathered weights (each rank holds a shard only;
saving on rank 0 alone wrote partitioned, empty parameters) and reloads to exactly what the engines get."""

import json
import os
import subprocess
import sys

import pytest

from common.net import free_port
from tests.conftest import ROOT

pytestmark = pytest.mark.stack

CODE = r"""
import json, os, sys, numpy as np, torch
from feedback.loaders import load
from sid.build import SidConfig, build_sids
from sid.encode import EncoderConfig
from sid.rqvae import RQVAEConfig
from trainer.models import TinyModelConfig, build_tiny_qwen2, build_tokenizer
from trainer.grpo_learner import GRPOLearner, LearnerConfig
from trainer.grpo_algo import AlgoConfig
from trainer.batch import StepBatch
from sid.tokens import SidTokenMap

work, rank = sys.argv[1], int(os.environ["RANK"])
data = load("synthetic:users=30,items=30,days=10,seed=4")
if rank == 0:
    index, _ = build_sids(data.items, [], SidConfig(encoder=EncoderConfig(text_encoder="hashing", progress=False),
        rqvae=RQVAEConfig(levels=2, codebook_size=8, latent_dim=8, hidden_dims=[16], epochs=5, progress=False)),
        work + "/sid")
    tok = build_tokenizer(["user disliked next dislike:"] + list(data.items.title), index.tokens(), vocab_size=300)
    # MLP matrices of 256 × 1024 exceed ZeRO-3's persistence threshold (1e5 elements): they are partitioned
    model = build_tiny_qwen2(len(tok), TinyModelConfig(hidden_size=256, num_hidden_layers=1, num_attention_heads=4,
                                                       num_key_value_heads=4, intermediate_size=1024), tok)
    model.save_pretrained(work + "/m"); tok.save_pretrained(work + "/m")
    open(work + "/ready", "w").close()
else:
    import time
    deadline = time.monotonic() + 120
    while not os.path.exists(work + "/ready"):
        assert time.monotonic() < deadline, "rank 0 never built the model"
        time.sleep(0.2)
learner = GRPOLearner(work + "/m", work + "/sid", LearnerConfig(zero_stage=3, lr=1e-2, micro_batch=8,
                                                                 algo=AlgoConfig(kl_coef=0.0)), use_reference=False)
tmap = SidTokenMap(learner.tok, learner.index.level_sizes)
codes = learner.index.codes
comps = [[int(tmap.ids[l][v]) for l, v in enumerate(codes[j])] + [tmap.eos] for j in range(4)]
p = learner.tok("user disliked: next dislike:", add_special_tokens=False)["input_ids"]
learner.update(StepBatch(np.array([rank]), [p], comps, None, 4, rewards=np.arange(4.0)))  # move off the init
learner.save_pretrained(work + "/saved")
named = dict(learner.named_weights())  # the gathered weights the engines receive
if rank == 0:
    from transformers import AutoModelForCausalLM
    back = AutoModelForCausalLM.from_pretrained(work + "/saved", dtype=torch.float32).state_dict()
    init = AutoModelForCausalLM.from_pretrained(work + "/m", dtype=torch.float32).state_dict()
    print(json.dumps({"max_diff": max(float((back[k] - v).abs().max()) for k, v in named.items()),
                      "moved": max(float((named[k] - init[k]).abs().max()) for k in named),
                      "numel": sum(v.numel() for v in back.values())}))
"""


def test_zero3_saved_folder_holds_the_gathered_weights(tmp_path):
    port = str(free_port())
    procs = []
    for rank in (0, 1):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=port, OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, "-c", CODE, str(tmp_path)], cwd=ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=400) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs[0][1][-3000:] + outs[1][1][-3000:]
    r = json.loads([ln for ln in outs[0][0].splitlines() if ln.startswith("{")][-1])
    assert r["moved"] > 0 and r["numel"] > 0  # the update changed the weights, and they were saved
    assert r["max_diff"] == 0.0, r
