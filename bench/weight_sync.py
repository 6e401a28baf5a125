"""Weight sync: seconds to move the learner's weights into every rollout engine, by model size,
transport (Ray object store vs a gloo/NCCL broadcast group) and bucketing (whole state dict vs buckets).

The real actors of a run: one DeepSpeed learner rank (ZeRO-2) and `--actors` vLLM rollout actors,
moved by the driver's `cluster.weight_sync` exactly as in `conrec run`. Models are config-initialised
Qwen2s sharing one tokenizer and SID set, from 0.5M to 86M parameters (vocabulary 4.9k, tied embeddings)
(`--sizes`). A figure is the
driver's wall time of one sync (median of `--repeats` after one warm-up that also forms the
collective group), and the engines' share of it (loading the received tensors).

    python -m bench.weight_sync [--sizes 0.5M,6.5M,34M,86M --actors 2 --bucket-mb 16]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

SIZES = {"0.5M": (128, 2), "6.5M": (384, 4), "34M": (640, 8), "86M": (1024, 8)}  # parameters: hidden, layers


def build_model(work: str, name: str, tok_dir: str) -> tuple[str, int]:
    from transformers import AutoTokenizer

    from trainer.models import TinyModelConfig, build_tiny_qwen2

    hidden, layers = SIZES[name]
    tok = AutoTokenizer.from_pretrained(tok_dir)
    heads = max(hidden // 64, 2)
    model = build_tiny_qwen2(len(tok), TinyModelConfig(hidden_size=hidden, num_hidden_layers=layers,
                                                       num_attention_heads=heads, num_key_value_heads=heads,
                                                       intermediate_size=2 * hidden), tok)
    d = f"{work}/m_{name}"
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d, sum(p.numel() for p in model.parameters())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default=",".join(SIZES))
    p.add_argument("--actors", type=int, default=2)
    p.add_argument("--bucket-mb", type=float, default=16.0)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    import ray

    from bench.common import save
    from bench.rollout import setup
    from cluster.learner_actor import LearnerActor
    from cluster.ray_local import init_local_ray
    from cluster.rollout_actor import RolloutActor
    from cluster.weight_sync import make_sync
    from common.net import free_port
    from trainer.grpo_learner import LearnerConfig

    work = tempfile.mkdtemp(prefix="cr_bench_sync_")
    setup(work, 128, 1)  # SIDs and the tokenizer every size shares (its model is unused)
    init_local_ray(max(2, os.cpu_count() or 2), prefix="cr_bs_")
    rows = []
    try:
        for name in a.sizes.split(","):
            model_dir, n_params = build_model(work, name, f"{work}/m")
            port = free_port()
            learner = LearnerActor.options(num_cpus=0).remote(0, 1, "127.0.0.1", port)
            ray.get(learner.setup.remote(model_dir, f"{work}/sid", LearnerConfig()))
            engines = [RolloutActor.options(num_cpus=0).remote("vllm", model_dir, f"{work}/sid", i)
                       for i in range(a.actors)]
            ray.get([e.ready.remote() for e in engines])
            for transport in ("object_store", "collective"):
                for label, mb in (("whole", 1e6), (f"{a.bucket_mb:g} MB buckets", a.bucket_mb)):
                    sync = make_sync(transport, [learner], engines, mb, 600, zero3=False)
                    sync.sync()  # warm-up (and the collective group's formation)
                    walls, loads = [], []
                    for _ in range(a.repeats):
                        t0 = time.perf_counter()
                        load_s, buckets = sync.sync()
                        walls.append(time.perf_counter() - t0)
                        loads.append(load_s)
                    row = {"model": name, "params": n_params, "mib": n_params * 4 / 2**20, "transport": transport,
                           "buckets": buckets, "bucketing": label, "seconds": float(np.median(walls)),
                           "engine_load_s": float(np.median(loads))}
                    rows.append(row)
                    print(f"{name:>5} {n_params / 1e6:6.1f}M {transport:<13} {label:<16} {buckets:>3} bucket(s) "
                          f"{row['seconds']:7.3f} s  (engines loading {row['engine_load_s']:.3f} s)", flush=True)
            for x in [learner, *engines]:
                ray.kill(x)
    finally:
        ray.shutdown()
    print("wrote", save("weight_sync", {"args": vars(a), "rows": rows}))


if __name__ == "__main__":
    main()
