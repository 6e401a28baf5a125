"""How much room does the simulator leave above popularity? A scorer that knows the simulator's structure (a
user's dislikes are whole categories; a few low-quality items are disliked by anyone; after a negative the
simulated recommender hides that category from the user for `filter_days` = 3 days) ranks items by
`pop + w · share of the user's context negatives in the item's category`, the share of a category with a
negative in the last 3 days before the cutoff multiplied by `b` (b = 0: such categories are not boosted,
they are hidden for part of the window). Its best FHR@20 over the (w, b) grid, on the validation users (the
training events cut again; the test split is never read), is an optimistic figure for what a model of the
same inputs can gain over `pop`: it is tuned on the very users it is scored on.

Two more rows per log: `category_knn` (feedback/category_knn.py) at k = 20, 50, 200, a method any log with an
item category column allows; and an oracle that reads the simulator's truth (each user's disliked categories and
their intensities) and scores exposure × (0.6 · intensity + the item's estimated low-quality rate), the
categories disliked in the last 3 days before the cutoff left out: the room a model of the users' tastes has.

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


class TrueCategories(ScoreMethod):
    """The oracle: the simulator's truth about each user's disliked categories (see the module docstring)."""

    name = "oracle_true_categories"

    def __init__(self, category: np.ndarray, recent_days: float = 3.0):
        self.cat, self.recent = category, recent_days

    def fit(self, split) -> None:
        self.split = split
        d, tr = split.data, split.train
        names = list(d.items["category"].astype("category").cat.categories)
        col = {c: j for j, c in enumerate(names)}
        truth = d.truth.set_index("user_id")
        self.dislike = np.zeros((d.n_users, len(names)))
        for u, uid in enumerate(d.user_ids):
            if uid in truth.index:
                row = truth.loc[uid]
                for c, w in zip(row["neg_interests"], row["neg_intensity"]):
                    self.dislike[u, col[c]] = w
        u, i, neg = tr["uidx"].to_numpy(), tr["iidx"].to_numpy(), tr["fb"].to_numpy() == -1
        # an item's low-quality rate: its negatives among users who do not dislike its category
        other = self.dislike[u, self.cat[i]] == 0
        n = split.n_items
        self.bad = (np.bincount(i[other], weights=neg[other], minlength=n) + 0.1) / \
            (np.bincount(i[other], minlength=n) + 2.0)
        expo = np.bincount(i, minlength=n).astype(np.float64)
        self.exposure = expo / max(expo.max(), 1.0)

    def scores(self, rows):
        t = self.split.test
        out = np.empty((len(rows), len(self.exposure)))
        for row, r in enumerate(rows):
            p = 0.6 * self.dislike[t["uidx"].iat[r]][self.cat] + self.bad
            items, fb, ts = t["context_items"].iat[r], t["context_fb"].iat[r], t["context_ts"].iat[r]
            recent = items[(fb == -1) & (ts >= int(t["t_cut"].iat[r]) - self.recent * DAY)]
            p[np.isin(self.cat, self.cat[recent])] = 0.0  # hidden from the user for part of the window
            out[row] = p * self.exposure
        return out


def windows_by_context(split, knn_k: int = 50, n: int = 20) -> list[dict]:
    """How often the category kNN's top n (and pop's) holds a future negative of a training window, by the
    window's context length: what GRPO's GTS part `grpo.reward.category_n` would teach on each window."""
    from feedback.category_knn import CategoryKnn, CategoryKnnConfig
    from feedback.split import training_examples
    from reward.ground_truth import knn_targets

    ex = training_examples(split, max_context=40)
    top = knn_targets(ex, CategoryKnn(split, CategoryKnnConfig(k=knn_k)), n)
    pop = np.argsort(-split.train_negative_counts(), kind="stable")
    lens = ex["ctx_items"].map(len).to_numpy()
    knn_hit = np.array([np.isin(t, f).any() for (t, _), f in zip(top, ex["future_neg"])])
    pop_hit = np.array([np.isin(pop[~np.isin(pop, c)][:n], f).any() for c, f in zip(ex["ctx_items"], ex["future_neg"])])
    out = []
    for lo, hi in ((1, 2), (3, 7), (8, 15), (16, 40), (1, 40)):
        m = (lens >= lo) & (lens <= hi)
        out.append({"context_events": f"{lo}-{hi}", "windows": int(m.sum()),
                    "category_knn": float(knn_hit[m].mean()), "pop": float(pop_hit[m].mean())})
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
        from feedback.category_knn import CategoryKnnConfig

        knn = {k: evaluate(get_method("category_knn", knn=CategoryKnnConfig(k=k)), split, progress=False)
               for k in (20, 50, 200)}
        row["category_knn"] = {str(k): r["metrics"]["FHR@20"] for k, r in knn.items()}
        row["category_knn_vs_pop"] = paired_diff(knn[50]["per_user"]["FHR@20"], res["pop"]["per_user"]["FHR@20"])
        row["windows_by_context"] = windows_by_context(split)
        if data.truth is not None:
            row["oracle"] = evaluate(TrueCategories(cat), split, progress=False)["metrics"]["FHR@20"]
        rows.append(row)
        c = row["best_vs_pop"]
        print(f"{spec}: {row['n_users']} users; pop {row['pop']:.4f} swing {row['swing']:.4f} category-aware best "
              f"(w, b = {best_w}) {row['best']:.4f}, vs pop {c['diff']:+.4f} [{c['lo']:+.4f}, {c['hi']:+.4f}]",
              flush=True)
    out = Path(a.out)
    write_json_atomic({"bench": "simulator_headroom", "machine": machine(), "rows": rows}, out.with_suffix(".json"))
    lines = ["| data | items | validation users | pop | Swing | category-aware, no time (best w) | "
             "Δ vs pop [95 % CI] | category-aware, recent categories × b (best w, b) | Δ vs pop [95 % CI] | "
             "category_knn k 20 / 50 / 200 | k 50: Δ vs pop [95 % CI] | oracle (true categories) |",
             "|---" * 12 + "|"]
    for r in rows:
        c, n = r["best_vs_pop"], r["without_time_vs_pop"]
        lines.append(f"| `{r['spec']}` | {r['n_items']} | {r['n_users']} | {r['pop']:.4f} | {r['swing']:.4f} | "
                     f"{r['without_time']:.4f} (w={r['best_without_time'][0]:g}) | "
                     f"{n['diff']:+.4f} [{n['lo']:+.4f}, {n['hi']:+.4f}] | {r['best']:.4f} (w={r['best_w'][0]:g}, "
                     f"b={r['best_w'][1]:g}) | {c['diff']:+.4f} [{c['lo']:+.4f}, {c['hi']:+.4f}] | "
                     + " / ".join(f"{v:.4f}" for v in r["category_knn"].values()) + " | "
                     f"{r['category_knn_vs_pop']['diff']:+.4f} [{r['category_knn_vs_pop']['lo']:+.4f}, "
                     f"{r['category_knn_vs_pop']['hi']:+.4f}] | " + (f"{r['oracle']:.4f}" if "oracle" in r else "–")
                     + " |")
    for r in rows:
        lines += ["", f"`{r['spec']}`, training windows (validation run): a future negative in the top 20 of",
                  "", "| context events | windows | category_knn (k 50) | pop |", "|---|---|---|---|"]
        lines += [f"| {w['context_events']} | {w['windows']} | {w['category_knn']:.3f} | {w['pop']:.3f} |"
                  for w in r["windows_by_context"]]
    write_text_atomic("\n".join(lines) + "\n", out.with_suffix(".md"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
