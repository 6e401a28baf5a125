"""`conrec run`: raw logs → SIDs → SFT → progressive GRPO on Ray → evaluation → report.

    conrec run --config configs/demo.yaml [dotted overrides] [--resume]

Every stage writes into RUN_DIR and is skipped when its output is already complete (`--resume`
continues after the last finished stage): sid/, sft/final/, grpo/, final/, report.json, report.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from cluster.atomic import write_json_atomic, write_text_atomic
from cluster.config import build, to_dict
from cluster.run_config import RunConfig

log = logging.getLogger("conrec.run")


def stage_sids(cfg: RunConfig, data, run: Path) -> Path:
    from sid.build import build_sids, summary

    d = run / "sid"
    if not (d / "report.json").exists():
        log.info("[1/5] semantic IDs → %s", d)
        _, rep = build_sids(data.items, data.category_columns, cfg.sid, d)
        log.info("\n%s", summary(rep))
    return d


def stage_sft(cfg: RunConfig, sid_dir: Path, run: Path) -> Path:
    import yaml

    out = run / "sft"
    if (out / "final" / "conrec.json").exists():
        return out / "final"
    log.info("[2/5] SFT → %s", out)
    sft = replace(cfg.sft, data=cfg.data, sid_dir=str(sid_dir), run_dir=str(out), split=cfg.split)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sft.yaml").write_text(yaml.safe_dump(to_dict(sft)))
    # its own process: DeepSpeed's torch.distributed must not live in the driver
    cmd = [sys.executable, "-m", "trainer.sft", "--config", str(out / "sft.yaml")]
    if (out / "checkpoints").exists():
        cmd.append("--resume")
    subprocess.run(cmd, check=True)
    return out / "final"


def stage_grpo(cfg: RunConfig, split, index, sid_dir: Path, sft_dir: Path, run: Path, resume: bool = False
               ) -> tuple[Path | None, list]:
    import ray

    from evaluation.evaluate import evaluate
    from evaluation.model_method import ModelMethod
    from feedback.split import carve_validation, training_examples
    from reward.ground_truth import build_ground_truth
    from trainer.metrics_log import MetricsLog
    from trainer.models import check_model_dir

    from cluster.driver import Driver
    from cluster.ray_local import init_local_ray

    final = run / "final"
    if (final / "conrec.json").exists():
        return final, json.loads((run / "grpo" / "stages.json").read_text())
    log.info("[3/5] progressive GRPO on Ray")
    check_model_dir(sft_dir, index.level_sizes)  # before any actor loads it
    examples = training_examples(split, max_context=max(cfg.grpo.max_context_items * 3, 50))
    gt = build_ground_truth(examples, split, cfg.grpo.reward.swing_n)
    val = carve_validation(split)
    val.test = val.test.iloc[: cfg.grpo.val_users].reset_index(drop=True)

    def validate(model_dir: Path) -> float:
        m = ModelMethod(checkpoint=str(model_dir), sid_dir=str(sid_dir))
        return evaluate(m, val, k=cfg.k, batch_size=32, progress=False)["metrics"][f"FHR@{cfg.k}"]

    started = False
    if not ray.is_initialized():
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        if cfg.topology.ray_address:
            ray.init(address=cfg.topology.ray_address)
        else:
            init_local_ray(max(2, os.cpu_count() or 2), cfg.topology.bind_host, log_to_driver=True, prefix="cr_run_")
            started = True
    mlog = MetricsLog(run / "grpo", append=resume)
    try:
        driver = Driver(cfg, examples, gt, index, str(sft_dir), str(sid_dir), val, mlog)
        records = driver.run(validate, resume=resume)
        if records is None:
            return None, []
        write_json_atomic(records, run / "grpo" / "stages.json")
        best = driver.final_dir
    finally:
        mlog.close()
        if started:
            ray.shutdown()
    import shutil

    if final.exists():
        shutil.rmtree(final)
    shutil.copytree(best, final)
    return final, records


def stage_eval(cfg: RunConfig, split, sid_dir: Path, models: dict, run: Path) -> dict:
    from evaluation.evaluate import evaluate
    from evaluation.methods import get_method
    from evaluation.model_method import ModelMethod, alignment_accuracy

    log.info("[4/5] evaluation on the test split (%d users)", len(split.test))
    results = {}
    for name in ("pop", "swing"):
        results[name] = evaluate(get_method(name), split, k=cfg.k, progress=False)["metrics"]
    for name, d in models.items():
        m = ModelMethod(checkpoint=str(d), sid_dir=str(sid_dir))
        r = evaluate(m, split, k=cfg.k, batch_size=32, progress=False)["metrics"]
        r.update(alignment_accuracy(m.model, m.tok, m.index, split))
        results[name] = r
    return results


def write_report(cfg: RunConfig, results: dict, records: list, run: Path, seconds: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log.info("[5/5] report → %s", run / "report.md")
    k = cfg.k
    keys = [f"HR@{k}", f"FHR@{k}", f"LUF@{k}", f"LIF@{k}", "CandAcc"]
    mfile = run / "grpo" / "metrics.jsonl"
    rows = [json.loads(x) for x in mfile.read_text().splitlines()] if mfile.exists() else []
    # restarts survived by the last GRPO process
    faults = {n: v for n, v in (rows[-1] if rows else {}).items() if n.startswith("fault/")}
    report = {"dataset": cfg.data, "k": k, "results": results, "curriculum": records, "seconds": seconds,
              "faults": faults, "config": to_dict(cfg)}
    write_json_atomic(report, run / "report.json")
    lines = [f"# conrec run — {cfg.data}", "", f"K = {k}; wall time {seconds / 60:.1f} min.", "",
             "| method | " + " | ".join(keys) + " | alignment_acc |", "|---" * (len(keys) + 2) + "|"]
    for name, r in results.items():
        al = r.get("alignment_acc")
        lines.append(f"| {name} | " + " | ".join(f"{r[x]:.4f}" for x in keys) + f" | {'' if al is None else f'{al:.3f}'} |")
    if records:
        lines += ["", "## Curriculum", "", "| stage | attempt | β | validation FHR | accepted |", "|---|---|---|---|---|"]
        for s in records:
            lines.append(f"| {s['stage']} | {s.get('attempt', '')} | {s.get('kl_coef', '')} | {s['val']:.4f} | "
                         f"{s['accepted']} |")
    if rows:
        if any(faults.values()):
            lines += ["", "Actor restarts survived: " + ", ".join(f"{n[6:]} {int(v)}" for n, v in faults.items())]
        fig, ax = plt.subplots(1, 3, figsize=(13, 3.5))
        for a, key in zip(ax, ("reward/mean", "actor/kl", "timing/generate")):
            xs = [r["step"] for r in rows if key in r]
            a.plot(xs, [r[key] for r in rows if key in r])
            a.set_title(key)
            a.set_xlabel("step")
        fig.tight_layout()
        fig.savefig(run / "training_curves.png", dpi=110)
        lines += ["", "![training curves](training_curves.png)"]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    names = list(results)
    w = 0.8 / len(names)
    for i, n in enumerate(names):
        ax.bar(np.arange(len(keys)) + i * w, [results[n][x] for x in keys], w, label=n)
    ax.set_xticks(np.arange(len(keys)) + 0.4 - w / 2, keys)
    ax.legend()
    fig.tight_layout()
    fig.savefig(run / "metrics.png", dpi=110)
    lines += ["", "![metrics vs baselines](metrics.png)", ""]
    write_text_atomic("\n".join(lines), run / "report.md")


def run_pipeline(cfg: RunConfig, resume: bool = False) -> dict | None:
    from feedback.loaders import load
    from feedback.split import make_split

    t0 = time.perf_counter()
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))
    data = load(cfg.data)
    split = make_split(data, cfg.split)
    log.info("data: %s; %d test users", data.report.summary().replace("\n", "; "), len(split.test))
    sid_dir = stage_sids(cfg, data, run)
    from sid.index import SidIndex

    index = SidIndex.load(sid_dir)
    index.check_catalogue(data.items["item_id"].to_numpy())  # a resumed run on other data
    sft_dir = stage_sft(cfg, sid_dir, run)
    models = {"sft_only": sft_dir}
    records = []
    if cfg.run_grpo:
        final, records = stage_grpo(cfg, split, index, sid_dir, sft_dir, run, resume)
        if final is None:
            return None
        models["conrec"] = final
    results = stage_eval(cfg, split, sid_dir, models, run)
    write_report(cfg, results, records, run, time.perf_counter() - t0)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="conrec run", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="YAML (fields of cluster.run_config.RunConfig)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run (finished stages are kept)")
    p.add_argument("overrides", nargs="*")
    a = p.parse_intermixed_args(argv)  # overrides may come before or after the flags
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = build(RunConfig, Path(a.config).read_text() if a.config else None, a.overrides)
    run = Path(cfg.run_dir)
    if run.exists() and any(run.iterdir()) and not a.resume:
        raise FileExistsError(f"{run} is not empty: pass --resume to continue it, or choose another run_dir=")
    results = run_pipeline(cfg, resume=a.resume)
    if results is None:
        print(f"stopped by grpo.max_total_steps; continue with: conrec run --config ... run_dir={run} --resume")
        return 0
    for name, r in results.items():
        print(f"{name:<10} " + " ".join(f"{k}={v:.4f}" for k, v in r.items() if isinstance(v, float)))
    print(f"report: {run / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
