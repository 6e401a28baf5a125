"""GRPO update step: seconds and peak memory of the learner group for ZeRO-1/2/3, 1 vs 2 ranks.

The real learner actors of a run (`cluster.learner_actor`, DeepSpeed over gloo here, NCCL on GPUs)
update on one fixed GRPO batch: `--prompts` user-context prompts × G = `--n` SID completions drawn
from the catalogue, random rewards, reference-model KL on. A figure is the driver's wall time of one
`update` across all ranks (reference log-probs, policy forward/backward, optimizer step), median of
`--steps` after one warm-up; peak RSS is the largest rank's.

    python -m bench.grpo_update [--prompts 32 --n 8 --hidden 256 --layers 4 --stages 1 2 3 --ranks 1 2 --pack both]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def make_batch(work: str, index, prompts: list[str], n: int, seed: int = 0):
    from transformers import AutoTokenizer

    from sid.tokens import SidTokenMap
    from trainer.batch import StepBatch

    tok = AutoTokenizer.from_pretrained(f"{work}/m")
    tmap = SidTokenMap(tok, index.level_sizes)
    rng = np.random.default_rng(seed)
    items = rng.integers(0, len(index.codes), len(prompts) * n)
    comps = [[int(tmap.ids[lvl][v]) for lvl, v in enumerate(index.codes[i])] + [tok.eos_token_id] for i in items]
    return StepBatch(np.arange(len(prompts)), [tok(p, add_special_tokens=False)["input_ids"] for p in prompts], comps,
                     None, n, 1.0, rewards=rng.normal(size=len(comps)).astype(np.float32))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--micro-batch", type=int, default=64)
    p.add_argument("--stages", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--pack", choices=["on", "off", "both"], default="on",
                   help="shared-prompt packing of each group (LearnerConfig.pack_groups)")
    a = p.parse_args()
    import ray

    from bench.common import peak_rss_mib, save
    from bench.rollout import setup
    from cluster.learner_actor import LearnerActor
    from cluster.ray_local import init_local_ray
    from common.net import free_port
    from trainer.grpo_learner import LearnerConfig

    work = tempfile.mkdtemp(prefix="cr_bench_grpo_")
    index, prompts = setup(work, a.hidden, a.layers)
    batch = make_batch(work, index, prompts[: a.prompts], a.n)
    n_params = None
    init_local_ray(max(2, os.cpu_count() or 2), prefix="cr_bg_")
    rows = []
    try:
        for world, stage, pack in [(w, z, k) for w in a.ranks for z in a.stages
                                   for k in ({"on": [True], "off": [False], "both": [False, True]}[a.pack])]:
            port = free_port()
            learners = [LearnerActor.options(num_cpus=0).remote(r, world, "127.0.0.1", port) for r in range(world)]
            cfg = LearnerConfig(zero_stage=stage, micro_batch=a.micro_batch, pack_groups=pack)
            ray.get([x.setup.remote(f"{work}/m", f"{work}/sid", cfg) for x in learners])
            n_params = n_params or ray.get(learners[0].__ray_call__.remote(
                lambda self: sum(q.numel() for q in self.learner.ref.parameters())))
            shards = np.array_split(np.arange(a.prompts), world)  # whole groups per rank, as the driver does
            parts = []
            for s in shards:
                rows_ = np.concatenate([np.arange(i * a.n, (i + 1) * a.n) for i in s])
                parts.append(type(batch)([batch.prompts[r] for r in rows_], [batch.completions[r] for r in rows_],
                                         batch.rewards[rows_], [batch.group_ids[r] for r in rows_], None, 1.0))
            times = []
            for step in range(a.steps + 1):
                t0 = time.perf_counter()
                ray.get([x.update.remote(b, 0.04) for x, b in zip(learners, parts)])
                if step:  # the first is a warm-up
                    times.append(time.perf_counter() - t0)
            peak = max(ray.get([x.__ray_call__.remote(lambda self: peak_rss_mib()) for x in learners]))
            row = {"zero_stage": stage, "ranks": world, "pack_groups": pack, "params_m": n_params / 1e6,
                   "samples": len(batch.prompts), "update_s": float(np.median(times)), "peak_rss_mib_max_rank": peak}
            rows.append(row)
            print(f"ZeRO-{stage} x{world} rank(s), packing {'on' if pack else 'off'}: {row['update_s']:.3f} s / update "
                  f"of {row['samples']} samples, peak RSS {peak:,.0f} MiB (largest rank)", flush=True)
            for x in learners:
                ray.kill(x)
    finally:
        ray.shutdown()
    print("wrote", save("grpo_update", {"args": vars(a), "rows": rows}))


if __name__ == "__main__":
    main()
