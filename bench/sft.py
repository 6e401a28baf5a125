"""SFT learner throughput on this machine: tokens/s and peak memory per ZeRO stage and rank count.

Each configuration is a fresh `trainer.sft` run (torchrun for 2 ranks) of `--steps` optimizer steps on
the same data; the first steps (warm-up) are excluded from the median.

    python -m bench.sft [--data movielens-100k:../shared/data/movielens-100k --sid-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def run(data: str, sid_dir: str, stage: int, ranks: int, steps: int, micro_batch: int) -> dict:
    from common.net import free_port

    run_dir = Path(tempfile.mkdtemp(prefix=f"cr_sft_z{stage}_r{ranks}_"))
    args = ["-m", "trainer.sft", f"data={data}", f"sid_dir={sid_dir}", f"run_dir={run_dir}", f"zero_stage={stage}",
            f"max_steps={steps}", f"micro_batch={micro_batch}", "progress=false", "epochs=1", "val_frac=0"]
    cmd = [sys.executable, *args] if ranks == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks), "--master_addr", "127.0.0.1",
        "--master_port", str(free_port()), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"bench.sft: stage {stage}, {ranks} rank(s) failed:\n{proc.stderr[-3000:]}")
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    tps = [r["perf/tokens_per_s"] for r in rows if "perf/tokens_per_s" in r][5:]
    return {"zero_stage": stage, "ranks": ranks, "steps": steps, "micro_batch": micro_batch,
            "tokens_per_s_median": float(np.median(tps)), "peak_rss_mib_rank0": rows[-1]["perf/peak_rss_mib"]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="synthetic:users=600,items=1500,days=40")
    p.add_argument("--sid-dir", required=True, help="SIDs of the data's catalogue (conrec sid build)")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--micro-batch", type=int, default=32)
    a = p.parse_args()
    from bench.common import save

    rows = []
    for stage, ranks in ((1, 1), (2, 1), (1, 2), (2, 2)):
        rows.append(run(a.data, a.sid_dir, stage, ranks, a.steps, a.micro_batch))
        r = rows[-1]
        print(f"ZeRO-{stage} x{ranks} rank(s): {r['tokens_per_s_median']:>8,.0f} tokens/s (all ranks), "
              f"peak RSS rank 0 {r['peak_rss_mib_rank0']:,.0f} MiB", flush=True)
    print("wrote", save("sft", {"data": a.data, "rows": rows}))


if __name__ == "__main__":
    main()
