"""Two `conrec run --seeds N` folders on the same split, paired: each model of run A against the same model of run B
(e.g. SFT-only with an SFT change against SFT-only without it), and within each run CoNRec against SFT-only (and,
with --against, each model against those baselines where the run's report has them).

    python -m bench.pair_runs --a runs/new --b runs/old [--label-a new --label-b old] [--against category_knn pop]
        [--out docs/results/NAME]

Per-user values are averaged over the seeds both runs finished (seed S of A paired with seed S of B), then the
paired bootstrap CI over users (common/stats.py). Writes OUT.json and OUT.md when --out is given; prints the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cluster.report import load_per_user, seed_average
from common.atomic import write_json_atomic, write_text_atomic
from common.stats import paired_diff, verdict
from evaluation.compare import compare_methods

KEYS = ["HR@20", "FHR@20", "LUF@20", "LIF@20", "CandAcc"]
MODELS = ["sft_only", "conrec"]


def seeds_of(run: Path) -> list[int]:
    return sorted(int(d.name[5:]) for d in run.glob("seed_*") if (d / "per_user.npz").exists())


def load(run: Path, seeds: list[int]) -> dict:
    """{method: {metric: seed-averaged per-user values}} over `seeds`."""
    pus = [load_per_user(run / f"seed_{s}" / "per_user.npz") for s in seeds]
    return {m: {k: seed_average([p[m][k] for p in pus]) for k in KEYS if k in pus[0][m]}
            for m in pus[0] if all(m in p for p in pus)}


def _cell(c: dict) -> str:
    return f"{c['diff']:+.4f} [{c['lo']:+.4f}, {c['hi']:+.4f}], {verdict(c)}"


def pair(a: Path, b: Path, la: str, lb: str, against: tuple = ()) -> tuple[dict, str]:
    seeds = sorted(set(seeds_of(a)) & set(seeds_of(b)))
    if not seeds:
        raise SystemExit(f"{a} and {b} share no finished seed (RUN/seed_S/per_user.npz)")
    pa, pb = load(a, seeds), load(b, seeds)
    rows, out = [], {"a": str(a), "b": str(b), "seeds": seeds, "pairs": {}}
    head = "| comparison | " + " | ".join(KEYS) + " |"
    rows += [head, "|---" * (len(KEYS) + 1) + "|"]
    comps = [(f"{la} {m} − {lb} {m}", pa[m], pb[m]) for m in MODELS if m in pa and m in pb]
    for name, x, y in comps:
        out["pairs"][name] = {k: paired_diff(x[k], y[k]) for k in KEYS if k in x and k in y}
    for lbl, p in ((la, pa), (lb, pb)):  # within a run: its models against SFT-only and the baselines asked for
        for base, by_method in compare_methods(p, ["sft_only", *against], KEYS).items():
            for m in MODELS:
                if m in by_method:
                    out["pairs"][f"{lbl} {m} − {lbl} {base}"] = by_method[m]
    rows += [f"| {name} | " + " | ".join(_cell(cs[k]) if k in cs else "" for k in KEYS) + " |"
             for name, cs in out["pairs"].items()]
    means = [f"| {lbl} {m} (mean of seeds' users) | " + " | ".join(f"{np.nanmean(p[m][k]):.4f}" for k in KEYS) + " |"
             for lbl, p in ((la, pa), (lb, pb)) for m in MODELS if m in p]
    out["means"] = {f"{lbl} {m}": {k: float(np.nanmean(p[m][k])) for k in KEYS}
                    for lbl, p in ((la, pa), (lb, pb)) for m in MODELS if m in p}
    text = (f"Seeds {seeds}; paired bootstrap 95 % CIs over users of seed-averaged values.\n\n"
            + "\n".join(rows) + "\n\n" + "\n".join([head.replace("comparison", "model"), rows[1], *means]) + "\n")
    return out, text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", required=True)
    p.add_argument("--b", required=True)
    p.add_argument("--label-a", default="A")
    p.add_argument("--label-b", default="B")
    p.add_argument("--against", nargs="*", default=[], help="baselines in the runs' reports (e.g. category_knn pop)")
    p.add_argument("--out", default="")
    a = p.parse_args(argv)
    out, text = pair(Path(a.a), Path(a.b), a.label_a, a.label_b, tuple(a.against))
    print(text)
    if a.out:
        write_json_atomic(out, Path(a.out + ".json"))
        write_text_atomic(text, Path(a.out + ".md"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
