"""Simulator throughput: events/s and peak memory for a log of about `--events` events.

    python -m bench.simulator [--events 1000000]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    from bench.common import peak_rss_mib, save
    from feedback.simulator import SimConfig, simulate

    # calibrate users from a small run (events grow linearly with users)
    small = SimConfig(users=1000, items=5000, days=60, seed=a.seed)
    per_user = len(simulate(small)[0]) / small.users
    cfg = SimConfig(users=int(a.events / per_user) + 1, items=20000, days=60, seed=a.seed)
    t0 = time.perf_counter()
    events, items, truth = simulate(cfg)
    dt = time.perf_counter() - t0
    res = {"users": cfg.users, "items": cfg.items, "days": cfg.days, "events": len(events), "seconds": dt,
           "events_per_s": len(events) / dt, "peak_rss_mib": peak_rss_mib(),
           "negative_share": float((events.feedback == "negative").mean())}
    print(f"{res['events']:,} events ({cfg.users:,} users, {cfg.items:,} items, {cfg.days} days) in {dt:.1f}s: "
          f"{res['events_per_s']:,.0f} events/s, peak RSS {res['peak_rss_mib']:.0f} MiB")
    print("wrote", save("simulator", res))


if __name__ == "__main__":
    main()
