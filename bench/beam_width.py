"""Does a wider serving beam change the figures? The top-K list comes from a trie-constrained beam of
K + `extra_beams` codes (`ModelMethod.extra_beams`, 20 by default); a beam search keeps only the best prefixes
at each level, so an item whose first code scores low can be missed. This re-ranks the same models with wider
beams on the curriculum's validation users (never the test split):

    python -m bench.beam_width --model NAME=ROOT [--model NAME=ROOT ...] --data SPEC \
        [--extra-beams 20 80] [--seeds 0 1 2] [--out docs/results/NAME]

ROOT holds seed_S/{config.json, final/} (a `conrec run` folder of one seed each, or links to one). For each
model and width: FHR@K per seed, the seed-averaged figure, the paired difference against the first width with
its 95 % bootstrap CI, and the evaluation's seconds. Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, help="NAME=ROOT (ROOT/seed_S/{config.json,final})")
    p.add_argument("--data", required=True)
    p.add_argument("--extra-beams", nargs="+", type=int, default=[20, 80])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--out", default="runs/beam_width")
    a = p.parse_args(argv)
    from bench.common import write_table
    from bench.validation_table import run_validation_split, validation_fhr
    from cluster.report import seed_average
    from common.logs import quiet_third_party
    from common.stats import paired_diff, verdict
    from feedback.loaders import load

    quiet_third_party()
    models = dict(m.split("=", 1) for m in a.model)
    missing = [f"{r}/seed_{s}/final" for r in models.values() for s in a.seeds
               if not (Path(r) / f"seed_{s}" / "final").is_dir()]
    if missing:
        raise SystemExit(f"beam_width: no model at {missing}; pass roots holding seed_S/final for --seeds {a.seeds}")
    data = load(a.data)
    out = {"k": a.k, "seeds": a.seeds, "extra_beams": a.extra_beams, "models": {}}
    first = a.k + a.extra_beams[0]
    lines = [f"| model | beam (K + extra) | validation FHR@{a.k} (per seed) | mean | Δ vs beam {first} [95 % CI] | "
             "eval s / seed (median) |", "|---|---|---|---|---|---|"]
    for name, root in models.items():
        runs = [Path(root) / f"seed_{s}" for s in a.seeds]
        vals = [run_validation_split(r, data) for r in runs]  # one split per seed, shared by the widths
        per_width = {}
        for eb in a.extra_beams:
            timed = []
            for r, val in zip(runs, vals):
                t0 = time.perf_counter()
                timed.append((validation_fhr(r, val, a.k, eb), time.perf_counter() - t0))
            pu = seed_average([t[0] for t in timed])
            per_width[eb] = pu
            d = paired_diff(pu, per_width[a.extra_beams[0]])
            row = {"per_seed": [float(np.nanmean(t[0])) for t in timed], "mean": float(np.nanmean(pu)),
                   "vs_first": d, "seconds": [round(t[1], 1) for t in timed]}
            out["models"].setdefault(name, {})[str(eb)] = row
            delta = "–" if eb == a.extra_beams[0] else \
                f"{d['diff']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}] ({verdict(d)})"
            lines.append(f"| {name} | {a.k + eb} | {' / '.join(f'{v:.3f}' for v in row['per_seed'])} | "
                         f"{row['mean']:.4f} | {delta} | {np.median(row['seconds']):.1f} |")
            print(lines[-1], flush=True)
    print(f"wrote {write_table(out, lines, a.out)} and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
