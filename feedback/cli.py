"""`conrec data ...`: inspect a log, export its split and examples, run the coverage study."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from common.atomic import check_writable, write_json_atomic, write_parquet_parts_atomic
from common.config import build
from feedback.split import SplitConfig


@dataclass
class DataCommandConfig:
    split: SplitConfig = field(default_factory=SplitConfig)
    max_context: int = 50
    """Context events kept per training example (newest)."""
    swing_n: int = 20
    """Coverage study: Swing neighbours added to the future negatives."""
    gts_swing_n: int = 50
    """Reward ground truth (split): Swing neighbours of the context negatives added to each GTS."""
    users_per_chunk: int = 20_000
    """split: training examples and their ground truth are built and written this many users at a time."""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="conrec data", description="Feedback logs: report, split, coverage study.")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, help_ in (("stats", "validate the log and print its data report"),
                        ("split", "write the split, the training examples and their reward ground truth (Parquet)"),
                        ("coverage", "the paper's next-negative vs future-negative coverage study (simulator)")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--data", required=True, help="data spec, e.g. movielens-100k:PATH or synthetic:users=2000")
        s.add_argument("--out", help="output file (stats/coverage: JSON) or folder (split)")
        s.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. split.horizon_days=7")
    f = sub.add_parser("fetch", help="download a public dataset by name into the cache ($CONREC_DATA or "
                                     "~/.cache/conrec), check and unpack it; print its data spec")
    f.add_argument("name", nargs="?", help="dataset name (--list shows them)")
    f.add_argument("--list", action="store_true", help="list the known datasets")
    f.add_argument("--url", help="another source for the same archive (a mirror, a file:// path)")
    f.add_argument("--sha256", help="pin the archive's SHA-256")
    a = p.parse_args(argv)
    if a.cmd == "fetch":
        return fetch_command(a, p)
    if a.out:
        check_writable(a.out, "folder" if a.cmd == "split" else "file")  # before the work, not after it
    cfg = build(DataCommandConfig, None, a.overrides)

    from feedback.loaders import load

    data = load(a.data)
    if a.cmd == "stats":
        print(data.report.summary())
        if a.out:
            write_json_atomic(data.report.to_dict(), a.out)
        return 0

    from feedback.split import make_split

    split = make_split(data, cfg.split)
    if a.cmd == "split":
        if not a.out:
            p.error("split needs --out FOLDER")
        out = Path(a.out)
        from feedback.split import save_split
        from reward.ground_truth import chunked_ground_truth

        def parts():  # a chunk of users at a time: one example per context negative is millions at 10 M events
            for ex, gt in chunked_ground_truth(split, cfg.max_context, cfg.users_per_chunk, cfg.gts_swing_n):
                yield ex.assign(gts=[gt.gts(i) for i in range(len(gt))], fps=[gt.fps(i) for i in range(len(gt))])

        n_ex = write_parquet_parts_atomic(parts(), out / "examples.parquet")
        write_hf_dataset(out, {"train": split.train, "test": split.test, "examples": out / "examples.parquet"})
        # the split itself, readable with feedback.split.load_split (split.json, written last, marks it done)
        save_split(split, out, {"data": a.data, "n_examples": n_ex})
        print(f"wrote {out}: {len(split.train):,} training events, {len(split.test):,} test users, "
              f"{n_ex:,} training examples")
        return 0

    from evaluation.coverage import coverage_study

    res = coverage_study(split, swing_n=cfg.swing_n)
    res["dataset"] = a.data
    print(f"{'covered by':<26} {'top-1':>7} {'top-4':>7} {'items':>7}   ({res['n_users']} test users)")
    for name, row in res["coverage"].items():
        print(f"{name:<26} {row['top1']:>7.3f} {row['top4']:>7.3f} {row['mean_set_size']:>7.1f}")
    if a.out:
        write_json_atomic(res, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())


def fetch_command(a, p) -> int:
    from feedback.fetch import DATASETS, cache_dir, fetch

    if a.list or not a.name:
        if not a.list:
            p.error("fetch needs a dataset NAME (or --list)")
        for name, ds in DATASETS.items():
            print(f"{name:<16} {ds.note}  [{ds.url}]")
        print(f"cache: {cache_dir()}")
        return 0
    folder = fetch(a.name, a.url, a.sha256)
    print(f"{a.name}: {folder}\ndata spec: {a.name}  (or {DATASETS[a.name].kind}:{folder})")
    return 0


def write_hf_dataset(out: Path, frames: dict) -> None:
    """The split as a Hugging Face `DatasetDict` in OUT/hf (`datasets.load_from_disk`), for training code that
    reads datasets rather than Parquet; written beside and renamed into place, so it is whole or absent."""
    import shutil

    from datasets import Dataset, DatasetDict

    tmp, final, cache = out / ".hf.tmp", out / "hf", out / ".hf.cache"
    for d in (tmp, cache):
        shutil.rmtree(d, ignore_errors=True)
    try:
        # a Parquet file goes through Arrow (memory-mapped, converted into `cache`), not one in-memory DataFrame
        DatasetDict({k: Dataset.from_parquet(str(v), cache_dir=str(cache)) if isinstance(v, Path)
                     else Dataset.from_pandas(v.reset_index(drop=True), preserve_index=False)
                     for k, v in frames.items()}).save_to_disk(str(tmp))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)

