"""SFT-only study on validation users: SID shapes × SFT budgets × seeds, against pop and Swing.

    python -m bench.sft_study --data SPEC --out DIR --seeds 0 1 2 \\
        --variant base: --variant cb16:sid.rqvae.codebook_size=16 --variant e8:sft.epochs=8

Every run uses `split.validation_run=true` (the training events cut again; the test split is never
read), so this is what a shipped budget may be tuned on. A variant is NAME:OVERRIDES, overrides
separated by spaces, `sid.` ones go to `conrec sid build` (SIDs built once per distinct SID setting,
shared by the seeds), `sft.` ones to `conrec sft`. Per variant and seed: DIR/<variant>/seed_S/
{sft/, per_user.npz, result.json}; DIR/results.jsonl gets one line per finished run, and DIR/table.md
the table (mean ± sd over seeds; paired bootstrap CIs on seed-averaged users against pop and the
first variant). Finished runs are skipped on a rerun, so an interrupted study continues.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from cluster.report import save_per_user
from common.atomic import write_json_atomic, write_npz_atomic, write_text_atomic

KEYS = ["HR@20", "FHR@20", "LUF@20", "LIF@20", "CandAcc"]


def parse_variant(text: str) -> tuple[str, dict[str, list[str]]]:
    name, _, rest = text.partition(":")
    if not name:
        raise SystemExit(f"--variant {text!r}: expected NAME:OVERRIDES (e.g. cb16:sid.rqvae.codebook_size=16)")
    parts: dict[str, list[str]] = {"sid": [], "sft": []}
    for o in rest.split():
        where, _, ov = o.partition(".")
        if where not in parts or "=" not in ov:
            raise SystemExit(f"--variant {name}: override {o!r} must start with sid. or sft. and hold '='")
        parts[where].append(ov)
    return name, parts


def _run(cmd: list[str], log: Path) -> None:
    with open(log, "w") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode:
        tail = log.read_text().splitlines()[-15:]
        raise RuntimeError(f"{' '.join(cmd[:4])} … failed (exit {r.returncode}); log {log}:\n" + "\n".join(tail))


def sid_dir_for(out: Path, data: str, sid_overrides: list[str]) -> Path:
    key = hashlib.sha1(" ".join([data] + sorted(sid_overrides)).encode()).hexdigest()[:10]
    d = out / "sids" / key
    if not (d / "report.json").exists():
        d.parent.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "sid.build", "build", "--data", data, "--out", str(d), *sid_overrides,
              "encoder.progress=false", "rqvae.progress=false"], d.parent / f"{key}.log")
    return d


def evaluate_model(data: str, checkpoint: Path, baselines: bool) -> dict:
    from evaluation.evaluate import evaluate
    from evaluation.methods import get_method
    from feedback.loaders import load
    from feedback.split import SplitConfig, make_split

    split = make_split(load(data), SplitConfig(validation_run=True))
    out = {"model": evaluate(get_method("model", checkpoint=str(checkpoint)), split, progress=False)}
    if baselines:
        for m in ("pop", "swing"):
            out[m] = evaluate(get_method(m), split, progress=False)
    return out


def one_run(a, name: str, parts: dict, seed: int) -> dict:
    run = Path(a.out) / name / f"seed_{seed}"
    if (run / "result.json").exists():
        return json.loads((run / "result.json").read_text())
    run.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    sid = Path(a.sid_dir) if a.sid_dir else sid_dir_for(Path(a.out), a.data, parts["sid"])
    t1 = time.time()
    cmd = [sys.executable, "-m", "trainer.sft", "--config", a.sft_config, f"data={a.data}", f"sid_dir={sid}",
           f"run_dir={run / 'sft'}", f"seed={seed}", f"model.tiny.seed={seed}", "split.validation_run=true",
           "progress=false", *parts["sft"]]
    _run(cmd, run / "sft.log")
    t2 = time.time()
    base = Path(a.out) / "baselines.npz"
    ev = evaluate_model(a.data, run / "sft" / "final", baselines=not base.exists())
    if "pop" in ev:  # atomic: studies may run side by side in one folder
        save_per_user({m: {k: ev[m]["per_user"][k] for k in KEYS} for m in ("pop", "swing")}, base)
        write_json_atomic({m: ev[m]["metrics"] for m in ("pop", "swing")}, Path(a.out) / "baselines.json")
    write_npz_atomic({k: ev["model"]["per_user"][k] for k in KEYS}, run / "per_user.npz")
    res = {"variant": name, "seed": seed, "sid": parts["sid"], "sft": parts["sft"],
           "sid_s": round(t1 - t0, 1), "sft_s": round(t2 - t1, 1), "eval_s": round(time.time() - t2, 1),
           "n_users": ev["model"]["n_test_users"], **ev["model"]["metrics"]}
    write_json_atomic(res, run / "result.json")
    with open(Path(a.out) / "results.jsonl", "a") as f:
        f.write(json.dumps(res) + "\n")
    print(json.dumps(res), flush=True)
    return res


def _mean_sd(x: list) -> str:
    return f"{np.mean(x):.4f} ± {np.std(x, ddof=1) if len(x) > 1 else 0:.4f}"


def _ci(c: dict) -> str:
    from common.stats import verdict

    return f"{c['diff']:+.4f} [{c['lo']:+.4f}, {c['hi']:+.4f}] ({verdict(c)})"


def table(out: Path, names: list[str], seeds: list[int]) -> str:
    from cluster.report import load_per_user, seed_average
    from common.stats import paired_diff

    pu = load_per_user(out / "baselines.npz")
    base_m = json.loads((out / "baselines.json").read_text())
    rows = [f"| {m} | – | " + " | ".join(f"{base_m[m][k]:.4f}" for k in KEYS) + " | | | |" for m in ("pop", "swing")]
    ref = None
    for n in names:
        done = [s for s in seeds if (out / n / f"seed_{s}" / "result.json").exists()]
        if not done:
            continue
        res = [json.loads((out / n / f"seed_{s}" / "result.json").read_text()) for s in done]
        arrs = {}
        for s in done:
            with np.load(out / n / f"seed_{s}" / "per_user.npz") as z:
                for k in KEYS:
                    arrs.setdefault(k, []).append(z[k])
        avg = {k: seed_average(v) for k, v in arrs.items()}
        ref = ref or (n, avg, done)
        cells = " | ".join(_mean_sd([r[k] for r in res]) for k in KEYS)
        vs_pop = paired_diff(avg["FHR@20"], pu["pop"]["FHR@20"])
        vs_ref = paired_diff(avg["FHR@20"], ref[1]["FHR@20"]) if ref[0] != n else None
        rows.append(f"| {n} ({len(done)} seeds) | {' '.join(res[0]['sid'] + res[0]['sft']) or 'defaults'} | {cells} | "
                    f"{_ci(vs_pop)} | {_ci(vs_ref) if vs_ref else '–'} | "
                    f"{np.median([r['sft_s'] for r in res]):.0f} |")
    head = ("| variant | overrides | " + " | ".join(KEYS) + " | Δ FHR@20 vs pop [95 % CI] | "
            f"Δ FHR@20 vs {ref[0] if ref else 'first'} [95 % CI] | SFT s (median) |")
    return "\n".join([head, "|---" * (head.count("|") - 1) + "|", *rows])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--sft-config", default="configs/sft_demo.yaml")
    p.add_argument("--sid-dir", default="", help="use this SID folder (then variants take no sid. overrides)")
    p.add_argument("--no-table", action="store_true", help="runs only (several studies share one --out)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variant", action="append", required=True, help="NAME:OVERRIDES (see the module doc)")
    a = p.parse_args(argv)
    variants = [parse_variant(v) for v in a.variant]
    Path(a.out).mkdir(parents=True, exist_ok=True)
    for seed in a.seeds:  # seed-major: an interrupted study still has every variant at the first seeds
        for name, parts in variants:
            one_run(a, name, parts, seed)
    if a.no_table:
        return 0
    md = table(Path(a.out), [n for n, _ in variants], a.seeds)
    write_text_atomic(md + "\n", Path(a.out) / "table.md")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
