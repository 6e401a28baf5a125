"""Is part of what GRPO loses noise of its own run? Several GRPO runs from one SFT model, each with another GRPO
seed (its prompt stream), averaged in weight space: θ_soup = mean_i θ_RL,i (a model soup; the runs share their
start, so their weights average without a barrier). Noise of one run's prompt draw shrinks in the average,
what the runs agree on stays; `--alphas` also scales the soup's step from SFT, θ_SFT + α (θ_soup − θ_SFT).

    python -m bench.grpo_soup --runs ROOT/shipped ROOT/shipped_g10 ROOT/shipped_g20 --offsets 0 10 20 \
        --seeds 0 1 2 --data movielens-100k[:PATH] --out docs/results/NAME

Run i's seed S + offset_i holds the GRPO run on SFT model S (RUN_i/seed_{S+offset_i}/sft links to it).
Every model is scored on the test users of the first run's split (a validation run's split, where its config
says so: then the "test" users are carved from training data). Writes NAME.json: per seed and candidate the
mean FHR@K, and per candidate the paired bootstrap CI against the first run alone and against SFT-only.
`mean_of_runs` is no model: each user's FHR@K averaged over the runs, i.e. what one run of the config is
worth with less of its GRPO seed's luck; `run_0` against the other runs is a null comparison (same config).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", required=True, help="run folders of GRPO on the same SFT models")
    p.add_argument("--offsets", type=int, nargs="+", required=True, help="per run: its seed minus the SFT seed")
    p.add_argument("--seeds", type=int, nargs="+", required=True, help="SFT seeds")
    p.add_argument("--data", required=True)
    p.add_argument("--alphas", type=float, nargs="*", default=[1.0])
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--out", required=True, help="output path without extension")
    a = p.parse_args(argv)
    if len(a.runs) != len(a.offsets) or len(a.runs) < 2:
        p.error("--runs and --offsets need the same length, at least 2")
    import numpy as np

    from bench.weight_average import blend
    from cluster.report import load_per_user, seed_average
    from common.atomic import write_json_atomic, write_text_atomic
    from common.stats import paired_diff, turnover
    from evaluation.evaluate import evaluate
    from evaluation.model_method import ModelMethod
    from feedback.loaders import load
    from feedback.split import SplitConfig, make_split

    key = f"FHR@{a.k}"
    runs = [Path(r) for r in a.runs]
    split_cfg = json.loads((runs[0] / "config.json").read_text())["split"]
    split = make_split(load(a.data), SplitConfig(**split_cfg))
    names = ["run_0", "mean_of_runs"] + [f"soup_alpha_{x:g}" for x in a.alphas]
    per: dict = {n: [] for n in names + ["sft_only"]}
    out: dict = {"runs": a.runs, "offsets": a.offsets, "split": split_cfg, "users": len(split.test), "seeds": {}}
    for s in a.seeds:
        dirs = [r / f"seed_{s + o}" for r, o in zip(runs, a.offsets)]
        pus = [load_per_user(d / "per_user.npz") for d in dirs]
        if len({len(u["sft_only"][key]) for u in pus}) != 1 or not all(
                np.array_equal(pus[0]["sft_only"][key], u["sft_only"][key], equal_nan=True) for u in pus):
            raise SystemExit(f"seed {s}: the runs' SFT-only results differ, so they do not share one SFT model "
                             f"({', '.join(map(str, dirs))})")
        per["sft_only"].append(pus[0]["sft_only"][key])
        per["run_0"].append(pus[0]["conrec"][key])
        per["mean_of_runs"].append(np.mean([u["conrec"][key] for u in pus], axis=0))
        sft = (dirs[0] / "sft" / "final").resolve()
        row = {n: float(np.nanmean(per[n][-1])) for n in ("sft_only", "run_0", "mean_of_runs")}
        row["runs"] = [float(np.nanmean(u["conrec"][key])) for u in pus]
        with tempfile.TemporaryDirectory(prefix="soup_") as tmp:
            finals = [d / "final" for d in dirs]
            for x in a.alphas:
                # θ_SFT + α (mean θ_i − θ_SFT) = (1 − α) θ_SFT + Σ (α / n) θ_i
                n_runs = len(finals)
                d = blend([sft, *finals], [1 - x] + [x / n_runs] * n_runs, Path(tmp) / f"a{x:g}")
                r = evaluate(ModelMethod(checkpoint=str(d)), split, k=a.k, batch_size=32, progress=False)
                per[f"soup_alpha_{x:g}"].append(r["per_user"][key])
                row[f"soup_alpha_{x:g}"] = float(np.nanmean(per[f"soup_alpha_{x:g}"][-1]))
        print(f"seed {s}:", json.dumps(row), flush=True)
        out["seeds"][str(s)] = row
    avg = {n: seed_average(v) for n, v in per.items()}
    out["mean"] = {n: float(np.nanmean(v)) for n, v in avg.items()}
    out["paired_vs_run_0"] = {n: paired_diff(avg[n], avg["run_0"]) for n in names if n != "run_0"}
    out["paired_vs_sft_only"] = {n: paired_diff(avg[n], avg["sft_only"]) for n in names}
    # per seed (a user's hit is 0/1 in one model), then averaged: the users each model gains / loses
    # (not for mean_of_runs: its per-user values are fractions, the average of several models' hits)
    out["turnover_vs_sft_only"] = {n: {k: float(np.mean([turnover(b, x)[k] for b, x in zip(per["sft_only"], per[n])]))
                                       for k in ("gained", "lost")} for n in names if n != "mean_of_runs"}
    lines = [f"# GRPO soups: {len(runs)} runs per SFT model, seeds {a.seeds}, {len(split.test)} users, {key}", "",
             f"| candidate | {key} | Δ vs run_0 [95 % CI] | Δ vs SFT-only [95 % CI] | users gained / lost vs SFT-only "
             "|",
             "|---|---|---|---|---|"]

    def fmt(c):
        return f"{c['diff']:+.4f} [{c['lo']:+.4f}, {c['hi']:+.4f}]" if c else "–"

    for n in ["sft_only"] + names:
        c0 = out["paired_vs_run_0"].get(n)
        c1 = out["paired_vs_sft_only"].get(n)
        t = out["turnover_vs_sft_only"].get(n)
        moved = f"{t['gained']:.3f} / {t['lost']:.3f}" if t else "–"
        lines.append(f"| {n} | {out['mean'][n]:.4f} | {fmt(c0)} | {fmt(c1)} | {moved} |")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, Path(a.out + ".json"))
    write_text_atomic("\n".join(lines) + "\n", Path(a.out + ".md"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
