"""Reward throughput: vectorised in-process vs the Ray actor pool vs a per-sample Python loop.

Batches of `--batch` rollouts over `--samples` training examples, each with about `--gts` GTS items
and `--fps` FPS items, on a catalogue of `--items` 3-level SIDs (random codebooks; 5% of outputs are
codes of no item). The per-sample loop is the anchors' reward-manager style: one call per rollout,
parsing the SID and scoring its own sets with numpy.

    python -m bench.reward [--batch 4096 --group 8 --gts 200 --workers 2 --batches 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def setup(n_items: int, n_samples: int, gts: int, fps: int, seed: int = 0):
    from reward.ground_truth import GroundTruth
    from sid.index import SidIndex

    rng = np.random.default_rng(seed)
    cb = rng.normal(size=(3, 256, 32)).astype(np.float32)
    codes = np.unique(rng.integers(0, 256, (int(n_items * 1.2), 3)), axis=0)[:n_items]
    index = SidIndex(np.arange(len(codes)), codes, cb)
    g = [rng.choice(len(codes), rng.integers(gts // 2, gts * 3 // 2 + 1), replace=False) for _ in range(n_samples)]
    f = [rng.choice(len(codes), rng.integers(0, 2 * fps + 1), replace=False) for _ in range(n_samples)]
    gt = GroundTruth.from_lists(g, f, [x[0] for x in g])
    return index, gt


def outputs(index, n: int, rng) -> list[str]:
    from sid.vocab import code_to_str

    out = [index.sid(i) for i in rng.integers(0, len(index.codes), n)]
    for b in rng.choice(n, n // 20, replace=False):
        out[b] = code_to_str(rng.integers(0, 256, 3))  # mostly no item
    return out


def per_sample_loop(index, gt, ids, outs, gamma=0.5) -> np.ndarray:
    unit = index.item_embeddings / np.linalg.norm(index.item_embeddings, axis=1, keepdims=True)

    def compute_score(solution_str, gts, fps):
        item = index.parse(solution_str)
        if item is None:
            return -1.0
        o = unit[item]
        g = float((unit[gts] @ o).max()) if len(gts) else 0.0
        f = float((unit[fps] @ o).max()) if len(fps) else 0.0
        return g - gamma * f

    return np.array([compute_score(s, gt.gts(i), gt.fps(i)) for i, s in zip(ids, outs)], dtype=np.float32)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--samples", type=int, default=4096)
    p.add_argument("--gts", type=int, default=200)
    p.add_argument("--fps", type=int, default=20)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--group", type=int, default=8, help="rollouts per prompt (GRPO's G): they share a sample id")
    a = p.parse_args()
    import ray

    from bench.common import save
    from cluster.ray_local import init_local_ray
    from reward.scorer import RewardConfig, RewardScorer
    from reward.server import RewardServer

    rng = np.random.default_rng(1)
    index, gt = setup(a.items, a.samples, a.gts, a.fps)
    cfg = RewardConfig(num_workers=a.workers)
    scorer = RewardScorer(cfg, gt, index)
    batches = [(np.repeat(rng.integers(0, a.samples, a.batch // a.group), a.group), outputs(index, a.batch, rng))
               for _ in range(a.batches)]

    def timed(fn):
        lat = []
        for ids, outs in batches:
            t0 = time.perf_counter()
            fn(ids, outs)
            lat.append(time.perf_counter() - t0)
        lat = np.array(lat)
        return {"rewards_per_s": a.batch / lat.mean(), "p50_s": float(np.percentile(lat, 50)),
                "p99_s": float(np.percentile(lat, 99)), "mean_s": float(lat.mean())}

    ids, outs = batches[0]
    ref = scorer.score(ids, outs)["score"]
    np.testing.assert_allclose(per_sample_loop(index, gt, ids, outs), ref, rtol=1e-4, atol=1e-5)
    rows = {"vectorised in-process": timed(lambda i, o: scorer.score(i, o))}
    init_local_ray(max(2, a.workers), prefix="cr_rb_")
    try:
        server = RewardServer(cfg, gt, index)
        np.testing.assert_allclose(server.score(ids, outs)["score"], ref, rtol=1e-5, atol=1e-6)
        server.score(ids, outs)  # warm
        rows[f"Ray actor pool ({a.workers} actors)"] = timed(server.score)
    finally:
        ray.shutdown()
    rows["per-sample Python loop"] = timed(lambda i, o: per_sample_loop(index, gt, i, o))
    base = rows["per-sample Python loop"]["rewards_per_s"]
    print(f"batch {a.batch} ({a.batch // a.group} prompts x G={a.group}), ~{a.gts} GTS / ~{a.fps} FPS items per "
          f"sample, {len(index.codes):,} items, {a.batches} batches")
    print(f"{'path':<28} {'rewards/s':>11} {'vs loop':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for k, r in rows.items():
        r["vs_loop"] = r["rewards_per_s"] / base
        print(f"{k:<28} {r['rewards_per_s']:>11,.0f} {r['vs_loop']:>7.1f}x {1e3 * r['p50_s']:>8.1f} "
              f"{1e3 * r['p99_s']:>8.1f}")
    print("wrote", save(f"reward_g{a.group}", {"args": vars(a), "rows": rows}))


if __name__ == "__main__":
    main()
