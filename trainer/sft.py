"""SFT on DeepSpeed ZeRO: SID ↔ title translation, item-level alignment and warm-up generation.

One process per rank (torchrun / the deepspeed launcher / a Ray learner actor); a plain `conrec sft`
runs one rank. Tasks are mixed by weight each epoch (weight 1 = one pass over that task's pairs,
0.5 = half of them, 2 = twice), shuffled with a per-epoch seed so a resumed run sees the same order.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from common.config import build, read_config, to_dict
from feedback.split import SplitConfig
from trainer.models import TinyModelConfig
from trainer.prompts import TASKS, ContextConfig, context_events

log = logging.getLogger(__name__)


@dataclass
class ModelConfig:
    path: str = ""
    """A Hugging Face causal-LM folder or hub id; empty builds the tiny Qwen2 below with our tokenizer."""
    tiny: TinyModelConfig = field(default_factory=lambda: TinyModelConfig(hidden_size=128, num_hidden_layers=4,
                                                                          num_attention_heads=4,
                                                                          num_key_value_heads=4,
                                                                          intermediate_size=256))


@dataclass
class SFTConfig:
    data: str = "synthetic:"
    """Data spec (see feedback/loaders.py)."""
    sid_dir: str = ""
    """SID artifacts (`conrec sid build`); empty builds them into RUN_DIR/sid with defaults."""
    run_dir: str = "runs/sft"
    model: ModelConfig = field(default_factory=ModelConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    split_dir: str = ""
    """A split saved by `feedback.split.save_split` (`conrec run` writes RUN/sft/split): read instead of loading
    `data` and splitting it again. Its training events are used as they are (`holdout_validation` is not
    applied again: the writer already did)."""
    holdout_validation: int = 0
    """Leave out of every task the events of the curriculum's validation users from their validation cutoff
    on (feedback.split.validation_users: N sampled users, -1 = all of them; 0 = hold nothing out).
    `conrec run` sets it from grpo.val_users when grpo.val_holdout is on."""
    context: ContextConfig = field(default_factory=ContextConfig)
    tasks: dict = field(default_factory=lambda: {"warmup": 1.0, "alignment": 1.0, "title2sid": 0.5,
                                                 "sid2title": 0.25})
    """Task → sampling weight per epoch."""
    epochs: int = 3
    budget: str = "fixed"
    """'fixed' (epochs and model as written) or 'auto': a catalogue of `large_catalogue` items or more doubles
    the epochs, widens the tiny model to 256 (intermediate 512) and halves lr (`scaled_budget`); smaller
    ones keep the config's values. Chosen on validation users of the simulator at 500 and 10,000 items
    and MovieLens-100k (docs/BENCHMARKS.md, "SFT: a decayed learning rate, and the budget by catalogue size")."""
    large_catalogue: int = 5000
    max_steps: int = 0
    """Stop after this many optimizer steps in total (0 = run all epochs)."""
    micro_batch: int = 32
    grad_accum: int = 1
    lr: float = 2e-3
    lr_schedule: str = "cosine"
    """'cosine' (linear warm-up, then cosine decay to `min_lr_ratio` × lr at the last step) or 'constant'.
    A decayed rate lets the last epochs settle on the targets' distribution instead of the last batches'."""
    warmup_ratio: float = 0.05
    """Share of the optimizer steps spent warming the rate up from 0 (cosine only)."""
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.0
    zero_stage: int = 2
    bf16: bool = False
    max_len: int = 192
    val_frac: float = 0.05
    save_every: int = 0
    """Also checkpoint every N steps (0 = at the end of each epoch only)."""
    keep_checkpoints: int = 3
    """Newest checkpoints kept; ≥ 2 leaves a good one to fall back to if the newest is corrupted. 0 = all."""
    seed: int = 0
    progress: bool = True


class SFTData:
    """Tokenised (prompt, target) pairs per task, and the per-epoch mixture."""

    def __init__(self, pairs: dict[str, list[tuple[str, str]]], tokenizer, max_len: int, val_frac: float, seed: int):
        self.tok = tokenizer
        self.train, self.val = {}, {}
        rng = random.Random(seed)
        for task, ps in pairs.items():
            enc = [self._encode(p, t, max_len) for p, t in ps]
            enc = [e for e in enc if e is not None]
            rng.shuffle(enc)
            n_val = int(len(enc) * val_frac)
            self.val[task], self.train[task] = enc[:n_val], enc[n_val:]

    def _encode(self, prompt: str, target: str, max_len: int):
        p = self.tok(prompt, add_special_tokens=False)["input_ids"]
        # SID targets follow the prompt directly (as constrained decoding emits them); words after a space
        t = self.tok(target if target.startswith("<") else " " + target, add_special_tokens=False)["input_ids"]
        t = t + [self.tok.eos_token_id]
        if len(t) >= max_len:
            return None
        p = p[-(max_len - len(t)):]  # keep the end of the prompt (the newest context)
        return p + t, len(p)

    def epoch_size(self, weights: dict) -> int:
        """Pairs per epoch under `weights` (the same for every epoch)."""
        return sum(int(round(w * len(self.train[t]))) for t, w in weights.items() if self.train.get(t) and w > 0)

    def epoch(self, weights: dict, epoch: int, seed: int) -> list:
        rng = random.Random(seed * 100_003 + epoch)
        out = []
        for task, w in weights.items():
            items = self.train.get(task, [])
            if not items or w <= 0:
                continue
            n = int(round(w * len(items)))
            reps, rest = divmod(n, len(items))
            out += items * reps + rng.sample(items, rest)
        rng.shuffle(out)
        return out

    def collate(self, batch: list, device):
        import torch

        L = max(len(ids) for ids, _ in batch)
        pad = self.tok.pad_token_id
        ids = torch.full((len(batch), L), pad, dtype=torch.long)
        labels = torch.full((len(batch), L), -100, dtype=torch.long)
        att = torch.zeros((len(batch), L), dtype=torch.long)
        for r, (x, n_prompt) in enumerate(batch):
            ids[r, :len(x)] = torch.tensor(x)
            labels[r, n_prompt:len(x)] = torch.tensor(x[n_prompt:])
            att[r, :len(x)] = 1
        return ids.to(device), att.to(device), labels.to(device)


def prepare(cfg: SFTConfig):
    """Data, split, SIDs, examples, tokenizer and model for a run (deterministic by cfg.seed)."""
    from feedback.loaders import load
    from feedback.split import load_split, make_split, training_examples
    from sid.index import SidIndex

    if cfg.split_dir:  # the parent's split, as it was made (and held out) there
        split = load_split(cfg.split_dir)
        data = split.data
        log.info("SFT: the split in %s (%d training events)", cfg.split_dir, len(split.train))
    else:
        data = load(cfg.data)
        split = make_split(data, cfg.split)
        if cfg.holdout_validation:
            from feedback.split import validation_users, without_validation_future

            val = validation_users(split, max(cfg.holdout_validation, 0), cfg.split.seed)
            n0 = len(split.train)
            split = without_validation_future(split, val)
            log.info("SFT: %d of %d training events (the %d validation users' windows held out)", len(split.train),
                     n0, len(val.test))
    sid_dir = sid_dir_of(cfg)
    if not (sid_dir / "report.json").exists():
        if cfg.sid_dir:
            raise FileNotFoundError(f"sid_dir {sid_dir} has no report.json: build it with `conrec sid build`")
        from sid.build import SidConfig, build_sids

        log.info("building SIDs into %s", sid_dir)
        build_sids(data.items, data.category_columns, SidConfig(), sid_dir)
    index = SidIndex.load(sid_dir)
    index.check_catalogue(data.items["item_id"].to_numpy())
    examples = training_examples(split, max_context=context_events(cfg.context.max_items))
    return data, split, index, examples


def build_pairs(cfg: SFTConfig, data, split, index, examples) -> dict[str, list[tuple[str, str]]]:
    unknown = [t for t in cfg.tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown SFT task(s) {unknown}; registered: {sorted(TASKS)}")
    kw = dict(items=data.items, train=split.train, split=split, examples=examples, sid=index.sid,
              context=cfg.context, seed=cfg.seed)
    return {t: list(TASKS[t](**kw)) for t, w in cfg.tasks.items() if w > 0}  # weight 0: off, no pairs built


def load_model_and_tokenizer(cfg: SFTConfig, index, data):
    """A fresh model: the tiny Qwen2 with our tokenizer, or an HF model with the SID tokens added."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.models import build_tiny_qwen2, build_tokenizer
    from trainer.prompts import TEMPLATE_WORDS

    if cfg.model.path:
        tok = AutoTokenizer.from_pretrained(cfg.model.path)
        tok.add_tokens([t for t in index.tokens() if t not in tok.get_vocab()])
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        model = AutoModelForCausalLM.from_pretrained(cfg.model.path, dtype=torch.float32)
        model.resize_token_embeddings(len(tok))
    else:
        texts = list(data.items["title"].astype(str)) + [" ".join(TEMPLATE_WORDS)] * 50
        tok = build_tokenizer(texts, index.tokens(), vocab_size=4096)
        model = build_tiny_qwen2(len(tok), cfg.model.tiny, tok)
    return model, tok


def _env_single_rank() -> None:
    if "RANK" not in os.environ:
        from common.net import free_port

        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), RANK="0", LOCAL_RANK="0",
                          WORLD_SIZE="1")


def train(cfg: SFTConfig, resume: bool = False) -> dict:
    """Run SFT; returns the final metrics. Rank 0 writes metrics, checkpoints and the final HF model."""
    import deepspeed
    import torch
    import torch.distributed as dist

    from common.progress import progress
    from trainer.checkpoint import latest_checkpoint, load_engine_state, save_engine_state, step_dir, write_manifest
    from trainer.distributed import ds_config, init_distributed
    from trainer.metrics_log import MetricsLog, peak_rss_mib

    _env_single_rank()
    rank, world = init_distributed()
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    run = Path(cfg.run_dir)
    data, split, index, examples = prepare(cfg)
    scaled = scaled_budget(cfg, len(data.items))
    if scaled is not cfg:
        log.info("budget auto: %d items ≥ %d → %d epochs, lr %g, hidden %d", len(data.items), cfg.large_catalogue,
                 scaled.epochs, scaled.lr, scaled.model.tiny.hidden_size)
        cfg = scaled
    ckpt = latest_checkpoint(run) if resume else None
    if resume and ckpt is None:
        log.warning("--resume: no complete checkpoint under %s; starting from scratch", run / "checkpoints")
    if ckpt is not None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(ckpt / "hf")
        model = AutoModelForCausalLM.from_pretrained(ckpt / "hf", dtype=torch.float32)
    else:
        model, tok = load_model_and_tokenizer(cfg, index, data)
    sft = SFTData(build_pairs(cfg, data, split, index, examples), tok, cfg.max_len, cfg.val_frac, cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = lr_scheduler(opt, cfg, total_steps(cfg, sft, world))
    engine, opt, _, _ = deepspeed.initialize(model=model, optimizer=opt, lr_scheduler=sched,
                                             config=ds_config(cfg.zero_stage, cfg.micro_batch, cfg.grad_accum,
                                                              cfg.bf16))
    step, start_epoch, skip = 0, 0, 0
    if ckpt is not None:
        client = load_engine_state(engine, ckpt / "ds")
        step, start_epoch, skip = client["step"], client["epoch"], client["batches_done"]
        log.info("resumed from %s: step %d, epoch %d, %d batches into it", ckpt, step, start_epoch, skip)
    mlog = MetricsLog(run, enabled=rank == 0, append=ckpt is not None)
    if rank == 0:
        (run / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))

    def save(epoch: int, batches_done: int) -> None:
        d = step_dir(run, step)
        if rank == 0:
            engine.module.save_pretrained(d / "hf")
            tok.save_pretrained(d / "hf")
            write_model_card(d / "hf", sid_dir_of(cfg), cfg.context, cfg.data)
        save_engine_state(engine, d / "ds", step=step, epoch=epoch, batches_done=batches_done)
        if world > 1:
            dist.barrier()
        if rank == 0:
            write_manifest(d, {"step": step, "epoch": epoch, "batches_done": batches_done}, keep=cfg.keep_checkpoints)

    per_step = cfg.micro_batch * cfg.grad_accum * world
    done = False
    for epoch in range(start_epoch, cfg.epochs):
        order = sft.epoch(cfg.tasks, epoch, cfg.seed)
        mine = order[rank::world]
        batches = [mine[i:i + cfg.micro_batch] for i in range(0, len(mine) - cfg.micro_batch + 1, cfg.micro_batch)]
        first = skip if epoch == start_epoch else 0
        bar = progress(len(batches), f"sft epoch {epoch + 1}/{cfg.epochs}", initial=first,
                       enabled=cfg.progress and rank == 0)
        engine.train()
        for b in range(first, len(batches)):
            t0 = time.perf_counter()
            ids, att, labels = sft.collate(batches[b], engine.device)
            loss = engine(input_ids=ids, attention_mask=att, labels=labels).loss
            engine.backward(loss)
            engine.step()
            if (b + 1) % cfg.grad_accum:
                continue
            step += 1
            dt = time.perf_counter() - t0
            ntok = int(att.sum()) * world
            loss_v = loss.item()
            mlog.log(step, {"train/loss": loss_v, "train/epoch": epoch,
                            "train/lr": sched.get_last_lr()[0], "perf/tokens_per_s": ntok / dt,
                            "perf/peak_rss_mib": peak_rss_mib()})
            bar.set_postfix(loss=f"{loss_v:.3f}")
            bar.update(cfg.grad_accum)
            if cfg.save_every and step % cfg.save_every == 0:
                save(epoch, b + 1)
            if cfg.max_steps and step >= cfg.max_steps:
                done = True
                save(epoch, b + 1)
                break
        bar.close()
        if done:
            break
        val = validate(engine, sft, cfg)
        mlog.log(step, {f"val/{k}": v for k, v in val.items()})
        save(epoch + 1, 0)
    final = {"step": step, "samples_per_step": per_step, **mlog.last}
    if rank == 0:
        out = run / "final"
        engine.module.save_pretrained(out)
        tok.save_pretrained(out)
        write_model_card(out, sid_dir_of(cfg), cfg.context, cfg.data)
    mlog.close()
    return final


def scaled_budget(cfg: SFTConfig, n_items: int) -> SFTConfig:
    """The config `budget: auto` trains with on a catalogue of `n_items` (unchanged below `large_catalogue`).

    Why: with ten times the items, each item is a target a tenth as often; on the 10,000-item simulator the
    1.4 M-parameter model at 4 epochs stayed below popularity (FHR@20 −0.021 [−0.033, −0.008], 3 seeds),
    while 8 epochs of a 256-wide model tied it. Fixed budgets and pretrained models (`model.path`) are kept.
    """
    if cfg.budget == "fixed" or n_items < cfg.large_catalogue:
        return cfg
    if cfg.budget != "auto":
        raise ValueError(f"budget must be 'fixed' or 'auto', got {cfg.budget!r}")
    tiny = cfg.model.tiny
    if not cfg.model.path and tiny.hidden_size < 256:
        heads = max(tiny.num_attention_heads, 4)
        tiny = replace(tiny, hidden_size=256, intermediate_size=max(tiny.intermediate_size, 512),
                       num_attention_heads=heads, num_key_value_heads=heads)
    return replace(cfg, epochs=cfg.epochs * 2, lr=cfg.lr / 2, model=replace(cfg.model, tiny=tiny))


def total_steps(cfg: SFTConfig, sft: SFTData, world: int) -> int:
    """Optimizer steps the run will take (what the schedule decays over): the same count the loop makes."""
    mine = -(-sft.epoch_size(cfg.tasks) // world)  # rank 0's share of an epoch (the loop's order[rank::world])
    steps = cfg.epochs * ((mine // cfg.micro_batch) // cfg.grad_accum)
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


def lr_factor(step: int, total: int, schedule: str, warmup_ratio: float, min_ratio: float) -> float:
    """The learning-rate multiplier at optimizer step `step` (0-based) of `total`."""
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"lr_schedule must be 'cosine' or 'constant', got {schedule!r}")
    warm = int(round(warmup_ratio * total))
    if step < warm:
        return (step + 1) / warm
    t = min(1.0, (step - warm) / max(1, total - warm))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def lr_scheduler(opt, cfg: SFTConfig, total: int):
    """A LambdaLR over `lr_factor`; DeepSpeed steps it once per optimizer step and checkpoints its state."""
    import torch

    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total, cfg.lr_schedule, cfg.warmup_ratio, cfg.min_lr_ratio))


def sid_dir_of(cfg: SFTConfig) -> Path:
    return Path(cfg.sid_dir) if cfg.sid_dir else Path(cfg.run_dir) / "sid"


def write_model_card(model_dir: Path, sid_dir, context: ContextConfig, data: str) -> None:
    """conrec.json beside the weights: which SIDs and which prompt context the model was trained with."""
    from common.atomic import write_json_atomic

    write_json_atomic({"sid_dir": str(Path(sid_dir).resolve()), "context": to_dict(context), "data": data},
                      Path(model_dir) / "conrec.json")


def validate(engine, sft: SFTData, cfg: SFTConfig) -> dict:
    import torch

    engine.eval()
    out = {}
    with torch.no_grad():
        for task, items in sft.val.items():
            if not items:
                continue
            tot = n = 0
            for i in range(0, len(items), cfg.micro_batch):
                ids, att, labels = sft.collate(items[i:i + cfg.micro_batch], engine.device)
                loss = engine(input_ids=ids, attention_mask=att, labels=labels).loss
                k = int((labels != -100).sum())
                tot, n = tot + float(loss) * k, n + k
            out[f"{task}_loss"] = tot / max(n, 1)
    engine.train()
    return out


def main(argv: list[str] | None = None) -> int:
    import yaml  # noqa: F401  (omegaconf needs it; fail early with a clear name)

    p = argparse.ArgumentParser(prog="conrec sft", description="Context-understanding SFT on DeepSpeed ZeRO.")
    p.add_argument("--config", help="YAML config (fields of trainer.sft.SFTConfig)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR's latest complete checkpoint")
    p.add_argument("overrides", nargs="*",
                   help="dotted overrides, e.g. epochs=2 zero_stage=1 model.tiny.hidden_size=64")
    a = p.parse_intermixed_args(argv)  # overrides may come before or after the flags
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if os.environ.get("CONREC_LOG_DIR"):  # started by a quiet `conrec run`: its own lines only (common/logs.py)
        from common.logs import quiet_third_party

        quiet_third_party()
        logging.getLogger("feedback").setLevel(logging.WARNING)  # the driver already said how the data split
    cfg = build(SFTConfig, read_config(a.config), a.overrides, source=f"--config {a.config}")
    try:
        final = train(cfg, resume=a.resume)
    except KeyboardInterrupt:  # Ctrl-C reaches this process too when `conrec run` started it
        print(f"conrec sft: interrupted; checkpoints under {cfg.run_dir}/checkpoints are kept (--resume continues)",
              file=sys.stderr)
        return 130
    if os.environ.get("CONREC_LOG_DIR"):
        log.debug("final %s", json.dumps(final))  # the driver's console; RUN/sft/metrics.jsonl has it
    else:
        print(json.dumps(final))
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()  # no rank tears the group down while another still talks to it
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
