"""`conrec report RUN`: rebuild a run's report (report.md, report.html, the plots) from what the run left on disk,
and print its summary table.

    conrec report RUN

- A finished run (RUN/report.json): the report is rebuilt from its results, per-user values and curriculum
  records, as the run wrote it (e.g. after a change to the report's format, or to get report.html for a run made
  before it existed). A `--seeds N` run (RUN/seed_S/) is rebuilt seed by seed, then the aggregate.
- An interrupted run (no report.json): RUN/report.partial.{md,html} say how far each stage got, give the
  curriculum's decisions so far, the GRPO training curves, and the metrics of what has been evaluated: pop and
  Swing (computed now, seconds) and any model whose evaluation is cached. No report.json is written, so nothing
  partial looks finished; `conrec run ... --resume` finishes the run and writes the real report.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from cluster.report import load_per_user, metric_keys, results_table, write_html, write_report, write_seeds_report

log = logging.getLogger("conrec.report")


def _config(run: Path, report: dict | None = None):
    from cluster.run_config import RunConfig
    from common.config import build

    if report is not None and "config" in report:
        return build(RunConfig, json.dumps(report["config"]), source=f"{run}/report.json")
    if not (run / "config.json").exists():
        raise FileNotFoundError(f"{run} is not a conrec run folder (no config.json or report.json there); give the "
                                "run_dir of a `conrec run`")
    return build(RunConfig, (run / "config.json").read_text(), source=f"{run}/config.json")  # JSON is YAML


def rebuild_finished(run: Path) -> Path:
    """Rewrite report.{md,html} and the plots of a run (or of a seeds run and each of its seeds) from report.json."""
    report = json.loads((run / "report.json").read_text())
    cfg = _config(run, report)
    if "seeds" in report:
        seeds = [int(s) for s in report["seeds"]]
        for s in seeds:
            if (run / f"seed_{s}" / "report.json").exists():
                rebuild_finished(run / f"seed_{s}")
        per_seed = {s: report["per_seed"][str(s)] for s in seeds}
        per_user = {s: load_per_user(run / f"seed_{s}" / "per_user.npz") for s in seeds}
        write_seeds_report(cfg, seeds, per_seed, per_user, run, report.get("seconds", 0.0))
    else:
        write_report(cfg, report["results"], load_per_user(run / "per_user.npz"), report.get("curriculum", []), run,
                     report.get("seconds", 0.0), evaluated_on=report.get("evaluated_on"))
    return run / "report.md"


def _stage_lines(run: Path, cfg) -> tuple[list[str], list[dict]]:
    """How far each stage got, and the curriculum records so far (from the newest GRPO checkpoint)."""
    from trainer.checkpoint import latest_checkpoint

    sid = run / "sid" if (run / "sid").exists() else run.parent / "sid"
    grpo = run / "grpo"
    rows = [json.loads(x) for x in (grpo / "metrics.jsonl").read_text().splitlines()] \
        if (grpo / "metrics.jsonl").exists() else []
    total = sum(s.steps for s in cfg.curriculum.stages) if cfg.curriculum.stages else 0
    ck = latest_checkpoint(run / "grpo") if grpo.exists() else None
    st = json.loads((ck / "driver.json").read_text()) if ck is not None else {}
    done = (run / "final" / "conrec.json").exists()
    lines = [
        f"- semantic IDs: {'done' if (sid / 'sids.parquet').exists() else 'not finished'} ({sid})",
        f"- SFT: {'done' if (run / 'sft' / 'final' / 'conrec.json').exists() else 'not finished'}",
        f"- GRPO: {'done' if done else 'not started' if not rows else 'stopped'} at step "
        f"{rows[-1]['step'] if rows else 0} of {total}" + (f"; newest checkpoint {ck.name}" if ck is not None else ""),
        "- evaluation on the test split: not finished (no report.json)",
    ]
    return lines, st.get("records", [])


def rebuild_partial(run: Path) -> Path:
    """report.partial.{md,html} of a run without report.json."""
    from cluster.report import _bar_plot, _cis, _curves, acceptance_rule
    from cluster.run import _cached, _eval_key, load_data
    from common.atomic import write_text_atomic
    from evaluation.evaluate import evaluate
    from evaluation.methods import get_method

    cfg = _config(run)
    keys = metric_keys(cfg.k)
    stages, records = _stage_lines(run, cfg)
    _, split = load_data(cfg)
    sid_dir = run / "sid" if (run / "sid").exists() else run.parent / "sid"
    results, per_user = {}, {}
    for name in ("pop", "swing", *cfg.extra_baselines):
        r = evaluate(get_method(name), split, k=cfg.k, progress=False)
        results[name], per_user[name] = r["metrics"], r["per_user"]
    for name, d in (("sft_only", run / "sft" / "final"), ("conrec", run / "final")):
        for on in ("driver", "engines"):
            got = _cached(d, _eval_key(cfg, split, sid_dir, on)) if d.exists() else None
            if got is not None:
                results[name], per_user[name] = got
                break
    cis = _cis(per_user, keys)
    lines = [f"# conrec run — {cfg.data} (PARTIAL: the run has not finished)", "",
             f"`conrec run --config ... run_dir={run} --resume` finishes it and writes report.md.", "", *stages, "",
             f"K = {cfg.k}; {len(split.test)} test users. Methods evaluated so far (95 % bootstrap CIs over users):",
             "", *results_table(results, cis, keys)]
    if records:
        lines += ["", "## Curriculum so far", "", f"Acceptance rule: {acceptance_rule(cfg)}", "",
                  "| stage | attempt | validation FHR | accepted |", "|---|---|---|---|"]
        lines += [f"| {s['stage']} | {s.get('attempt', '')} | {s['val']:.4f} | {s['accepted']} |" for s in records]
    mfile = run / "grpo" / "metrics.jsonl"
    if mfile.exists() and mfile.stat().st_size:
        _curves([json.loads(x) for x in mfile.read_text().splitlines()], run / "training_curves.png")
        lines += ["", "![training curves](training_curves.png)"]
    errs = {m: {x: (results[m][x] - cis[m][x]["lo"], cis[m][x]["hi"] - results[m][x]) for x in keys} for m in results}
    _bar_plot(results, errs, keys, run / "metrics.partial.png", "evaluated so far, 95 % CIs")
    lines += ["", "![metrics so far](metrics.partial.png)", ""]
    out = write_text_atomic("\n".join(lines), run / "report.partial.md")
    write_html(out)
    return out


def summary_table(md: Path) -> str:
    """The report's first table (method × metrics), as it stands in the Markdown."""
    lines = md.read_text().splitlines()
    start = next((i for i, x in enumerate(lines) if x.startswith("| method")), None)
    if start is None:
        return ""
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:end])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="conrec report", description=__doc__.splitlines()[0])
    p.add_argument("run", help="the run_dir of a `conrec run` (finished or interrupted)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    run = Path(a.run)
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: no such run folder; give the run_dir of a `conrec run`")
    md = rebuild_finished(run) if (run / "report.json").exists() else rebuild_partial(run)
    print(summary_table(md))
    print(f"\nreport: {md} and {md.with_suffix('.html')}")
    return 0
