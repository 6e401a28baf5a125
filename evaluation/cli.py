"""`conrec eval`: one method on one dataset under the evaluation protocol; JSON out, table on screen."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field

from cluster.atomic import write_json_atomic
from cluster.config import build, to_dict
from feedback.split import SplitConfig
from feedback.swing import SwingConfig


@dataclass
class EvalConfig:
    split: SplitConfig = field(default_factory=SplitConfig)
    swing: SwingConfig = field(default_factory=SwingConfig)
    seed: int = 0
    batch_size: int = 256


def main(argv: list[str] | None = None) -> int:
    from evaluation.methods import METHODS

    p = argparse.ArgumentParser(prog="conrec eval", description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="data spec (see feedback/loaders.py)")
    p.add_argument("--method", required=True, help=f"one of {sorted(METHODS)}")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--out", help="write the result JSON here")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. swing.alpha=1 split.horizon_days=7")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = build(EvalConfig, None, a.overrides)
    if a.method not in METHODS:
        p.error(f"unknown method {a.method!r}; choose from {sorted(METHODS)}")
    if a.k <= 0:
        p.error("--k must be positive")

    from evaluation.evaluate import evaluate, one_line
    from evaluation.methods import get_method
    from feedback.loaders import load
    from feedback.split import make_split

    split = make_split(load(a.data), cfg.split)
    kwargs = {"swing": cfg.swing} if a.method == "swing" else {"seed": cfg.seed} if a.method == "random" else {}
    result = evaluate(get_method(a.method, **kwargs), split, k=a.k, batch_size=cfg.batch_size,
                      progress=not a.no_progress)
    result["dataset"] = a.data
    result["config"] = to_dict(cfg)
    print(one_line(result))
    if a.out:
        write_json_atomic(result, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
