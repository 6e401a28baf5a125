"""Rollout throughput: vLLM vs the HF engine on the same work, the trie constraint's overhead, and
1 vs 2 rollout actors on Ray.

A config-initialised Qwen2 (`--hidden`, `--layers`) over a synthetic catalogue's SIDs; `--prompts`
prompts of user context, G = `--n` samples each, exactly `levels + 1` new tokens per sample
(ignore_eos), temperature 1. Generated tokens/s = prompts × G × new tokens / wall seconds.

The ratios are measured in one run, round by round: after a warm-up of each, every round times vLLM with the
trie, vLLM without it and HF with it, one after another in an order that rotates with the round, and takes the
round's ratios. The figures are medians over `--rounds` rounds with [min, max]: a slow stretch of this noisy
machine then lands on all three engines of one round instead of on one engine's whole measurement.

    python -m bench.rollout [--prompts 64 --n 8 --hidden 256 --layers 4 --rounds 7]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def setup(work: str, hidden: int, layers: int, seed: int = 0):
    from feedback.loaders import load
    from feedback.split import make_split, training_examples
    from sid.build import SidConfig, build_sids
    from sid.encode import EncoderConfig
    from sid.rqvae import RQVAEConfig
    from trainer.models import TinyModelConfig, build_tiny_qwen2, build_tokenizer
    from trainer.prompts import TEMPLATE_WORDS, ContextConfig, build_context

    data = load("synthetic:users=300,items=3000,days=30,seed=0")
    index, _ = build_sids(data.items, data.category_columns, SidConfig(
        encoder=EncoderConfig(text_encoder="hashing", progress=False),
        rqvae=RQVAEConfig(epochs=20, progress=False)), f"{work}/sid")
    tok = build_tokenizer([" ".join(TEMPLATE_WORDS)] * 20 + list(data.items.title), index.tokens(), vocab_size=4096)
    heads = max(hidden // 64, 2)
    model = build_tiny_qwen2(len(tok), TinyModelConfig(hidden_size=hidden, num_hidden_layers=layers,
                                                       num_attention_heads=heads, num_key_value_heads=heads,
                                                       intermediate_size=2 * hidden, seed=seed), tok)
    model.save_pretrained(f"{work}/m")
    tok.save_pretrained(f"{work}/m")
    ex = training_examples(make_split(data))
    ctx = ContextConfig(mode="neg_pos", max_items=20)
    prompts = [build_context(r.ctx_items, r.ctx_fb, r.ctx_ts, r.t_cut, index.sid, ctx) for r in ex.itertuples()]
    return index, prompts


def time_once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def spread(xs) -> dict:
    """Median and range of a list of figures."""
    xs = np.asarray(xs, dtype=float)
    return {"median": float(np.median(xs)), "min": float(xs.min()), "max": float(xs.max()), "n": int(len(xs))}


def interleaved(fns: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds per round of each callable, after one warm-up call each; round r starts at the (r mod k)-th
    callable, so no engine always runs first (or right after the same other one)."""
    names = list(fns)
    for f in fns.values():
        f()
    out = {k: [] for k in names}
    for r in range(rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            out[k].append(time_once(fns[k]))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--rounds", type=int, default=7)
    a = p.parse_args()
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from bench.common import save
    from rollout.engine import SamplingConfig

    work = tempfile.mkdtemp(prefix="cr_bench_rollout_")
    index, all_prompts = setup(work, a.hidden, a.layers)
    prompts = all_prompts[: a.prompts]
    new_tokens = index.levels + 1
    work_tokens = len(prompts) * a.n * new_tokens
    rows = {}

    import vllm

    from rollout.hf_engine import HFEngine
    from rollout.vllm_engine import VllmEngine

    eng = VllmEngine(f"{work}/m", f"{work}/sid", seed=0)
    hf = HFEngine(f"{work}/m", f"{work}/sid")
    cfg = SamplingConfig(n=a.n, temperature=1.0, max_tokens=new_tokens)

    def vllm_run(constrained: bool):
        extra = {"extra_args": {"sid_dir": f"{work}/sid"}} if constrained else {}
        sp = vllm.SamplingParams(n=a.n, temperature=1.0, max_tokens=new_tokens, min_tokens=new_tokens,
                                 ignore_eos=True, **extra)
        return lambda: eng.llm.generate(prompts, sp, use_tqdm=False)

    rounds = interleaved({"vLLM, trie-constrained": vllm_run(True), "vLLM, unconstrained": vllm_run(False),
                          "HF generate, trie-constrained": lambda: hf.generate(prompts, cfg)}, a.rounds)
    rows.update(rounds)
    c, u, h = (np.array(rounds[k]) for k in rounds)
    ratios = {"constraint_overhead": spread(c / u - 1), "vllm_over_hf": spread(h / c)}
    eng = hf = None  # free both before the actors' engines are built

    import ray

    from cluster.ray_local import init_local_ray
    from cluster.rollout_actor import RolloutActor

    init_local_ray(2, prefix="cr_rr_")
    try:
        for n_act in (1, 2):
            actors = [RolloutActor.options(num_cpus=0.5).remote("vllm", f"{work}/m", f"{work}/sid", i)
                      for i in range(n_act)]
            ray.get([x.ready.remote() for x in actors])
            shards = np.array_split(np.arange(len(prompts)), n_act)

            def go():
                ray.get([x.generate.remote([prompts[i] for i in s], cfg) for x, s in zip(actors, shards)])

            rows[f"Ray, {n_act} vLLM rollout actor(s)"] = interleaved({"go": go}, a.rounds)["go"]
            for x in actors:
                ray.kill(x)
    finally:
        ray.shutdown()

    print(f"{len(prompts)} prompts x G={a.n} x {new_tokens} new tokens ({work_tokens:,} tokens); model hidden "
          f"{a.hidden}, {a.layers} layers; median [min, max] of {a.rounds} rounds")
    print(f"{'engine':<34} {'seconds':>24} {'gen tokens/s':>13}")
    seconds = {k: spread(v) for k, v in rows.items()}
    for k, t in seconds.items():
        print(f"{k:<34} {t['median']:>8.3f} [{t['min']:.3f}, {t['max']:.3f}] {work_tokens / t['median']:>13,.0f}")
    o, v = ratios["constraint_overhead"], ratios["vllm_over_hf"]
    print(f"constraint overhead on vLLM: {100 * o['median']:+.1f} % [{100 * o['min']:+.1f}, {100 * o['max']:+.1f}]; "
          f"vLLM vs HF on the same work: {v['median']:.2f}x [{v['min']:.2f}, {v['max']:.2f}] (per-round ratios)")
    print("wrote", save("rollout", {"args": vars(a), "seconds": seconds, "seconds_per_round": rows,
                                    "tokens": work_tokens, **ratios}))


if __name__ == "__main__":
    main()
