"""`conrec eval`: one method on one dataset under the evaluation protocol; JSON out, table on screen."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field

from common.atomic import check_writable, write_json_atomic
from common.config import build, to_dict
from feedback.category_knn import CategoryKnnConfig
from feedback.split import SplitConfig
from feedback.swing import SwingConfig
from feedback.user_knn import UserKnnConfig


@dataclass
class EvalConfig:
    split: SplitConfig = field(default_factory=SplitConfig)
    swing: SwingConfig = field(default_factory=SwingConfig)
    category_knn: CategoryKnnConfig = field(default_factory=CategoryKnnConfig)
    """--method category_knn (feedback/category_knn.py)."""
    user_knn: UserKnnConfig = field(default_factory=UserKnnConfig)
    """--method user_knn (feedback/user_knn.py)."""
    seed: int = 0
    batch_size: int = 256


def main(argv: list[str] | None = None) -> int:
    from evaluation.methods import LAZY, METHODS

    p = argparse.ArgumentParser(prog="conrec eval", description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="data spec (see feedback/loaders.py)")
    p.add_argument("--method", required=True, help=f"one of {sorted(set(METHODS) | set(LAZY))}")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--out", help="write the result JSON here")
    p.add_argument("--checkpoint", help="--method model: a conrec model folder (HF weights + conrec.json)")
    p.add_argument("--sid-dir", default="", help="--method model: SID folder, if conrec.json does not name it")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. swing.alpha=1 split.horizon_days=7")
    a = p.parse_intermixed_args(argv)  # overrides may come before or after the flags
    if a.out:
        check_writable(a.out)  # before the evaluation, not after it
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = build(EvalConfig, None, a.overrides)
    if a.method not in METHODS and a.method not in LAZY:
        p.error(f"unknown method {a.method!r}; choose from {sorted(set(METHODS) | set(LAZY))}")
    if a.k <= 0:
        p.error("--k must be positive")
    if problems := cfg.split.problems():
        raise ValueError("; ".join(problems))

    from evaluation.evaluate import evaluate, one_line
    from evaluation.methods import get_method
    from feedback.loaders import load
    from feedback.split import make_split

    data = load(a.data)
    if a.k > len(data.items):
        raise ValueError(f"--k {a.k} is larger than the catalogue of {a.data} ({len(data.items)} items): lower --k")
    split = make_split(data, cfg.split)
    kwargs = {"swing": {"swing": cfg.swing}, "random": {"seed": cfg.seed},
              "category_knn": {"knn": cfg.category_knn}, "user_knn": {"knn": cfg.user_knn}}.get(a.method, {})
    if a.method == "model":
        if not a.checkpoint:
            p.error("--method model needs --checkpoint DIR")
        kwargs = {"checkpoint": a.checkpoint, "sid_dir": a.sid_dir}
    method = get_method(a.method, **kwargs)
    result = evaluate(method, split, k=a.k, batch_size=cfg.batch_size, progress=not a.no_progress)
    if a.method == "model":
        from evaluation.model_method import alignment_accuracy

        result["metrics"].update(alignment_accuracy(method.model, method.tok, method.index, split))
    result.pop("per_user")  # arrays for paired comparisons (cluster/report.py); the JSON keeps the metrics
    result["dataset"] = a.data
    result["config"] = to_dict(cfg)
    print(one_line(result))
    if a.out:
        write_json_atomic(result, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
