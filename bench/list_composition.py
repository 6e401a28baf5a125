"""What a top-K list is made of: per list, how many of the user's future negatives (the targets) and how many of
their future positives (items they go on to like: slots a list of dislikes wastes), for pop, Swing, SFT-only and
the run's final model, on the run's own test users:

    python -m bench.list_composition --run RUN/seed_S --data SPEC [--k 20] [--out docs/results/NAME]

RUN/seed_S is one seed of a `conrec run` (config.json, sft/final, final). Run it on a validation run
(`split.validation_run=true`), whose test users are carved from training data, to keep the test split unread.
Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def overlap(lists: np.ndarray, sets) -> np.ndarray:
    """int[N]: how many items of row n of `lists` are in sets[n] (-1 pads never count)."""
    return np.array([int(np.isin(r[r >= 0], np.asarray(t)).sum()) for r, t in zip(lists, sets)])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="one seed of a conrec run: {config.json, sft/final, final}")
    p.add_argument("--data", required=True)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--out", default=None, help="OUT.json and OUT.md (default: RUN/list_composition)")
    a = p.parse_args(argv)
    from bench.common import write_table
    from common.logs import quiet_third_party
    from evaluation.methods import get_method
    from evaluation.model_method import ModelMethod
    from feedback.loaders import load
    from feedback.split import SplitConfig, make_split

    quiet_third_party()
    run = Path(a.run)
    cfg = json.loads((run / "config.json").read_text())
    split = make_split(load(a.data), SplitConfig(**cfg["split"]))
    t = split.test
    rows = np.arange(len(t))
    methods = {"pop": get_method("pop"), "swing": get_method("swing"),
               "sft_only": ModelMethod(checkpoint=str(run / "sft" / "final"), batch_size=32)}
    if (run / "final").exists():
        methods["conrec"] = ModelMethod(checkpoint=str(run / "final"), batch_size=32)
    out = {"run": str(run), "data": a.data, "k": a.k, "n_users": len(t),
           "future_neg_per_user": float(t["future_neg"].map(len).mean()),
           "future_pos_per_user": float(t["future_pos"].map(len).mean()), "methods": {}}
    lines = [f"| method ({len(t)} users, K = {a.k}) | FHR@{a.k} | future negatives per list | future positives per "
             "list | lists holding a future positive |", "|---|---|---|---|---|"]
    for name, m in methods.items():
        m.fit(split)
        lists = m.recommend(rows, a.k)
        neg, pos = overlap(lists, t["future_neg"]), overlap(lists, t["future_pos"])
        r = {"FHR": float((neg > 0).mean()), "neg_per_list": float(neg.mean()), "pos_per_list": float(pos.mean()),
             "any_pos": float((pos > 0).mean())}
        out["methods"][name] = r
        lines.append(f"| {name} | {r['FHR']:.4f} | {r['neg_per_list']:.3f} | {r['pos_per_list']:.3f} | "
                     f"{r['any_pos']:.3f} |")
    lines.append(f"\nPer user in the window: {out['future_neg_per_user']:.2f} future negatives, "
                 f"{out['future_pos_per_user']:.2f} future positives.")
    write_table(out, lines, a.out or run / "list_composition")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
