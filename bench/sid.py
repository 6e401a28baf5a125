"""SID build at catalogue scale: encode + RQ-VAE train + assign (+ collisions), time and peak memory.

Each size runs in a fresh process. Text goes through MiniLM where that is affordable on this
machine and through the hashing encoder beyond (`--minilm-max`); epochs shrink as the catalogue grows
so every run sees a comparable number of optimiser steps.

    python -m bench.sid [--sizes 10000 100000 1000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def _child(n: int, encoder: str, epochs: int) -> None:
    import numpy as np

    from bench.common import peak_rss_mib
    from feedback.simulator import SimConfig, _items
    from sid.build import SidConfig, build_sids
    from sid.encode import EncoderConfig
    from sid.rqvae import RQVAEConfig

    items, _, _ = _items(SimConfig(items=n, seed=0), np.random.default_rng(0))
    cfg = SidConfig(encoder=EncoderConfig(text_encoder=encoder, progress=False),
                    rqvae=RQVAEConfig(epochs=epochs, batch_size=1024, progress=False))
    t0 = time.perf_counter()
    _, rep = build_sids(items, ["category", "brand", "colour", "price_tier"], cfg)
    print(json.dumps({"items": n, "encoder": encoder, "epochs": epochs, "seconds": time.perf_counter() - t0,
                      "timing": rep["timing_s"], "peak_rss_mib": peak_rss_mib(),
                      "collisions_before": rep["collisions_before"], "collisions_after": rep["collisions_after"],
                      "collision_method": rep["collision_method"], "utilization": rep["utilization"],
                      "coherence": rep["coherence"]}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--minilm-max", type=int, default=10_000)
    p.add_argument("--child", type=int)
    p.add_argument("--encoder", default="minilm")
    p.add_argument("--epochs", type=int, default=20)
    a = p.parse_args()
    if a.child:
        _child(a.child, a.encoder, a.epochs)
        return
    from bench.common import save

    rows = []
    for n in a.sizes:
        enc = "minilm" if n <= a.minilm_max else "hashing"
        epochs = max(3, min(50, 500_000 // n))
        out = subprocess.run([sys.executable, "-m", "bench.sid", "--child", str(n), "--encoder", enc, "--epochs",
                              str(epochs)], capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f"bench.sid: {n} items failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{n:>9,} items  {enc:<7} {epochs:>2} ep  encode {r['timing']['encode']:>7.1f}s  "
              f"train {r['timing']['train']:>7.1f}s  total {r['seconds']:>7.1f}s  peak {r['peak_rss_mib']:>6.0f} MiB  "
              f"collisions {r['collisions_before']}->{r['collisions_after']} ({r['collision_method']})", flush=True)
    print("wrote", save("sid", {"rows": rows}))


if __name__ == "__main__":
    main()
