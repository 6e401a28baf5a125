"""How much does the rollout engines' ranking change the figures? `evaluate_on: engines` ranks by the
constrained distribution (each SID level renormalised over the trie's open values); the protocol ranks by the
raw log-probs of those values. tests/test_vllm_engine.py checks that the engines' beams equal the HF trie beam
search with `renormalize=True`, so the two rankings can be compared here on the driver, without Ray:

    python -m bench.engine_ranking --run RUN [--run RUN ...] [--users test|validation] \
        [--out docs/results/engine_ranking_NAME]

For each run (a `conrec run` folder: its config.json names the data and the split) and each of its models
(RUN/sft/final, RUN/final), both rankings on the run's test users (or the curriculum's validation users): per
metric the paired difference (renormalised − raw) with its 95 % bootstrap CI, the share of users whose top-K
lists are the same set, and the mean overlap of the two top-K sets; with several runs (seeds of one split),
CoNRec − SFT-only under each ranking on seed-averaged users. Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

KEYS = ["HR@20", "FHR@20", "LUF@20", "LIF@20", "CandAcc"]


def compare_rankings(model_dir: Path, sid_dir: Path, split, k: int) -> dict:
    from common.stats import paired_diff
    from evaluation.evaluate import evaluate
    from evaluation.model_method import ModelMethod

    class Recording(ModelMethod):
        def recommend(self, test_rows, k):
            out = super().recommend(test_rows, k)
            self.lists.append(out)
            return out

    res, lists, secs = {}, {}, {}
    for mode in ("raw", "renormalized"):
        m = Recording(checkpoint=str(model_dir), sid_dir=str(sid_dir), renormalize=mode == "renormalized")
        m.lists = []
        t0 = time.perf_counter()
        res[mode] = evaluate(m, split, k=k, batch_size=32, progress=False)
        secs[mode] = round(time.perf_counter() - t0, 1)
        lists[mode] = np.concatenate(m.lists)
    a, b = lists["renormalized"], lists["raw"]
    overlap = np.array([len(set(x[x >= 0]) & set(y[y >= 0])) / max(len(set(y[y >= 0])), 1) for x, y in zip(a, b)])
    return {
        "per_user": {mode: res[mode]["per_user"] for mode in res},
        "model": str(model_dir),
        "n_users": int(len(a)),
        "raw": res["raw"]["metrics"],
        "renormalized": res["renormalized"]["metrics"],
        "diff": {key: paired_diff(res["renormalized"]["per_user"][key], res["raw"]["per_user"][key])
                 for key in KEYS if key in res["raw"]["per_user"]},
        "same_topk_set": float(np.mean(overlap == 1.0)),
        "mean_topk_overlap": float(overlap.mean()),
        "seconds": secs,
    }


def seed_averaged(rows: list[dict]) -> dict:
    """CoNRec − SFT-only under each ranking, on per-user values averaged over the runs (seeds of one split), with
    paired bootstrap CIs; {} unless every run has both models on the same users."""
    from common.stats import paired_diff

    runs = sorted({r["run"] for r in rows})
    by = {(r["run"], r["method"]): r["per_user"] for r in rows}
    if not runs or any((run, m) not in by for run in runs for m in ("sft_only", "conrec")):
        return {}
    if len({len(by[(run, "conrec")]["raw"]["FHR@20"]) for run in runs}) != 1:
        return {}
    out: dict = {"n_runs": len(runs)}
    for mode in ("raw", "renormalized"):
        avg = {m: {k: np.mean([by[(run, m)][mode][k] for run in runs], 0) for k in KEYS}
               for m in ("sft_only", "conrec")}
        out[mode] = {k: paired_diff(avg["conrec"][k], avg["sft_only"][k]) for k in KEYS}
    return out


def main(argv=None) -> None:
    from bench.common import machine
    from cluster.run import load_data
    from cluster.run_config import RunConfig
    from common.atomic import write_json_atomic, write_text_atomic
    from common.config import build

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", action="append", required=True, help="a finished `conrec run` folder (repeatable)")
    ap.add_argument("--data", default="", help="override the run's data spec (e.g. a local path)")
    ap.add_argument("--users", choices=["test", "validation"], default="test",
                    help="the run's test users, or the curriculum's validation users carved from training data (what "
                         "a choice between the rankings may be made on)")
    ap.add_argument("--out", default="bench/results/engine_ranking")
    a = ap.parse_args(argv)
    rows = []
    for run in map(Path, a.run):
        cfg = build(RunConfig, (run / "config.json").read_text())  # JSON is YAML
        if a.data:
            cfg.data = a.data
        _, split = load_data(cfg)
        if a.users == "validation":
            from feedback.split import validation_users

            split = validation_users(split, cfg.grpo.val_users, cfg.split.seed)
        sid_dir = run / "sid" if (run / "sid").exists() else run.parent / "sid"
        for name, d in (("sft_only", run / "sft" / "final"), ("conrec", run / "final")):
            if (d / "conrec.json").exists():
                r = compare_rankings(d, sid_dir, split, cfg.k)
                rows.append({"run": str(run), "method": name, **r})
                print(f"{run} {name}: FHR@{cfg.k} raw {r['raw'][f'FHR@{cfg.k}']:.4f} renormalized "
                      f"{r['renormalized'][f'FHR@{cfg.k}']:.4f}; same top-K set {r['same_topk_set']:.3f}", flush=True)
    seeds = seed_averaged(rows)
    for r in rows:
        r.pop("per_user")
    out = Path(a.out)
    write_json_atomic({"bench": "engine_ranking", "machine": machine(), "rows": rows, "conrec_vs_sft_only": seeds},
                      out.with_suffix(".json"))
    lines = ["| run | model | users | FHR@20 raw | FHR@20 renormalised | Δ FHR@20 [95 % CI] | Δ HR@20 [95 % CI] | "
             "same top-K set | mean top-K overlap |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f, h = r["diff"]["FHR@20"], r["diff"]["HR@20"]
        lines.append(f"| {Path(r['run']).name} | {r['method']} | {r['n_users']} | {r['raw']['FHR@20']:.4f} | "
                     f"{r['renormalized']['FHR@20']:.4f} | {f['diff']:+.4f} [{f['lo']:+.4f}, {f['hi']:+.4f}] | "
                     f"{h['diff']:+.4f} [{h['lo']:+.4f}, {h['hi']:+.4f}] | {r['same_topk_set']:.3f} | "
                     f"{r['mean_topk_overlap']:.3f} |")
    if seeds:
        lines += ["", f"CoNRec − SFT-only, paired on users averaged over the {seeds['n_runs']} runs:", "",
                  "| ranking | " + " | ".join(f"Δ {k} [95 % CI]" for k in KEYS) + " |", "|---" * (len(KEYS) + 1) + "|"]
        for mode in ("raw", "renormalized"):
            cells = [f"{c['diff']:+.4f} [{c['lo']:+.4f}, {c['hi']:+.4f}]" for c in (seeds[mode][k] for k in KEYS)]
            lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    write_text_atomic("\n".join(lines) + "\n", out.with_suffix(".md"))
    print("\n".join(lines))
    print(json.dumps({"written": str(out.with_suffix(".json"))}))


if __name__ == "__main__":
    main()
