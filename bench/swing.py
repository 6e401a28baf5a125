"""Swing on the negative-feedback graph: vectorised (feedback/swing.py) vs plain pure Python.

Each measurement runs in a fresh subprocess so its peak memory is its own. The ratio is taken on a
graph small enough for the pure-Python loop; the vectorised code then runs on >= 1M negative events.

    python -m bench.swing [--events 1000000] [--small 200000] [--cap 1000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np


def negative_graph(n_events: int, seed: int = 0):
    """A user–item negative graph with Zipf item popularity and log-normal user activity."""
    rng = np.random.default_rng(seed)
    n_users = max(n_events // 20, 10)
    n_items = max(n_events // 10, 10)
    act = rng.lognormal(0, 0.8, n_users)
    users = rng.choice(n_users, n_events, p=act / act.sum())
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.9
    items = rng.choice(n_items, n_events, p=pop / pop.sum())
    return users, items, n_users, n_items


def _child(kind: str, n_events: int, cap: int) -> None:
    from bench.common import peak_rss_mib
    from feedback.swing import SwingConfig, swing_python, swing_similarity, user_item_matrix

    u, i, nu, ni = negative_graph(n_events)
    base = peak_rss_mib()
    t0 = time.perf_counter()
    if kind == "python":
        ui: dict = {}
        for a, b in zip(u.tolist(), i.tolist()):
            ui.setdefault(a, set()).add(b)
        sims = swing_python(ui)
        nnz = len(sims)
    else:
        S = swing_similarity(user_item_matrix(u, i, nu, ni), SwingConfig(topn=0, max_users_per_item=cap))
        nnz = S.nnz
    dt = time.perf_counter() - t0
    print(json.dumps({"kind": kind, "events": n_events, "users": nu, "items": ni, "seconds": dt, "pairs": nnz,
                      "peak_rss_mib": peak_rss_mib(), "rss_before_mib": base, "max_users_per_item": cap}))


def run(kind: str, n_events: int, cap: int = 0) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.swing", "--child", kind, "--events", str(n_events),
                          "--cap", str(cap)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--small", type=int, default=200_000)
    p.add_argument("--cap", type=int, default=1000, help="max_users_per_item for the large run (0 = none)")
    p.add_argument("--child")
    a = p.parse_args()
    if a.child:
        _child(a.child, a.events, a.cap)
        return
    from bench.common import save

    rows = [run("python", a.small), run("vectorised", a.small), run("vectorised", a.events, a.cap)]
    ratio = rows[0]["seconds"] / rows[1]["seconds"]
    assert rows[0]["pairs"] == rows[1]["pairs"], "vectorised and pure-Python Swing disagree on the pair count"
    print(f"{'implementation':<12} {'neg events':>11} {'users':>8} {'items':>8} {'seconds':>9} {'pairs':>11} "
          f"{'peak MiB':>9}")
    for r in rows:
        print(f"{r['kind']:<12} {r['events']:>11,} {r['users']:>8,} {r['items']:>8,} {r['seconds']:>9.2f} "
              f"{r['pairs']:>11,} {r['peak_rss_mib']:>9.0f}")
    print(f"speed-up on {a.small:,} events: {ratio:.0f}x")
    print("wrote", save("swing", {"rows": rows, "speedup_small": ratio}))


if __name__ == "__main__":
    main()
