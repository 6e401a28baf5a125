"""Which stage should a run return? The last accepted one (what the driver keeps) against the accepted stage
with the best validation FHR@K (first on ties), each evaluated on the test split.

    python -m bench.stage_selection --root runs/quality_ho --data movielens-100k[:PATH] [--variants shipped ...]

The choice is made on the curriculum's validation users only; the test figure measures the rule. Reads
ROOT/<variant>/seed_S/{report.json, per_user.npz, grpo/stage_*}; writes ROOT/stage_selection.json with each
seed's means and, per variant, the paired bootstrap CI of (best-validation − last accepted) over test users.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--variants", nargs="*", default=None)
    p.add_argument("--k", type=int, default=20)
    a = p.parse_args(argv)
    from cluster.driver import stage_dir_name
    from cluster.report import load_per_user, seed_average
    from common.atomic import write_json_atomic
    from common.stats import paired_diff
    from evaluation.evaluate import evaluate
    from evaluation.model_method import ModelMethod
    from feedback.loaders import load
    from feedback.split import make_split

    root, key = Path(a.root), f"FHR@{a.k}"
    split = make_split(load(a.data))
    out = {}
    for v in a.variants or sorted(d.name for d in root.iterdir() if d.is_dir() and d.name != "base"):
        last_pu, best_pu = [], []
        for run in sorted((root / v).glob("seed_*")):
            if not (run / "report.json").exists():
                continue
            recs = [r for r in json.loads((run / "report.json").read_text())["curriculum"] if r.get("accepted")]
            best = max(range(len(recs)), key=lambda i: (recs[i]["val"], -i))
            pu = load_per_user(run / "per_user.npz")
            last = pu["conrec"][key]
            if best == len(recs) - 1:
                chosen = last
            elif recs[best]["stage"] == "start":
                chosen = pu["sft_only"][key]
            else:
                d = run / "grpo" / stage_dir_name(recs[best]["stage"], recs[best].get("attempt", 0))
                chosen = evaluate(ModelMethod(checkpoint=str(d)), split, k=a.k, batch_size=32,
                                  progress=False)["per_user"][key]
            last_pu.append(last)
            best_pu.append(chosen)
            out[f"{v}/{run.name}"] = {"best_validation_stage": recs[best]["stage"], "last_accepted": float(last.mean()),
                                      "best_validation": float(chosen.mean())}
            print(v, run.name, out[f"{v}/{run.name}"], flush=True)
        if last_pu:  # paired over test users, on each user's seed-averaged value
            out[f"{v}/paired_best_minus_last"] = paired_diff(seed_average(best_pu), seed_average(last_pu))
            print(v, "best − last", out[f"{v}/paired_best_minus_last"], flush=True)
    write_json_atomic(out, root / "stage_selection.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
