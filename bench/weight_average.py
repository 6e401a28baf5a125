"""Does the GRPO direction pay more when scaled? The run's final weights θ_RL and its SFT start θ_SFT give
θ(α) = θ_SFT + α (θ_RL − θ_SFT): α = 1 is the run, α < 1 interpolates back toward SFT (WiSE-FT's weight
averaging), α > 1 extrapolates along the RL update (ExPO). `avg` is the uniform average of the accepted
GRPO stages' weights (checkpoint averaging).

    python -m bench.weight_average --root runs/quality_ho --variant shipped --data movielens-100k[:PATH] \
        [--alphas 0.5 1.5 2] [--val-users 200]

Each candidate is evaluated on the curriculum's validation users (carved from training data: the choice)
and on the test split (what the choice is worth). Writes ROOT/VARIANT/weight_average.json: per seed and
candidate the two means, and per candidate the paired bootstrap CI against α = 1 over seed-averaged users.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path


def blend(dirs: list[Path], weights: list[float], out: Path) -> Path:
    """A model folder whose weights are Σ w_i θ_i over `dirs` (their other files from the first)."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(dirs[0], out, ignore=shutil.ignore_patterns("eval_cache"))
    states = [load_file(str(d / "model.safetensors")) for d in dirs]
    mixed = {k: sum(w * s[k].double() for w, s in zip(weights, states)).to(states[0][k].dtype) for k in states[0]}
    save_file(mixed, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True)
    p.add_argument("--variant", default="shipped")
    p.add_argument("--data", required=True)
    p.add_argument("--alphas", type=float, nargs="*", default=[0.5, 1.5, 2.0])
    p.add_argument("--val-users", type=int, default=200)
    p.add_argument("--k", type=int, default=20)
    a = p.parse_args(argv)
    import numpy as np

    from cluster.driver import stage_dir_name
    from cluster.report import load_per_user, seed_average
    from common.atomic import write_json_atomic
    from common.stats import paired_diff
    from evaluation.evaluate import evaluate
    from evaluation.model_method import ModelMethod
    from feedback.loaders import load
    from feedback.split import make_split, validation_users

    key = f"FHR@{a.k}"
    split = make_split(load(a.data))
    val = validation_users(split, a.val_users, split.config.seed)

    def fhr(model_dir: Path, on) -> np.ndarray:
        r = evaluate(ModelMethod(checkpoint=str(model_dir)), on, k=a.k, batch_size=32, progress=False)
        return r["per_user"][key]

    names = [f"alpha_{x:g}" for x in a.alphas] + ["avg"]
    per = {n: {"val": [], "test": []} for n in names + ["alpha_1"]}
    out: dict = {"variant": a.variant, "alphas": a.alphas, "val_users": len(val.test), "seeds": {}}
    for run in sorted((Path(a.root) / a.variant).glob("seed_*")):
        if not (run / "report.json").exists():
            continue
        sft, rl = (run / "sft" / "final").resolve(), run / "final"
        recs = [r for r in json.loads((run / "report.json").read_text())["curriculum"]
                if r.get("accepted") and r["stage"] != "start"]
        stages = [run / "grpo" / stage_dir_name(r["stage"], r.get("attempt", 0)) for r in recs]
        row = {}
        per["alpha_1"]["test"].append(load_per_user(run / "per_user.npz")["conrec"][key])
        per["alpha_1"]["val"].append(fhr(rl, val))
        row["alpha_1"] = {part: float(per["alpha_1"][part][-1].mean()) for part in ("val", "test")}
        with tempfile.TemporaryDirectory(prefix="wavg_") as tmp:
            for n in names:
                if n == "avg":
                    if not stages:
                        continue
                    d = blend(stages, [1 / len(stages)] * len(stages), Path(tmp) / n)
                else:
                    x = float(n.split("_")[1])
                    d = blend([sft, rl], [1 - x, x], Path(tmp) / n)
                per[n]["val"].append(fhr(d, val))
                per[n]["test"].append(fhr(d, split))
                row[n] = {"val": float(per[n]["val"][-1].mean()), "test": float(per[n]["test"][-1].mean())}
                print(a.variant, run.name, n, row[n], flush=True)
        out["seeds"][run.name] = row
    out["paired_vs_alpha_1"] = {
        n: {part: paired_diff(seed_average(per[n][part]), seed_average(per["alpha_1"][part]))
            for part in ("val", "test")}
        for n in names if len(per[n]["test"]) == len(per["alpha_1"]["test"]) and per[n]["test"]}
    for n, d in out["paired_vs_alpha_1"].items():
        print(n, "val Δ", d["val"], "test Δ", d["test"], flush=True)
    write_json_atomic(out, Path(a.root) / a.variant / "weight_average.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
