"""`conrec bench NAME [args]`: run one benchmark of this folder (the same as `python -m bench.NAME`).

Each prints its table and writes bench/results/NAME.json; docs/BENCHMARKS.md quotes them.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

NOT_BENCHES = {"__init__", "common", "run"}


def names() -> list[str]:
    return sorted(p.stem for p in Path(__file__).parent.glob("*.py") if p.stem not in NOT_BENCHES)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    listing = "\n".join(f"  {n:<12} {(importlib.import_module(f'bench.{n}').__doc__ or '').splitlines()[0]}"
                        for n in names())
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: conrec bench NAME [args]   (NAME --help for its options)\n\nbenchmarks:\n{listing}")
        return 0
    if argv[0] not in names():
        raise ValueError(f"unknown benchmark {argv[0]!r}; one of: {', '.join(names())}")
    sys.argv = [f"conrec bench {argv[0]}", *argv[1:]]  # each bench parses sys.argv
    importlib.import_module(f"bench.{argv[0]}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
