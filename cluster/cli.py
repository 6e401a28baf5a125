"""The `conrec` command line. Each subcommand lives in the module that owns its job."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = {
        "doctor": ("cluster.doctor", "check that Ray, vLLM, DeepSpeed and verl really run here"),
        "data": ("feedback.cli", "feedback logs: stats, split, coverage study"),
        "sid": ("sid.build", "semantic IDs: encode items, train the RQ-VAE, write codes and trie"),
        "run": ("cluster.run", "the whole pipeline: SIDs → SFT → progressive GRPO on Ray → evaluation → report"),
        "report": ("cluster.report_command", "rebuild a run's report (report.md, report.html) and print its table"),
        "sft": ("trainer.sft", "context-understanding SFT (translation, alignment, warm-up) on DeepSpeed"),
        "eval": ("evaluation.cli", "evaluate a method (pop, swing, random) under the protocol"),
        "gate": ("evaluation.teacher_gate", "would the SFT teacher tasks be kept on this log? (no training)"),
        "bench": ("bench.run", "benchmarks: rollout, reward, learner, weight_sync, e2e, ... (docs/BENCHMARKS.md)"),
    }
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        p = argparse.ArgumentParser(prog="conrec", description="CoNRec: RL post-training for negative feedback")
        p.add_argument("command", choices=list(commands))
        lines = "\n".join(f"  {k:<10} {v[1]}" for k, v in commands.items())
        if argv and argv[0] not in ("-h", "--help"):
            print(f"conrec: unknown command {argv[0]!r}. Commands:\n{lines}", file=sys.stderr)
            return 2
        usage = f"usage: conrec COMMAND [options]\n\ncommands:\n{lines}"
        if not argv:  # no command is a mistake (exit 2), as argparse treats a missing argument
            print(usage, file=sys.stderr)
            return 2
        print(usage)
        return 0
    import importlib
    import os

    if "DS_ACCELERATOR" not in os.environ and not any(os.path.exists(d) for d in ("/dev/nvidiactl", "/dev/kfd")):
        # no GPU device here: tell DeepSpeed (and the processes we start) instead of letting each of them
        # warn that it "was unable to detect" one
        os.environ["DS_ACCELERATOR"] = "cpu"
    mod = importlib.import_module(commands[argv[0]][0])
    try:
        return int(mod.main(argv[1:]) or 0)
    except Exception as e:
        cause = user_error(e)
        if cause is None or os.environ.get("CONREC_DEBUG"):
            raise
        print(f"conrec {argv[0]}: error: {cause}", file=sys.stderr)
        print("  (set CONREC_DEBUG=1 for the traceback)", file=sys.stderr)
        return 2


def user_error(e: BaseException) -> BaseException | None:
    """The user-facing error behind `e` (bad data, config, paths, a failing reward plug-in, also when
    raised inside a Ray actor), whose message already says where and how to fix; None for a bug."""
    from cluster.placement import PlacementError
    from reward.plugins import PluginError

    kinds = (ValueError, FileNotFoundError, FileExistsError, PluginError, PlacementError)
    seen = e
    while seen is not None:
        if isinstance(seen, kinds):
            return getattr(seen, "cause", None) if isinstance(getattr(seen, "cause", None), kinds) else seen
        seen = seen.__cause__
    return None


if __name__ == "__main__":
    sys.exit(main())
