"""End to end: one GRPO step split by phase, and steps/minute, for a whole `conrec run`.

Runs `conrec run --config CONFIG [overrides]` in a fresh run dir (or reads a finished one with
`--run-dir`), then from its `grpo/metrics.jsonl`: the mean seconds per phase of a step (generate,
reward, update = old/ref log-probs + loss + optimizer step, weight sync, the rest of the driver's
step), GRPO steps/minute of training (steps / Σ step time) and of the whole run (GRPO steps / wall
time including SIDs, SFT, validation and evaluation). Writes bench/results/e2e_TAG.json and redraws
docs/img/step_phases.png, one stacked bar per e2e result in bench/results.

    python -m bench.e2e [--config configs/demo.yaml] [--tag demo] [overrides...]
    python -m bench.e2e --config configs/movielens.yaml --tag movielens --seed-from runs/ml100k
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PHASES = ["timing/generate", "timing/reward", "timing/update", "timing/weight_sync_total"]


def breakdown(rows: list[dict]) -> dict:
    """Mean seconds per phase; 'driver/other' = step time not in a named phase (sharding, batching, logging)."""
    out = {k: float(np.mean([r[k] for r in rows])) for k in PHASES}
    out["timing/step"] = float(np.mean([r["timing/step"] for r in rows]))
    out["driver/other"] = max(out["timing/step"] - sum(out[k] for k in PHASES), 0.0)
    return out


def plot(results: list[dict], path: Path) -> None:
    """One stacked bar per run: where a GRPO step's time goes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = PHASES + ["driver/other"]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    import textwrap

    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.8 * len(results)))
    longest = max(r["phases_s"]["timing/step"] for r in results)
    for y, res in enumerate(results):
        left = 0.0
        for c, n in zip(colours, names):
            v = res["phases_s"][n]
            ax.barh([y], [v], left=left, color=c, label=n.split("/")[-1] if y == 0 else None)
            if v > 0.08 * longest:
                ax.text(left + v / 2, y, f"{v:.2f}s", ha="center", va="center", fontsize=7, color="white")
            left += v
    ax.set_yticks(range(len(results)), [textwrap.fill(r["description"], 34) for r in results], fontsize=7)
    ax.set_xlabel("seconds per GRPO step (mean)")
    ax.legend(ncol=5, fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="configs/demo.yaml")
    p.add_argument("--run-dir", help="analyse this finished run instead of running one")
    p.add_argument("--tag", default="demo")
    p.add_argument("--seed-from", help="reuse this run's finished sid/ and sft/final (only GRPO and evaluation run)")
    p.add_argument("overrides", nargs="*")
    a = p.parse_intermixed_args()
    from bench.common import save

    wall = None
    if a.run_dir:
        run = Path(a.run_dir)
    else:
        run = Path(tempfile.mkdtemp(prefix="cr_bench_e2e_")) / "run"
        extra = []
        if a.seed_from:
            import shutil

            shutil.copytree(Path(a.seed_from) / "sid", run / "sid")
            shutil.copytree(Path(a.seed_from) / "sft" / "final", run / "sft" / "final")
            extra = ["--resume"]
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cluster.cli", "run", "--config", a.config, f"run_dir={run}",
                        *a.overrides, *extra], check=True)
        wall = time.perf_counter() - t0
    rows = [json.loads(x) for x in (run / "grpo" / "metrics.jsonl").read_text().splitlines()]
    rep = json.loads((run / "report.json").read_text()) if (run / "report.json").exists() else {}
    wall = wall or rep.get("seconds")
    ph = breakdown(rows)
    cfg = rep.get("config", {})
    topo = cfg.get("topology", {})
    desc = (f"{a.tag}: {len(rows)} GRPO steps, {cfg.get('grpo', {}).get('prompts_per_step')} prompts x "
            f"G={cfg.get('grpo', {}).get('sampling', {}).get('n')}, {topo.get('rollout_actors')} rollout actors, "
            f"{topo.get('learner_ranks')} learner ranks")
    res = {"run_dir": str(run), "description": desc, "steps": len(rows), "phases_s": ph,
           "steps_per_min_training": 60.0 / ph["timing/step"],
           "steps_per_min_whole_run": 60.0 * len(rows) / wall if wall else None, "run_wall_s": wall}
    print(desc)
    for k, v in ph.items():
        print(f"  {k:<28} {v:7.3f} s  {100 * v / ph['timing/step']:5.1f} %")
    print(f"  GRPO steps/minute: {res['steps_per_min_training']:.1f} training"
          + (f", {res['steps_per_min_whole_run']:.2f} over the whole run ({wall:.0f} s)" if wall else ""))
    out = save(f"e2e_{a.tag}", res)
    img = Path("docs/img/step_phases.png")  # every e2e result so far, one bar each
    plot([json.loads(f.read_text()) for f in sorted(out.parent.glob("e2e_*.json"))], img)
    print("wrote", out, img)


if __name__ == "__main__":
    main()
