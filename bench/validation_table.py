"""The shipping rule's ruler: each variant's final models on the curriculum's validation users, paired
against one variant, with a bootstrap CI. The quality table shows each run's validation figure, but two
variants' means differ by noise of ±0.02-0.03 on 200 users; a config changes only for a gain outside it.

    python -m bench.validation_table --root runs/quality_ho --data movielens-100k[:PATH] --against shipped \
        [--variants shipped_nll ...] [--seeds 0 1 2] [--out docs/results/NAME]

Reads ROOT/<variant>/seed_S/{config.json, final/}; evaluates each final model on the validation users that
run carved from its training data (never the test split), caching per-user values in
ROOT/<variant>/seed_S/validation_per_user.npz; writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def run_validation_split(run: Path, data):
    """The validation users a run carved from its training data (`data`: the loaded FeedbackData)."""
    from feedback.split import SplitConfig, make_split, validation_users

    cfg = json.loads((run / "config.json").read_text())
    split = make_split(data, SplitConfig(**cfg["split"]))
    return validation_users(split, cfg["grpo"]["val_users"], cfg["split"]["seed"])


def validation_fhr(run: Path, val, k: int, extra_beams: int = 20) -> np.ndarray:
    """FHR@K per validation user of RUN/final on `val` (run_validation_split), served with K + extra_beams beams."""
    from evaluation.evaluate import evaluate
    from evaluation.model_method import ModelMethod

    return evaluate(ModelMethod(checkpoint=str(run / "final"), extra_beams=extra_beams), val, k=k, batch_size=32,
                    progress=False)["per_user"][f"FHR@{k}"]


def validation_per_user(run: Path, data: str, k: int) -> np.ndarray:
    """FHR@K per validation user of the run's final model (cached beside the run)."""
    cache = run / "validation_per_user.npz"
    if cache.exists():
        return np.load(cache)[f"FHR@{k}"]
    from common.atomic import write_npz_atomic
    from feedback.loaders import load

    pu = validation_fhr(run, run_validation_split(run, load(data)), k)
    write_npz_atomic({f"FHR@{k}": pu}, cache)
    return pu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--against", default="shipped")
    p.add_argument("--variants", nargs="*", default=None)
    p.add_argument("--seeds", nargs="*", type=int, default=None)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--out", default=None, help="OUT.json and OUT.md (default: ROOT/validation_table)")
    a = p.parse_args(argv)
    from bench.common import write_table
    from cluster.report import seed_average
    from common.logs import quiet_third_party
    from common.stats import paired_diff

    quiet_third_party()  # one table row per variant, not a weights bar per model

    root = Path(a.root)
    names = a.variants or sorted(d.name for d in root.iterdir() if d.is_dir() and d.name != "base")
    names = [a.against] + [v for v in names if v != a.against]

    def runs(v):
        return [r for r in sorted((root / v).glob("seed_*"))
                if (r / "final").is_dir() and (a.seeds is None or int(r.name.split("_")[1]) in a.seeds)]

    ref_runs = runs(a.against)
    if not ref_runs:
        raise SystemExit(f"validation_table: {root / a.against} has no finished seed")
    ref_seeds = [r.name for r in ref_runs]
    ref = seed_average([validation_per_user(r, a.data, a.k) for r in ref_runs])
    out, lines = {}, [f"| variant | seeds | validation FHR@{a.k} | Δ vs {a.against} [95 % CI] |", "|---|---|---|---|"]
    for v in names:
        rs = [r for r in runs(v) if r.name in ref_seeds]  # the same seeds as the reference, paired
        if len(rs) != len(ref_runs):
            print(f"skip {v}: seeds {[r.name for r in rs]} of {ref_seeds}", flush=True)
            continue
        pu = seed_average([validation_per_user(r, a.data, a.k) for r in rs])
        d = paired_diff(pu, ref)
        out[v] = {"seeds": len(rs), "validation": float(np.nanmean(pu)), "vs_against": d}
        verdict = "tie" if d["lo"] <= 0 <= d["hi"] else ("better" if d["lo"] > 0 else "worse")
        row = "–" if v == a.against else f"{d['diff']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}] ({verdict})"
        lines.append(f"| {v} | {len(rs)} | {np.nanmean(pu):.4f} | {row} |")
        print(lines[-1], flush=True)
    res = {"against": a.against, "k": a.k, "n_users": int(len(ref)), "variants": out}
    print(f"wrote {write_table(res, lines, a.out or root / 'validation_table')} and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
