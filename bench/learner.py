"""Learner step throughput: a Qwen2-architecture model trained by DeepSpeed ZeRO on the device at hand.

One rank per process (launch several with torchrun); random token batches, next-token loss, the
client AdamW. Reports tokens/s (median after warm-up) and peak memory (CUDA allocator on GPU, RSS on
CPU) for each ZeRO stage and dtype asked for.

    python -m bench.learner --hidden 512 --layers 8 --stages 1 2 3 --dtypes fp32 bf16
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def run_one(stage: int, dtype: str, hidden: int, layers: int, vocab: int, batch: int, seq: int, steps: int) -> dict:
    import deepspeed
    import torch

    from trainer.distributed import ds_config, init_distributed
    from trainer.metrics_log import peak_rss_mib
    from trainer.models import TinyModelConfig, build_tiny_qwen2

    init_distributed()
    heads = max(hidden // 64, 1)
    model = build_tiny_qwen2(vocab, TinyModelConfig(hidden_size=hidden, num_hidden_layers=layers,
                                                    num_attention_heads=heads, num_key_value_heads=heads,
                                                    intermediate_size=4 * hidden, max_position_embeddings=seq))
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=opt,
                                           config=ds_config(stage, batch, bf16=dtype == "bf16"))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    gen = torch.Generator().manual_seed(0)
    times = []
    for _ in range(steps):
        ids = torch.randint(0, vocab, (batch, seq), generator=gen).to(engine.device)
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = engine(input_ids=ids, labels=ids).loss
        engine.backward(loss)
        engine.step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    dt = float(np.median(times[3:] if len(times) > 5 else times))
    world = torch.distributed.get_world_size()
    row = {"stage": stage, "dtype": dtype, "params_m": n_params / 1e6, "batch": batch, "seq": seq, "ranks": world,
           "step_s": dt, "tokens_per_s": batch * seq * world / dt, "loss": float(loss)}
    row["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20 if cuda else peak_rss_mib()
    row["device"] = torch.cuda.get_device_name(0) if cuda else "cpu"
    engine.destroy() if hasattr(engine, "destroy") else None
    return row


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--stages", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--dtypes", nargs="+", default=["fp32"])
    p.add_argument("--out", help="write the rows here as JSON")
    a = p.parse_args()
    from trainer.sft import _env_single_rank

    _env_single_rank()
    rows = []
    for dtype in a.dtypes:
        for stage in a.stages:
            r = run_one(stage, dtype, a.hidden, a.layers, a.vocab, a.batch, a.seq, a.steps)
            rows.append(r)
            print(f"ZeRO-{stage} {dtype:<4} {r['params_m']:.1f}M params x{r['ranks']} on {r['device']}: "
                  f"{r['step_s'] * 1e3:8.1f} ms/step  {r['tokens_per_s']:>10,.0f} tokens/s  "
                  f"peak {r['peak_mib']:,.0f} MiB",
                  flush=True)
    if a.out:
        from pathlib import Path

        Path(a.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
