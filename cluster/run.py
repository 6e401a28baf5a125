"""`conrec run`: raw logs → SIDs → SFT → progressive GRPO on Ray → evaluation → report.

    conrec run --config configs/demo.yaml [dotted overrides] [--resume]

Every stage writes into RUN_DIR and is skipped when its output is already complete (`--resume`
continues after the last finished stage): sid/, sft/final/, grpo/, final/, report.json, report.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from cluster.report import load_per_user, save_per_user, seed_average, write_report, write_seeds_report
from cluster.run_config import RunConfig, validate
from common.atomic import write_json_atomic
from common.config import build, read_config, to_dict
from common.logs import ENV as LOG_ENV
from common.logs import quiet_third_party

log = logging.getLogger("conrec.run")
WHERE = {"stage": "start-up"}
"""The stage the run is in, for the one-line message of an interrupt."""


class Interrupted(BaseException):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt, so every `finally` (Ray shutdown,
    the SFT child's kill, the run lock) runs. A BaseException: no `except Exception` swallows it."""


def _interruption(e: BaseException | None) -> BaseException | None:
    """The KeyboardInterrupt or Interrupted that `e` is, or that caused it (None if neither)."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, (KeyboardInterrupt, Interrupted)):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _restore_handler(signum: int, handler) -> None:
    if handler is not None and signal.getsignal(signum) is not handler and \
            threading.current_thread() is threading.main_thread():
        signal.signal(signum, handler)


def stage_sids(cfg: RunConfig, data, run: Path) -> Path:
    from sid.build import build_sids, summary

    d = run / "sid"
    if not (d / "report.json").exists():
        WHERE["stage"] = f"semantic IDs ({d})"
        log.info("[1/5] semantic IDs → %s", d)
        _, rep = build_sids(data.items, data.category_columns, cfg.sid, d)
        log.info("\n%s", summary(rep))
    return d


def sft_split(cfg: RunConfig, split, val=None):
    """The split SFT trains on, and each user's first fresh-tail position (empty without `grpo.fresh_tail`).
    `val`: the curriculum's validation users when the caller already has them."""
    from feedback.split import fresh_tail, validation_users, without_validation_future

    if cfg.grpo.val_holdout:
        # the curriculum's validation users' last windows stay out of SFT too, so the stage acceptance
        # compares GRPO against a model that has not memorised what it is validated on
        val = val if val is not None else validation_users(split, cfg.grpo.val_users, cfg.split.seed)
        split = without_validation_future(split, val)
    return fresh_tail(split, cfg.grpo.fresh_tail) if cfg.grpo.fresh_tail else (split, {})


def _train_sft(sft, out: Path) -> None:
    """`trainer.sft` on config `sft` in its own process (DeepSpeed's torch.distributed must not live in the
    driver), resumed when `out` holds checkpoints. subprocess.run kills it when the driver is interrupted (Ctrl-C,
    or SIGTERM raised as Interrupted) before re-raising."""
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    (out / "sft.yaml").write_text(yaml.safe_dump(to_dict(sft)))
    cmd = [sys.executable, "-m", "trainer.sft", "--config", str(out / "sft.yaml")]
    if (out / "checkpoints").exists():
        cmd.append("--resume")
    # quiet: library prints on the child's stdout (DeepSpeed's op builder) go to RUN/logs
    quiet = Path(os.environ[LOG_ENV]) / "sft.stdout.log" if LOG_ENV in os.environ else None
    if quiet:
        quiet.parent.mkdir(parents=True, exist_ok=True)
    with open(quiet, "a") if quiet else contextlib.nullcontext() as f:
        rc = subprocess.run(cmd, stdout=f).returncode
    if rc in (130, -2):  # Ctrl-C reached the child first (it is in the terminal's process group too)
        raise KeyboardInterrupt
    if rc in (143, -15):
        raise Interrupted(15)
    if rc != 0:
        raise subprocess.CalledProcessError(rc, cmd)


def gate_sft_teachers(cfg: RunConfig, sft, split, out: Path) -> dict:
    """sft.tasks after the teacher gate (evaluation/teacher_gate.py); the decision goes to out/teacher_gate.json.
    With `teacher_probe`, a teacher that beats pop and Swing must also beat an SFT model trained without any
    teacher (the probe, out/probe/) on the same carved validation users, whose later events the probe never saw."""
    from evaluation.teacher_gate import RULE, RULE_PROBE, TEACHER_TASKS, gate_teachers
    from feedback.split import save_split, validation_users, without_validation_future

    probe = out / "probe"

    def train_probe() -> str:  # called by the gate only when a teacher beats pop and Swing
        if not (probe / "final" / "conrec.json").exists():
            log.info("SFT teacher probe: an SFT model without the teacher tasks, for the teacher to beat → %s", probe)
            if not (probe / "split" / "split.json").exists():
                save_split(without_validation_future(split, validation_users(split)), probe / "split")
            _train_sft(replace(sft, tasks={t: (0.0 if t in TEACHER_TASKS else w) for t, w in sft.tasks.items()},
                               run_dir=str(probe), split_dir=str(probe / "split")), probe)
        return str(probe / "final")

    # the run's split, whether resumed or not
    tasks, decisions = gate_teachers(sft.tasks, split, cfg.k, student=train_probe if cfg.teacher_probe else None)
    if decisions:
        probed = any("sft_probe" in d.get("against", {}) for d in decisions)
        write_json_atomic({"rule": RULE_PROBE if probed else RULE, "decisions": decisions}, out / "teacher_gate.json")
    return tasks


def stage_sft(cfg: RunConfig, split, sid_dir: Path, run: Path) -> Path:
    from feedback.split import save_split

    out = run / "sft"
    if (out / "final" / "conrec.json").exists():
        return out / "final"
    WHERE["stage"] = f"SFT ({out})"
    log.info("[2/5] SFT → %s", out)
    if not (out / "split" / "split.json").exists():
        n0 = len(split.train)
        held, _ = sft_split(cfg, split)
        log.info("SFT: %d of %d training events (held out: %s)", len(held.train), n0,
                 " and ".join(filter(None, [cfg.grpo.val_holdout and "the validation users' windows",
                                            cfg.grpo.fresh_tail and f"each user's last {cfg.grpo.fresh_tail:g}"]))
                 or "none")
        save_split(held, out / "split")  # the SFT process reads it: no second load and split of the data
    sft = replace(cfg.sft, data=cfg.data, sid_dir=str(sid_dir), run_dir=str(out), split=cfg.split,
                  split_dir=str(out / "split"))
    if cfg.teacher_gate:
        sft = replace(sft, tasks=gate_sft_teachers(cfg, sft, split, out))
    _train_sft(sft, out)
    return out / "final"


def stage_grpo(cfg: RunConfig, split, index, sid_dir: Path, sft_dir: Path, run: Path, resume: bool = False
               ) -> tuple[Path | None, list]:
    import ray

    from cluster.driver import Driver
    from cluster.ray_local import descendants, init_local_ray, shutdown_local_ray
    from evaluation.evaluate import evaluate
    from evaluation.model_method import ModelMethod
    from feedback.category_knn import CategoryKnn
    from feedback.split import (
        holdout_validation_windows,
        in_fresh_tail,
        latest_examples,
        training_examples,
        validation_users,
    )
    from feedback.user_knn import UserKnn
    from reward.ground_truth import build_ground_truth
    from trainer.metrics_log import MetricsLog
    from trainer.models import check_model_dir
    from trainer.prompts import context_events

    final = run / "final"
    if (final / "conrec.json").exists():
        return final, json.loads((run / "grpo" / "stages.json").read_text())
    WHERE["stage"] = f"GRPO ({run / 'grpo'})"
    log.info("[3/5] progressive GRPO on Ray")
    check_model_dir(sft_dir, index.level_sizes)  # before any actor loads it
    examples = training_examples(split, max_context=context_events(cfg.grpo.max_context_items))
    val = validation_users(split, cfg.grpo.val_users, cfg.split.seed)
    if cfg.grpo.val_holdout:
        n0 = len(examples)
        examples = holdout_validation_windows(examples, split, val)
        log.info("GRPO examples: %d of %d (those reaching into the %d validation users' windows held out)",
                 len(examples), n0, len(val.test))
    if cfg.grpo.fresh_tail:
        n0 = len(examples)
        examples = in_fresh_tail(examples, sft_split(cfg, split, val)[1])
        log.info("GRPO examples: %d of %d (cut inside each user's last %g, held out of SFT)", len(examples), n0,
                 cfg.grpo.fresh_tail)
    if cfg.grpo.examples_per_user:
        n0 = len(examples)
        examples = latest_examples(examples, cfg.grpo.examples_per_user)
        log.info("GRPO examples: %d of %d (each user's %d latest)", len(examples), n0, cfg.grpo.examples_per_user)
    rc = cfg.grpo.reward
    gt = build_ground_truth(examples, split, rc.swing_n, future_swing_n=rc.future_swing_n, weighting=rc.gts_weighting,
                            transition_n=rc.transition_n, category_n=rc.category_n,
                            category_knn=CategoryKnn(split, rc.category_knn) if rc.category_n else None,
                            user_knn_n=rc.user_knn_n, user_knn=UserKnn(split, rc.user_knn) if rc.user_knn_n else None)

    def validate_in_driver(model_dir: Path) -> np.ndarray:
        m = ModelMethod(checkpoint=str(model_dir), sid_dir=str(sid_dir))
        return evaluate(m, val, k=cfg.k, batch_size=32, progress=False)["per_user"][f"FHR@{cfg.k}"]

    # Ray's init puts its own SIGTERM handlers in place (exit at once, or reset to the default); ours must stay,
    # so that SIGTERM unwinds through the finally below like Ctrl-C does (Ray shut down, one line, exit 143)
    term = signal.getsignal(signal.SIGTERM)
    own = not ray.is_initialized() and not cfg.topology.ray_address  # a local Ray of ours, shut down at the end
    before = descendants() if own else set()
    mlog = None
    try:
        if not ray.is_initialized():
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            if cfg.topology.ray_address:
                env = {LOG_ENV: str(Path(os.environ[LOG_ENV]).resolve())} if LOG_ENV in os.environ else {}
                # armed fault hooks (common/faults.py) reach the actors on every node, as a local Ray's do
                env.update({k: v for k, v in os.environ.items() if k.startswith(("CONREC_FAULT_", "CONREC_HOLD_"))})
                ray.init(address=cfg.topology.ray_address, runtime_env={"env_vars": env},
                         log_to_driver=LOG_ENV not in os.environ,
                         logging_level=logging.WARNING if LOG_ENV in os.environ else logging.INFO)
            else:
                # workers' output goes to RUN/logs unless -v (common/logs.py); then Ray streams it to the console
                init_local_ray(max(2, os.cpu_count() or 2), cfg.topology.bind_host,
                               log_to_driver=LOG_ENV not in os.environ, prefix="cr_run_")
        _restore_handler(signal.SIGTERM, term)
        mlog = MetricsLog(run / "grpo", append=resume)
        # actors on other nodes (and their working directories) get absolute paths
        driver = Driver(replace(cfg, run_dir=str(Path(cfg.run_dir).resolve())), examples, gt, index,
                        str(Path(sft_dir).resolve()), str(Path(sid_dir).resolve()), mlog)
        if cfg.grpo.validate_on == "engines":
            def validate(model_dir: Path) -> np.ndarray:  # the engines hold the weights just saved
                return driver.engine_validation(val, cfg.k, cfg.sft.context)
        else:
            validate = validate_in_driver
        records = driver.run(validate, resume=resume)
        if records is None:
            return None, []
        write_json_atomic(records, run / "grpo" / "stages.json")
        best = driver.final_dir
        if cfg.evaluate_on == "engines":  # while the group is up; stage_eval reads the results from the caches
            engine_evaluation(cfg, split, driver, {"conrec": best, "sft_only": sft_dir}, sid_dir)
    finally:
        if mlog is not None:
            mlog.close()
        if own:  # also when interrupted during ray.init: nothing of a half-started Ray is left behind
            shutdown_local_ray(before)
        _restore_handler(signal.SIGTERM, term)
    import shutil

    if final.exists():
        shutil.rmtree(final)
    shutil.copytree(best, final)
    return final, records


def engine_evaluation(cfg: RunConfig, split, driver, models: dict, sid_dir: Path) -> None:
    """`evaluate_on: engines`: each model not yet evaluated there, on the rollout engines and learners of the
    running group (cluster/engine_eval.py); results go to the model's evaluation cache."""
    from cluster.engine_eval import evaluate_on_engines

    WHERE["stage"] = "evaluation on the engines"
    key = _eval_key(cfg, split, sid_dir, "engines")
    todo = {n: d for n, d in models.items() if _cached(Path(d), key) is None}
    if not todo:
        return
    log.info("[4/5] evaluation of %s on the rollout engines (%d test users)", ", ".join(todo), len(split.test))
    for name, r in evaluate_on_engines(driver, split, todo, cfg.k, cfg.sft.context, progress=cfg.sft.progress).items():
        _save_cached(Path(todo[name]), key, r)


def stage_eval(cfg: RunConfig, split, sid_dir: Path, models: dict, run: Path) -> tuple[dict, dict, dict]:
    """Every method on the test split: metrics, per-user values (saved to per_user.npz) for CIs, and where each
    model was evaluated ('driver', or 'engines' when `evaluate_on: engines` and the GRPO stage left the results)."""
    from evaluation.evaluate import evaluate
    from evaluation.methods import get_method
    from evaluation.model_method import ModelMethod, alignment_accuracy

    WHERE["stage"] = f"evaluation ({run})"
    log.info("[4/5] evaluation on the test split (%d users)", len(split.test))
    results, per_user, where = {}, {}, {}
    for name in ("pop", "swing", *cfg.extra_baselines):
        r = evaluate(get_method(name), split, k=cfg.k, progress=False)
        results[name], per_user[name] = r["metrics"], r["per_user"]
    for name, d in models.items():
        # a model shared by several runs (the SFT model of one seed across a sweep) is evaluated once
        on = cfg.evaluate_on
        got = _cached(Path(d), _eval_key(cfg, split, sid_dir, on))
        if got is None and on == "engines":
            log.warning("%s: no evaluation from the engines (run_grpo=false, or the run resumed after GRPO had "
                        "finished); evaluating on the driver instead, as report.json's evaluated_on says", name)
            on = "driver"
            got = _cached(Path(d), _eval_key(cfg, split, sid_dir, on))
        if got is not None:
            results[name], per_user[name] = got
            log.info("%s: evaluation reused from %s", name, Path(d) / "eval_cache")
        else:
            m = ModelMethod(checkpoint=str(d), sid_dir=str(sid_dir))
            r = evaluate(m, split, k=cfg.k, batch_size=32, progress=cfg.sft.progress)  # the minutes-long part
            r["metrics"].update(alignment_accuracy(m.model, m.tok, m.index, split))
            results[name], per_user[name] = r["metrics"], r["per_user"]
            _save_cached(Path(d), _eval_key(cfg, split, sid_dir, on), r)
        where[name] = on
    save_per_user(per_user, run / "per_user.npz")
    return results, per_user, where


def _cached(model_dir: Path, key: str) -> tuple[dict, dict] | None:
    """(metrics, per-user values) of a model's evaluation under `key`, or None."""
    cache = model_dir / "eval_cache" / key
    if (cache / "metrics.json").exists() and (cache / "per_user.npz").exists():
        return json.loads((cache / "metrics.json").read_text()), load_per_user(cache / "per_user.npz")["m"]
    return None


def _save_cached(model_dir: Path, key: str, r: dict) -> None:
    cache = model_dir / "eval_cache" / key
    save_per_user({"m": r["per_user"]}, cache / "per_user.npz")
    write_json_atomic(r["metrics"], cache / "metrics.json")  # written last: it marks the entry complete


def _eval_key(cfg: RunConfig, split, sid_dir: Path, on: str = "driver") -> str:
    """What an evaluation result depends on besides the weights: data, split, K, SIDs, test users, and where it
    ran (the engines rank by the constrained distribution; the driver's keys are those of earlier versions)."""
    import hashlib

    what = [cfg.data, to_dict(cfg.split), cfg.k, str(Path(sid_dir).resolve()), split.test["uidx"].tolist()]
    if on != "driver":
        what.append(on)
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()[:16]


def load_data(cfg: RunConfig):
    from feedback.loaders import load
    from feedback.split import make_split

    data = load(cfg.data)
    from feedback.category_knn import category_column

    if cfg.run_grpo and cfg.grpo.reward.category_n:
        category_column(data, cfg.grpo.reward.category_knn.column)  # before the minutes of SFT, not after
    if cfg.sft.tasks.get("warmup_category_knn") and not cfg.teacher_gate:  # the gate drops it instead
        category_column(data, fix="The SFT task warmup_category_knn needs one: set sft.tasks.warmup_category_knn=0 "
                                  "for a log without item categories (or teacher_gate=true to let the run drop it)")
    split = make_split(data, cfg.split)
    log.info("data: %s; %d test users", data.report.summary().replace("\n", "; "), len(split.test))
    return data, split


def run_pipeline(cfg: RunConfig, resume: bool = False, loaded=None, sid_dir: Path | None = None
                 ) -> tuple[dict, dict] | None:
    """One run: returns ({method: metrics}, {method: per-user values}), or None when stopped by a budget.
    `loaded` (data, split) and `sid_dir` let several seeds share the data, the split and the SIDs."""
    t0 = time.perf_counter()
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))
    data, split = loaded or load_data(cfg)
    sid_dir = sid_dir or stage_sids(cfg, data, run)
    from sid.index import SidIndex

    index = SidIndex.load(sid_dir)
    index.check_catalogue(data.items["item_id"].to_numpy())  # a resumed run on other data
    sft_dir = stage_sft(cfg, split, sid_dir, run)
    models = {"sft_only": sft_dir}
    records = []
    if cfg.run_grpo:
        final, records = stage_grpo(cfg, split, index, sid_dir, sft_dir, run, resume)
        if final is None:
            return None
        models["conrec"] = final
    results, per_user, where = stage_eval(cfg, split, sid_dir, models, run)
    write_report(cfg, results, per_user, records, run, time.perf_counter() - t0, evaluated_on=where)
    return results, per_user


def seeded(cfg: RunConfig, seed: int, run_dir: Path) -> RunConfig:
    """The same run under another seed: SFT (data order, model init, task sampling) and GRPO reseeded."""
    sft = replace(cfg.sft, seed=seed, model=replace(cfg.sft.model, tiny=replace(cfg.sft.model.tiny, seed=seed)))
    grpo = replace(cfg.grpo, sampling=replace(cfg.grpo.sampling, seed=seed))
    return replace(cfg, seed=seed, sft=sft, grpo=grpo, run_dir=str(run_dir))


def run_seeds(cfg: RunConfig, n_seeds: int, resume: bool = False) -> tuple[dict, dict] | None:
    """`--seeds N`: seeds cfg.seed … cfg.seed + N − 1 in RUN/seed_S (SIDs and split shared in RUN/sid),
    then RUN/report.{json,md} with mean ± sd across seeds and paired CIs. A finished seed is kept."""
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))
    data, split = load_data(cfg)
    sid_dir = stage_sids(cfg, data, run)
    seeds = [cfg.seed + i for i in range(n_seeds)]
    per_seed, per_user = {}, {}
    for s in seeds:
        d = run / f"seed_{s}"
        if (d / "report.json").exists() and (d / "per_user.npz").exists():
            per_seed[s] = json.loads((d / "report.json").read_text())["results"]
            per_user[s] = load_per_user(d / "per_user.npz")
            continue
        log.info("=== seed %d (%d of %d) → %s", s, seeds.index(s) + 1, n_seeds, d)
        out = run_pipeline(seeded(cfg, s, d), resume=resume or d.exists(), loaded=(data, split), sid_dir=sid_dir)
        if out is None:
            return None
        per_seed[s], per_user[s] = out
    # the seeds' own wall times added up: a seed finished by an earlier invocation still counts what it cost
    seconds = sum(json.loads((run / f"seed_{s}" / "report.json").read_text()).get("seconds", 0.0) for s in seeds)
    write_seeds_report(cfg, seeds, per_seed, per_user, run, seconds)
    methods = per_seed[seeds[0]]
    means = {m: {k: float(np.mean([per_seed[s][m][k] for s in seeds])) for k in methods[m]} for m in methods}
    return means, {m: {k: seed_average([per_user[s][m][k] for s in seeds]) for k in per_user[seeds[0]][m]}
                   for m in methods}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="conrec run", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="YAML (fields of cluster.run_config.RunConfig)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run (finished stages are kept)")
    p.add_argument("--seeds", type=int, default=None,
                   help="run seeds seed … seed+N−1 in RUN/seed_S (SIDs and split shared in RUN/sid) and report "
                        "mean ± sd and paired CIs in RUN/report.md; finished seeds are kept, so a later --resume "
                        "with a larger N adds seeds")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show every worker's output (Ray actors, vLLM, DeepSpeed, SFT) on the console; by default "
                        "it goes to RUN/logs/ and the console shows conrec's own lines")
    p.add_argument("overrides", nargs="*")
    a = p.parse_intermixed_args(argv)  # overrides may come before or after the flags
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = build(RunConfig, read_config(a.config), a.overrides, source=f"--config {a.config}")
    validate(cfg)
    run = Path(cfg.run_dir)
    from cluster.run_lock import LOCK_NAME, RunLock

    if run.exists() and any(f.name != LOCK_NAME for f in run.iterdir()) and not a.resume:
        raise FileExistsError(f"{run} is not empty: pass --resume to continue it, or choose another run_dir=")
    if a.seeds is not None and a.seeds < 1:
        p.error("--seeds must be ≥ 1")
    def on_term(signum, frame):
        raise Interrupted(signum)

    signal.signal(signal.SIGTERM, on_term)
    if not a.verbose:
        os.environ[LOG_ENV] = str((run / "logs").resolve())  # read by the actors and the SFT process (common/logs.py)
        quiet_third_party()
    try:
        with RunLock(run):
            out = run_seeds(cfg, a.seeds, a.resume) if a.seeds else run_pipeline(cfg, resume=a.resume)
    except BaseException as e:
        # Ctrl-C or SIGTERM; raised inside Ray's compiled wait it arrives wrapped (SystemError, with ours as cause)
        e = _interruption(e)
        if e is None:
            raise
        import shlex

        args = [shlex.quote(x) for x in (sys.argv[1:] if argv is None else argv) if x != "--resume"]
        print(f"conrec run: interrupted at {WHERE['stage']}; continue with: conrec run {' '.join(args)} --resume",
              file=sys.stderr)
        code = 143 if isinstance(e, Interrupted) else 130
        if "ray" in sys.modules:
            # the run is cleaned up by now (its finally blocks ran, the lock is released); a Ray interrupted while
            # it started can crash in its own interpreter-exit hooks (SIGSEGV, exit -11), so leave without them
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    if out is None:
        print(f"stopped by grpo.max_total_steps; continue with: conrec run --config ... run_dir={run} --resume")
        return 0
    for name, r in out[0].items():
        print(f"{name:<10} " + " ".join(f"{k}={v:.4f}" for k, v in r.items() if isinstance(v, float)))
    print(f"report: {run / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
