"""The quality sweep's table: every variant of scripts/quality_sweep, mean ± sd over seeds, paired CIs.

    python -m bench.quality_table [--root runs/quality] [--out docs/results/quality_ml100k] [--against shipped]
                                  [--seeds 0 1 2] [--plot docs/img/NAME.png]

Reads ROOT/<variant>/seed_S/{report.json, per_user.npz}, pools the seeds present in every variant, and
writes OUT.json (machine-readable) and OUT.md (the table for docs/BENCHMARKS.md). Comparisons are paired
bootstraps over test users on seed-averaged per-user values (cluster/report.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from cluster.report import comparisons, load_per_user, seed_average
from common.atomic import write_json_atomic, write_text_atomic
from evaluation.compare import verdict

KEYS = ["HR@20", "FHR@20", "LUF@20", "LIF@20", "CandAcc"]


def collect(root: Path, only: list[int] | None = None) -> dict:
    """Every variant's finished seeds (`only`: just those seeds)."""
    out = {}
    for v in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "base"):
        seeds = {}
        for d in sorted(v.glob("seed_*")):
            if not d.is_dir() or (only is not None and int(d.name[5:]) not in only):
                continue
            if (d / "report.json").exists() and (d / "per_user.npz").exists():
                rep = json.loads((d / "report.json").read_text())
                seeds[int(d.name[5:])] = {"results": rep["results"], "per_user": load_per_user(d / "per_user.npz"),
                                          "seconds": rep["seconds"], "curriculum": rep.get("curriculum", [])}
        if seeds:
            out[v.name] = seeds
    return out


def table(runs: dict, against: str = "", sft_ref: str = "shipped") -> tuple[dict, str]:
    """`against`: a variant every other one is also compared with, paired (its seeds must be theirs). A variant
    with its own SFT models gets its own SFT-only row, and its CoNRec is also paired against `sft_ref`'s SFT-only
    (the shared full-data models)."""
    from common.stats import paired_diff, turnover

    rows, lines, notes = {}, [], []
    ref = against if against in runs else ""
    head = "| variant | seeds | " + " | ".join(KEYS) + " | Δ FHR@20 vs SFT-only [95 % CI] | " \
           "Δ FHR@20 vs Swing [95 % CI] | " + (f"Δ FHR@20 vs {ref} [95 % CI] | " if ref else "") + \
           "validation FHR@20 (start → last accepted = the final model) | " \
           "stages accepted (per seed) | users gained / lost vs its SFT-only | wall min / run (median) |"
    lines += [head, "|---" * (head.count("|") - 1) + "|"]
    base_sft = None  # the SFT-only results of the first variant: the shared SFT models every variant starts from
    for v, seeds in runs.items():
        ss = sorted(seeds)
        sft = [seeds[s]["results"]["sft_only"] for s in ss]
        own_sft = base_sft is not None and sft != base_sft  # a variant that trains its own SFT (grpo.fresh_tail)
        methods = ["pop", "swing", "sft_only"] if base_sft is None else ["sft_only"] if own_sft else []
        methods += ["conrec"] if "conrec" in seeds[ss[0]]["results"] else []
        avg = {m: {k: seed_average([seeds[s]["per_user"][m][k] for s in ss]) for k in KEYS}
               for m in ("swing", "sft_only", "conrec") if m in seeds[ss[0]]["per_user"]}
        comp = comparisons(avg, KEYS)
        if own_sft and sft_ref in runs and sorted(runs[sft_ref]) == ss:
            # its CoNRec against the shared (full-data) SFT-only, not only against its own shortened SFT
            c = paired_diff(avg["conrec"]["FHR@20"],
                            seed_average([runs[sft_ref][s]["per_user"]["sft_only"]["FHR@20"] for s in ss]))
            rows[f"{v} vs shared sft_only"] = c
            notes.append(f"- {v}: CoNRec − the shared (full-data) SFT-only, FHR@20: {c['diff']:+.4f} "
                         f"[{c['lo']:+.4f}, {c['hi']:+.4f}] ({verdict(c)})")
        if base_sft is None:
            # how complementary the SFT model and Swing are: users either list hits (40 items, so a ceiling on
            # what distilling Swing into the model's 20 could reach, not a K = 20 figure)
            either = [float(np.mean(np.maximum(seeds[s]["per_user"]["sft_only"]["FHR@20"],
                                               seeds[s]["per_user"]["swing"]["FHR@20"]))) for s in ss]
            rows["sft_only or swing"] = {"FHR@20 (either list)": either}
            notes.append(f"- users hit by SFT-only's or Swing's top 20 (either list; {len(ss)} seeds): "
                         f"{np.mean(either):.4f} ± {np.std(either, ddof=1) if len(ss) > 1 else 0.0:.4f}")
        base_sft = sft if base_sft is None else base_sft
        for m in methods:
            vals = {k: [seeds[s]["results"][m][k] for s in ss] for k in KEYS}
            name = m if m != "conrec" else v
            if m == "sft_only" and own_sft:
                name = f"sft_only ({v}'s own)"
            cell = {k: (float(np.mean(x)), float(np.std(x, ddof=1)) if len(x) > 1 else 0.0) for k, x in vals.items()}
            row = {"seeds": ss, "mean_sd": cell}
            line = f"| {name} | {len(ss)} | " + " | ".join(f"{a:.4f} ± {b:.4f}" for a, b in cell.values())
            for base in ("sft_only", "swing"):
                c = comp.get(base, {}).get(m, {}).get("FHR@20")
                row[f"vs_{base}"] = c
                line += f" | {c['diff']:+.4f} [{c['lo']:+.4f}, {c['hi']:+.4f}] ({verdict(c)})" if c else " | –"
            if ref:
                c = None
                if m == "conrec" and v != ref and sorted(runs[ref]) == ss:
                    c = paired_diff(avg["conrec"]["FHR@20"],
                                    seed_average([runs[ref][s]["per_user"]["conrec"]["FHR@20"] for s in ss]))
                    row[f"vs_{ref}"] = c
                line += f" | {c['diff']:+.4f} [{c['lo']:+.4f}, {c['hi']:+.4f}] ({verdict(c)})" if c else " | –"
            if m == "conrec":
                acc = [sum(1 for r in seeds[s]["curriculum"] if r.get("accepted") and r["stage"] != "start")
                       for s in ss]
                row["stages_accepted"] = acc
                row["wall_min"] = [seeds[s]["seconds"] / 60 for s in ss]
                # what the shipped choice is made on: the curriculum's validation users (carved from training
                # data), never the test split
                val = [[r["val"] for r in seeds[s]["curriculum"] if r.get("accepted")] for s in ss]
                row["val_start"] = float(np.mean([v[0] for v in val]))
                row["val_best"] = float(np.mean([v[-1] for v in val]))
                # how many users RL turned each way, per seed against that seed's own SFT model
                t = [turnover(seeds[s]["per_user"]["sft_only"]["FHR@20"], seeds[s]["per_user"]["conrec"]["FHR@20"])
                     for s in ss]
                row["gained"], row["lost"] = [float(np.mean([x[k] for x in t])) for k in ("gained", "lost")]
                line += (f" | {row['val_start']:.4f} → {row['val_best']:.4f} | {'/'.join(map(str, acc))} | "
                         f"{row['gained']:.3f} / {row['lost']:.3f} | {np.median(row['wall_min']):.1f} |")
            else:
                line += " | – | – | – | – |"
            rows[name] = row
            lines.append(line)
    return rows, "\n".join(lines + ([""] + notes if notes else []))


def plot_turnover(rows: dict, out: Path) -> Path:
    """Per GRPO variant, the users RL gained (right) and lost (left) against its SFT model, net marked: a
    picture of how much of RL's movement cancels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, r in rows.items() if "gained" in r]
    gained = np.array([rows[n]["gained"] for n in names])
    lost = np.array([rows[n]["lost"] for n in names])
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.6))
    y = np.arange(len(names))
    ax.barh(y, gained, color="tab:green", label="gained (miss → hit)")
    ax.barh(y, -lost, color="tab:red", label="lost (hit → miss)")
    ax.scatter(gained - lost, y, color="black", zorder=3, label="net")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(y, names)
    ax.set_xlabel("share of test users, FHR@20, against each seed's own SFT-only model")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14 - 0.3 / len(names)), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="runs/quality")
    p.add_argument("--out", default="docs/results/quality_ml100k")
    p.add_argument("--against", default="", help="also compare every variant with this one, paired")
    p.add_argument("--seeds", type=int, nargs="+", help="only these seeds (default: every finished one)")
    p.add_argument("--plot", default="", help="also draw the users each variant gained and lost to this PNG")
    a = p.parse_args(argv)
    runs = collect(Path(a.root), a.seeds)
    if not runs:
        raise FileNotFoundError(f"no finished variant under {a.root}: run scripts/quality_sweep first")
    rows, md = table(runs, a.against)
    write_json_atomic(rows, Path(a.out + ".json"))
    write_text_atomic(md + "\n", Path(a.out + ".md"))
    if a.plot:
        plot_turnover(rows, Path(a.plot))
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
