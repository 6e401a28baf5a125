"""How much room does the simulator leave above popularity? A scorer that knows the simulator's structure (a
user's dislikes are whole categories; a few low-quality items are disliked by anyone) ranks items by
`pop + w · share of the user's context negatives in the item's category`, w on a grid. Its best FHR@20 over
the grid, on the validation users (the training events cut again; the test split is never read), is an
optimistic bound on what a model of the same inputs can gain over `pop` there: it is tuned on the very users it
is scored on.

    python -m bench.simulator_headroom [--spec SPEC ...] [--out docs/results/simulator_headroom]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from evaluation.methods import ScoreMethod

SPECS = ["synthetic:users=400,items=500,days=40,seed=0", "synthetic:users=1500,items=10000,days=60,seed=0"]
WEIGHTS = [0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 1.0, 10.0]


class CategoryPop(ScoreMethod):
    """pop (normalised to max 1) + w · the share of the user's context negatives in the item's category."""

    def __init__(self, category: np.ndarray, w: float):
        self.cat, self.w, self.name = category, w, f"catpop_w{w:g}"

    def fit(self, split) -> None:
        self.split = split
        c = split.train_negative_counts().astype(np.float64)
        self.pop = c / max(c.max(), 1.0)

    def scores(self, rows):
        n_cat = int(self.cat.max()) + 1
        out = np.empty((len(rows), len(self.pop)))
        for b, r in enumerate(rows):
            neg = self.split.test["context_neg"].iat[r]
            share = np.bincount(self.cat[neg], minlength=n_cat) / max(len(neg), 1)
            out[b] = self.pop + self.w * share[self.cat]
        return out


def main(argv=None) -> None:
    from bench.common import machine
    from common.atomic import write_json_atomic, write_text_atomic
    from common.stats import paired_diff
    from evaluation.evaluate import evaluate
    from evaluation.methods import get_method
    from feedback.loaders import load
    from feedback.split import SplitConfig, make_split

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", action="append", default=None)
    ap.add_argument("--out", default="bench/results/simulator_headroom")
    a = ap.parse_args(argv)
    rows = []
    for spec in a.spec or SPECS:
        data = load(spec)
        split = make_split(data, SplitConfig(validation_run=True))
        cat = data.items["category"].astype("category").cat.codes.to_numpy()
        res = {m: evaluate(get_method(m), split, progress=False) for m in ("pop", "swing")}
        grid = {w: evaluate(CategoryPop(cat, w), split, progress=False) for w in WEIGHTS}
        best_w = max(grid, key=lambda w: grid[w]["metrics"]["FHR@20"])
        best = grid[best_w]
        row = {"spec": spec, "n_items": data.n_items, "n_users": int(len(split.test)),
               "pop": res["pop"]["metrics"]["FHR@20"], "swing": res["swing"]["metrics"]["FHR@20"],
               "grid": {str(w): g["metrics"]["FHR@20"] for w, g in grid.items()}, "best_w": best_w,
               "best": best["metrics"]["FHR@20"],
               "best_vs_pop": paired_diff(best["per_user"]["FHR@20"], res["pop"]["per_user"]["FHR@20"])}
        rows.append(row)
        c = row["best_vs_pop"]
        print(f"{spec}: {row['n_users']} users; pop {row['pop']:.4f} swing {row['swing']:.4f} category-aware best "
              f"(w={best_w:g}) {row['best']:.4f}, vs pop {c['diff']:+.4f} [{c['lo']:+.4f}, {c['hi']:+.4f}]", flush=True)
    out = Path(a.out)
    write_json_atomic({"bench": "simulator_headroom", "machine": machine(), "rows": rows}, out.with_suffix(".json"))
    lines = ["| data | items | validation users | pop | Swing | category-aware, best w | its FHR@20 | "
             "Δ vs pop [95 % CI] |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        c = r["best_vs_pop"]
        lines.append(f"| `{r['spec']}` | {r['n_items']} | {r['n_users']} | {r['pop']:.4f} | {r['swing']:.4f} | "
                     f"{r['best_w']:g} | {r['best']:.4f} | {c['diff']:+.4f} [{c['lo']:+.4f}, {c['hi']:+.4f}] |")
    write_text_atomic("\n".join(lines) + "\n", out.with_suffix(".md"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
