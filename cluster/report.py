"""The run's report: metrics with 95 % CIs, paired comparisons against Swing, SFT-only and the run's extra
baselines (`extra_baselines`), plots.

One run (`write_report`) or several seeds of the same run (`write_seeds_report`). Comparisons are
paired bootstraps over the test users (evaluation/compare.py); with several seeds each user's value is
first averaged over the seeds, so the CI covers user sampling with the seed noise averaged in, and the
spread across seeds is reported beside it (mean ± sd).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from common.atomic import write_json_atomic, write_text_atomic

log = logging.getLogger("conrec.report")

BASELINES = ("swing", "sft_only")


def metric_keys(k: int) -> list[str]:
    return [f"HR@{k}", f"FHR@{k}", f"LUF@{k}", f"LIF@{k}", "CandAcc"]


def save_per_user(per_user: dict, path: Path) -> None:
    """Per-user metric values of every method in one .npz (`method/metric` arrays), written atomically."""
    from common.atomic import write_npz_atomic

    write_npz_atomic({f"{m}/{k}": np.asarray(v, dtype=np.float64) for m, d in per_user.items() for k, v in d.items()},
                     path)


def load_per_user(path: Path) -> dict:
    out: dict = {}
    with np.load(path) as z:
        for key in z.files:
            m, k = key.split("/", 1)
            out.setdefault(m, {})[k] = z[key]
    return out


def seed_average(arrays: list) -> np.ndarray:
    """Each user's value averaged over seeds (NaN stays NaN: a user outside a metric's population)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: users outside the population
        return np.nanmean(np.stack(arrays), axis=0)


def comparisons(per_user: dict, keys: list[str], confidence: float = 0.95, extra: tuple = ()) -> dict:
    """Every method against Swing, SFT-only and each of `extra` (the run's extra baselines, so that CoNRec is
    compared paired with the strongest baseline the run was asked to show, not only read beside it)."""
    from evaluation.compare import compare_methods

    return compare_methods(per_user, list(dict.fromkeys([*BASELINES, *extra])), keys, confidence=confidence)


def _cis(per_user: dict, keys: list[str]) -> dict:
    from evaluation.compare import bootstrap_ci

    return {m: {k: bootstrap_ci(pu[k]) for k in keys if k in pu} for m, pu in per_user.items()}


def _comparison_lines(comp: dict, keys: list[str]) -> list[str]:
    from evaluation.compare import verdict

    lines = []
    for base, by_method in comp.items():
        lines += ["", f"### Paired difference against `{base}` (mean, 95 % bootstrap CI over test users)", "",
                  "| method | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for name, c in by_method.items():
            cells = [f"{c[k]['diff']:+.4f} [{c[k]['lo']:+.4f}, {c[k]['hi']:+.4f}] {_mark(verdict(c[k]))}"
                     for k in keys if k in c]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "▲ better, ▼ worse (CI excludes 0); = within noise."]
    return lines


def _mark(v: str) -> str:
    return {"better": "▲", "worse": "▼"}.get(v, "=")


def _bar_plot(means: dict, errs: dict, keys: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.8))
    names = list(means)
    w = 0.8 / max(len(names), 1)
    for i, n in enumerate(names):
        y = [means[n].get(k, np.nan) for k in keys]
        e = np.array([errs[n].get(k, (0.0, 0.0)) for k in keys]).T
        ax.bar(np.arange(len(keys)) + i * w, y, w, yerr=e, capsize=2, label=n)
    ax.set_xticks(np.arange(len(keys)) + 0.4 - w / 2, keys)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _curves(rows: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 4, figsize=(16, 3.5))
    for a, key in zip(ax, ("reward/mean", "reward/group_std", "actor/kl", "timing/step")):
        xs = [r["step"] for r in rows if key in r]
        a.plot(xs, [r[key] for r in rows if key in r])
        a.set_title(key)
        a.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def results_table(results: dict, cis: dict, keys: list[str]) -> list[str]:
    """Markdown rows: each method's metrics with their 95 % CIs, and its alignment accuracy when it has one."""
    lines = ["| method | " + " | ".join(keys) + " | alignment_acc |", "|---" * (len(keys) + 2) + "|"]
    for name, r in results.items():
        al = r.get("alignment_acc")
        cells = [f"{r[x]:.4f} [{cis[name][x]['lo']:.3f}, {cis[name][x]['hi']:.3f}]" for x in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {'' if al is None else f'{al:.3f}'} |")
    return lines


def write_report(cfg, results: dict, per_user: dict, records: list, run: Path, seconds: float,
                 evaluated_on: dict | None = None) -> dict:
    """report.json, report.md, metrics.png (CIs as error bars) and training_curves.png of one run.
    `evaluated_on`: {model: 'driver' | 'engines'} (cluster/engine_eval.py), written when any model ran on the
    engines."""
    from common.config import to_dict

    log.info("[5/5] report → %s", run / "report.md")
    k = cfg.k
    keys = metric_keys(k)
    mfile = run / "grpo" / "metrics.jsonl"
    rows = [json.loads(x) for x in mfile.read_text().splitlines()] if mfile.exists() else []
    faults = {n: v for n, v in (rows[-1] if rows else {}).items() if n.startswith("fault/")}
    cis = _cis(per_user, keys)
    comp = comparisons(per_user, keys, extra=tuple(cfg.extra_baselines))
    report = {"dataset": cfg.data, "k": k, "results": results, "ci95": cis, "paired": comp,
              "curriculum": records, "acceptance_rule": acceptance_rule(cfg), "seconds": seconds,
              "faults": faults, "config": to_dict(cfg), "evaluated_on": evaluated_on or {}}
    write_json_atomic(report, run / "report.json")
    lines = [f"# conrec run — {cfg.data}", "", f"K = {k}; {len(per_user['pop'][keys[1]])} test users; "
             f"wall time {seconds / 60:.1f} min.", "", *results_table(results, cis, keys)]
    lines += ["", "Brackets: 95 % bootstrap CI over test users."]
    if any(v == "engines" for v in (evaluated_on or {}).values()):
        lines += ["Ranked on the rollout engines (`evaluate_on: engines`; by the constrained distribution, "
                  "cluster/engine_eval.py): " + ", ".join(n for n, v in evaluated_on.items() if v == "engines") + "."]
    lines += _comparison_lines(comp, keys)
    if records:
        lines += ["", "## Curriculum", "", f"Acceptance rule: {acceptance_rule(cfg)}", "",
                  "| stage | attempt | β | lr × | validation FHR | Δ vs best [95 % CI] | accepted |",
                  "|---|---|---|---|---|---|---|"]
        for s in records:
            d = s.get("delta")
            ci = f"{d['diff']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}]" if d else ""
            lines.append(f"| {s['stage']} | {s.get('attempt', '')} | {s.get('kl_coef', '')} | "
                         f"{s.get('lr_scale', '')} | {s['val']:.4f} | {ci} | {s['accepted']} |")
    if rows:
        if any(faults.values()):
            lines += ["", "Actor restarts survived: " + ", ".join(f"{n[6:]} {int(v)}" for n, v in faults.items())]
        _curves(rows, run / "training_curves.png")
        lines += ["", "![training curves](training_curves.png)"]
    errs = {m: {x: (results[m][x] - cis[m][x]["lo"], cis[m][x]["hi"] - results[m][x]) for x in keys} for m in results}
    _bar_plot(results, errs, keys, run / "metrics.png", "metrics with 95 % CIs (bootstrap over test users)")
    lines += ["", "![metrics vs baselines](metrics.png)", ""]
    write_text_atomic("\n".join(lines), run / "report.md")
    write_html(run / "report.md")
    return report


def write_html(md_path: Path) -> Path:
    """The report as one self-contained HTML file beside it (same name, .html): its tables, and its plots inlined
    as data URIs, so the file can be mailed or opened anywhere without the run folder."""
    import base64
    import html
    import re

    import markdown

    md_path = Path(md_path)
    text = md_path.read_text()
    body = markdown.markdown(text, extensions=["tables"])  # tables: GitHub-style pipes

    def inline(m: re.Match) -> str:
        src = md_path.parent / html.unescape(m.group(2))
        if not src.is_file():
            return m.group(0)
        return f'{m.group(1)}data:image/png;base64,{base64.b64encode(src.read_bytes()).decode()}"'

    body = re.sub(r'(<img[^>]*?src=")([^"]+\.png)"', inline, body)
    title = html.escape(text.splitlines()[0].lstrip("# ").strip() if text.strip() else "report")
    style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;"
             "text-align:right}th:first-child,td:first-child{text-align:left}tr:nth-child(even){background:#f6f6f6}"
             "img{max-width:100%}code{background:#f0f0f0;padding:0 3px}")
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title><style>{style}</style></head>"
            f"<body>\n{body}\n</body></html>\n")
    return write_text_atomic(page, md_path.with_suffix(".html"))


def acceptance_rule(cfg) -> str:
    c = cfg.curriculum
    if c.acceptance == "paired_ci":
        return (f"accept a stage unless its validation FHR@{cfg.k} is lower than the last accepted stage's with the "
                f"paired {c.confidence:.0%} bootstrap CI of the difference entirely below −{c.tolerance} "
                f"(a drop inside the noise band is no drop); validation users: "
                f"{'all' if not cfg.grpo.val_users else cfg.grpo.val_users} carved from training data; "
                f"a rejected stage retries {c.max_retries}× from the last accepted weights with β × "
                f"{c.retry_kl_factor} and learning rate × {c.retry_lr_factor}")
    return (f"accept a stage if its validation FHR@{cfg.k} ≥ best − {c.tolerance} (point estimate); retry with "
            f"β × {c.retry_kl_factor} and learning rate × {c.retry_lr_factor}")


def write_seeds_report(cfg, seeds: list[int], per_seed: dict, per_user: dict, run: Path, seconds: float) -> dict:
    """Aggregate several seeds of one run: mean ± sd per metric, paired CIs on seed-averaged users."""
    from common.config import to_dict

    k = cfg.k
    keys = metric_keys(k)
    methods = list(per_seed[seeds[0]])
    stats = {m: {x: {"mean": float(np.mean([per_seed[s][m][x] for s in seeds])),
                     "sd": float(np.std([per_seed[s][m][x] for s in seeds], ddof=1)) if len(seeds) > 1 else 0.0}
                 for x in keys + ["alignment_acc"] if x in per_seed[seeds[0]][m]} for m in methods}
    avg = {m: {x: seed_average([per_user[s][m][x] for s in seeds]) for x in keys} for m in methods}
    comp = comparisons(avg, keys, extra=tuple(cfg.extra_baselines))
    cis = _cis(avg, keys)
    report = {"dataset": cfg.data, "k": k, "seeds": seeds, "per_seed": {str(s): per_seed[s] for s in seeds},
              "mean_sd": stats, "ci95_seed_avg": cis, "paired_seed_avg": comp, "seconds": seconds,
              "config": to_dict(cfg)}
    write_json_atomic(report, run / "report.json")
    lines = [f"# conrec run — {cfg.data}, {len(seeds)} seeds ({', '.join(map(str, seeds))})", "",
             f"K = {k}; {len(avg[methods[0]][keys[1]])} test users; wall time {seconds / 60:.1f} min (the seeds' runs "
             "added up). SIDs and split shared; SFT and GRPO reseeded. Cells: mean ± sd across seeds.", "",
             "| method | " + " | ".join(keys) + " | alignment_acc |", "|---" * (len(keys) + 2) + "|"]
    for m in methods:
        cells = [f"{stats[m][x]['mean']:.4f} ± {stats[m][x]['sd']:.4f}" for x in keys]
        al = f"{stats[m]['alignment_acc']['mean']:.3f}" if "alignment_acc" in stats[m] else ""
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {al} |")
    lines += ["", "Paired comparisons below use each user's value averaged over the seeds."]
    lines += _comparison_lines(comp, keys)
    lines += ["", "Per seed: " + "; ".join(f"[seed {s}](seed_{s}/report.md)" for s in seeds)]
    means = {m: {x: stats[m][x]["mean"] for x in keys} for m in methods}
    errs = {m: {x: (means[m][x] - cis[m][x]["lo"], cis[m][x]["hi"] - means[m][x]) for x in keys} for m in methods}
    _bar_plot(means, errs, keys, run / "metrics.png",
              f"mean over {len(seeds)} seeds, 95 % CIs (bootstrap over users, seed-averaged)")
    lines += ["", "![metrics vs baselines](metrics.png)", ""]
    write_text_atomic("\n".join(lines), run / "report.md")
    write_html(run / "report.md")
    return report
