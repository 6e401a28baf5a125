"""Can 20 slots hold both the SFT model's hits and Swing's? Fusions of the two top-K lists, on validation users.

    python -m bench.list_fusion --root runs/gpu/mlc_base --data movielens-100k[:PATH] [--seeds 0 1 2] \
        [--out docs/results/list_fusion_ml100k_val]

The union of the SFT model's and Swing's top 20 hits far more users than either list (a 40-slot ceiling). GRPO
with Swing neighbours in its reward can only trade inside 20 slots; this asks how good the simple 20-slot
trades are: the SFT list's first m items then Swing's (m = 10 … 18), and reciprocal-rank fusion with Swing at a
weight w. Reads ROOT/seed_S/{config.json, sft/final, final}; evaluates on the validation users the run carved
from its training data (never the test split); caches each seed's lists in ROOT/seed_S/validation_lists.npz;
writes OUT.json and OUT.md (paired bootstrap CIs on seed-averaged users against SFT-only).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

K, DEPTH = 20, 40  # the protocol's K; each source list is read this deep


def fill(a: np.ndarray, b: np.ndarray, m: int, k: int = K) -> np.ndarray:
    """Per row: the first m items of `a`, then `b`'s items in order, skipping repeats, up to k (-1 pads)."""
    out = np.full((len(a), k), -1, dtype=np.int64)
    for r in range(len(a)):
        seen: list[int] = [int(x) for x in a[r, :m] if x >= 0]
        for x in b[r]:
            if len(seen) >= k:
                break
            if x >= 0 and x not in seen:
                seen.append(int(x))
        out[r, :len(seen)] = seen
    return out


def rrf(a: np.ndarray, b: np.ndarray, w: float, c: float = 10.0, k: int = K) -> np.ndarray:
    """Reciprocal-rank fusion: item score 1/(c + rank in a) + w/(c + rank in b), 0-based ranks; ties keep a's order."""
    out = np.full((len(a), k), -1, dtype=np.int64)
    for r in range(len(a)):
        score: dict[int, float] = {}
        for weight, lst in ((1.0, a[r]), (w, b[r])):
            for rank, x in enumerate(lst):
                if x >= 0:
                    score[int(x)] = score.get(int(x), 0.0) + weight / (c + rank)
        top = sorted(score, key=lambda x: -score[x])[:k]  # sorted is stable: a's items were inserted first
        out[r, :len(top)] = top
    return out


def seed_lists(run: Path, data: str) -> tuple[dict, list]:
    """Top-DEPTH lists of SFT-only, the run's final model and Swing on the run's validation users (cached)."""
    cache = run / "validation_lists.npz"
    if cache.exists():
        z = np.load(cache, allow_pickle=True)
        return {n: z[n] for n in ("sft", "rl", "swing")}, list(z["future"])
    from common.atomic import write_npz_atomic
    from evaluation.methods import get_method
    from evaluation.model_method import ModelMethod
    from feedback.loaders import load
    from feedback.split import SplitConfig, make_split, validation_users

    cfg = json.loads((run / "config.json").read_text())
    split = make_split(load(data), SplitConfig(**cfg["split"]))
    val = validation_users(split, cfg["grpo"]["val_users"], cfg["split"]["seed"])
    rows = np.arange(len(val.test))
    lists = {}
    for name, m in (("sft", ModelMethod(checkpoint=str(run / "sft" / "final"), batch_size=32)),
                    ("rl", ModelMethod(checkpoint=str(run / "final"), batch_size=32)), ("swing", get_method("swing"))):
        m.fit(val)
        lists[name] = m.recommend(rows, DEPTH)
    future = list(val.test["future_neg"])
    write_npz_atomic({**lists, "future": np.array(future + [None], dtype=object)[:-1]}, cache)
    return lists, future


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True, help="a conrec run with seeds: ROOT/seed_S/{sft/final, final}")
    p.add_argument("--data", required=True)
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    p.add_argument("--out", default=None, help="OUT.json and OUT.md (default: ROOT/list_fusion)")
    a = p.parse_args(argv)
    from bench.common import write_table
    from cluster.report import seed_average
    from common.logs import quiet_third_party
    from common.stats import paired_diff, verdict
    from evaluation.metrics import any_hit

    quiet_third_party()
    variants = {"SFT-only": lambda L: L["sft"][:, :K], "Swing": lambda L: L["swing"][:, :K],
                "GRPO (the run's final model)": lambda L: L["rl"][:, :K],
                **{f"SFT's first {m}, then Swing's": (lambda L, m=m: fill(L["sft"], L["swing"], m))
                   for m in (18, 16, 14, 12, 10)},
                **{f"RRF, Swing at weight {w}": (lambda L, w=w: rrf(L["sft"], L["swing"], w))
                   for w in (0.25, 0.5, 1.0)},
                "GRPO's first 16, then Swing's": lambda L: fill(L["rl"], L["swing"], 16)}
    hits: dict[str, list] = {v: [] for v in variants}
    union = []
    for s in a.seeds:
        lists, future = seed_lists(Path(a.root) / f"seed_{s}", a.data)
        for v, f in variants.items():
            hits[v].append(any_hit(f(lists), future).astype(np.float64))
        union.append(any_hit(np.c_[lists["sft"][:, :K], lists["swing"][:, :K]], future).astype(np.float64))
    ref = seed_average(hits["SFT-only"])
    out = {"seeds": a.seeds, "n_users": int(len(ref)), "k": K, "variants": {}}
    lines = [f"| list (validation users, {len(a.seeds)} seeds) | FHR@{K} | Δ vs SFT-only [95 % CI] |", "|---|---|---|"]
    for v in variants:
        per_seed = [float(h.mean()) for h in hits[v]]
        d = paired_diff(seed_average(hits[v]), ref)
        out["variants"][v] = {"per_seed": per_seed, "vs_sft_only": d}
        cell = "–" if v == "SFT-only" else f"{d['diff']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}] ({verdict(d)})"
        lines.append(f"| {v} | {np.mean(per_seed):.4f} ± {np.std(per_seed):.4f} | {cell} |")
    u = [float(x.mean()) for x in union]
    out["union_40"] = u
    lines.append(f"| (ceiling: either top {K}, {2 * K} slots) | {np.mean(u):.4f} ± {np.std(u):.4f} | |")
    write_table(out, lines, a.out or Path(a.root) / "list_fusion")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
