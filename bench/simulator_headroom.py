"""How much room does the simulator leave above popularity? A scorer that knows the simulator's structure (a
user's dislikes are whole categories; a few low-quality items are disliked by anyone; after a negative the
simulated recommender hides that category from the user for `filter_days` = 3 days) ranks items by
`pop + w · share of the user's context negatives in the item's category`, the share of a category with a
negative in the last 3 days before the cutoff multiplied by `b` (b = 0: such categories are not boosted,
they are hidden for part of the window). Its best FHR@20 over the (w, b) grid, on the validation users (the
training events cut again; the test split is never read), is an optimistic figure for what a model of the
same inputs can gain over `pop`: it is tuned on the very users it is scored on.

    python -m bench.simulator_headroom [--spec SPEC ...] [--out docs/results/simulator_headroom]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from evaluation.methods import ScoreMethod

SPECS = ["synthetic:users=400,items=500,days=40,seed=0", "synthetic:users=1500,items=10000,days=60,seed=0"]
WEIGHTS = [0.0, 0.05, 0.1, 0.3, 1.0, 3.0]
RECENT_FACTORS = [1.0, 0.5, 0.0]
DAY = 86_400


class CategoryPop(ScoreMethod):
    """pop (normalised to max 1) + w · the share of the user's context negatives in the item's category, that
    share times `b` for a category with a negative in the last `recent_days` before the cutoff."""

    def __init__(self, category: np.ndarray, w: float, b: float = 1.0, recent_days: float = 3.0):
        self.cat, self.w, self.b, self.recent = category, w, b, recent_days
        self.name = f"catpop_w{w:g}_b{b:g}"

    def fit(self, split) -> None:
        self.split = split
        c = split.train_negative_counts().astype(np.float64)
        self.pop = c / max(c.max(), 1.0)

    def scores(self, rows):
        n_cat = int(self.cat.max()) + 1
        out = np.empty((len(rows), len(self.pop)))
        t = self.split.test
        for row, r in enumerate(rows):
            neg = t["context_neg"].iat[r]
            share = np.bincount(self.cat[neg], minlength=n_cat) / max(len(neg), 1)
            items, fb, ts = t["context_items"].iat[r], t["context_fb"].iat[r], t["context_ts"].iat[r]
            recent = items[(fb == -1) & (ts >= int(t["t_cut"].iat[r]) - self.recent * DAY)]
            factor = np.ones(n_cat)
            factor[self.cat[recent]] = self.b
            out[row] = self.pop + self.w * (share * factor)[self.cat]
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
        grid = {(w, b): evaluate(CategoryPop(cat, w, b), split, progress=False)
                for w in WEIGHTS for b in RECENT_FACTORS}
        best_w = max(grid, key=lambda wb: grid[wb]["metrics"]["FHR@20"])
        best = grid[best_w]
        no_time = max((wb for wb in grid if wb[1] == 1.0), key=lambda wb: grid[wb]["metrics"]["FHR@20"])
        row = {"spec": spec, "n_items": data.n_items, "n_users": int(len(split.test)),
               "pop": res["pop"]["metrics"]["FHR@20"], "swing": res["swing"]["metrics"]["FHR@20"],
               "grid": {f"w={w:g},b={b:g}": g["metrics"]["FHR@20"] for (w, b), g in grid.items()},
               "best_w": list(best_w), "best": best["metrics"]["FHR@20"],
               "best_vs_pop": paired_diff(best["per_user"]["FHR@20"], res["pop"]["per_user"]["FHR@20"]),
               "best_without_time": list(no_time), "without_time": grid[no_time]["metrics"]["FHR@20"],
               "without_time_vs_pop": paired_diff(grid[no_time]["per_user"]["FHR@20"],
                                                  res["pop"]["per_user"]["FHR@20"])}
        rows.append(row)
        c = row["best_vs_pop"]
        print(f"{spec}: {row['n_users']} users; pop {row['pop']:.4f} swing {row['swing']:.4f} category-aware best "
              f"(w, b = {best_w}) {row['best']:.4f}, vs pop {c['diff']:+.4f} [{c['lo']:+.4f}, {c['hi']:+.4f}]",
              flush=True)
    out = Path(a.out)
    write_json_atomic({"bench": "simulator_headroom", "machine": machine(), "rows": rows}, out.with_suffix(".json"))
    lines = ["| data | items | validation users | pop | Swing | category-aware, no time (best w) | "
             "Δ vs pop [95 % CI] | category-aware, recent categories × b (best w, b) | Δ vs pop [95 % CI] |",
             "|---" * 9 + "|"]
    for r in rows:
        c, n = r["best_vs_pop"], r["without_time_vs_pop"]
        lines.append(f"| `{r['spec']}` | {r['n_items']} | {r['n_users']} | {r['pop']:.4f} | {r['swing']:.4f} | "
                     f"{r['without_time']:.4f} (w={r['best_without_time'][0]:g}) | "
                     f"{n['diff']:+.4f} [{n['lo']:+.4f}, {n['hi']:+.4f}] | {r['best']:.4f} (w={r['best_w'][0]:g}, "
                     f"b={r['best_w'][1]:g}) | {c['diff']:+.4f} [{c['lo']:+.4f}, {c['hi']:+.4f}] |")
    write_text_atomic("\n".join(lines) + "\n", out.with_suffix(".md"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
