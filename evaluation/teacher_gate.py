"""Is a kNN teacher worth distilling into SFT on this log? Judged on validation users carved from training data.

The SFT tasks `warmup_category_knn` and `warmup_user_knn` (trainer/prompts.py) teach the model a user-kNN's items.
On the simulator the category-level kNN is far above pop and distilling it lifts SFT-only by +0.04 FHR@20; on
MovieLens-100k the same kNN over genres is below pop (docs/BENCHMARKS.md), and teaching a model a teacher
worse than popularity can only pull it down. A shipped config is also run on logs nobody here has seen, so the
choice is made per log, by a rule written down: a teacher task is kept when the teacher's FHR@K beats both pop's
and Swing's on the carved validation users, each paired 95 % CI above 0, and its weight is set to 0 otherwise.

That is necessary, not sufficient: on MovieLens-100k the item-level kNN passes (+0.059 over Swing), yet distilling
it lowered CoNRec by −0.041 [−0.070, −0.012] on validation users, because it is only level with the SFT model
there; on the simulator it was far above the SFT model and distillation paid about what the gap was. So
`conrec run` (with `teacher_probe`) also trains an SFT model without the teacher on the training events minus the
carved users' later ones, and the teacher must beat that student too (`student=`).
"""

from __future__ import annotations

import logging

from common.stats import paired_diff
from evaluation.evaluate import evaluate
from evaluation.methods import get_method
from feedback.category_knn import has_category_column
from feedback.split import Split, validation_users

log = logging.getLogger(__name__)

TEACHER_TASKS = {"warmup_category_knn": "category_knn", "warmup_user_knn": "user_knn"}
"""SFT task → the evaluation method that is its teacher (the kNN with its default config, as the task builds it)."""
RULE = ("kept when the teacher's FHR@K beats pop's and Swing's (paired 95 % CIs above 0) on the validation users "
        "carved from the training events")
"""The rule, as RUN/sft/teacher_gate.json states it."""
RULE_PROBE = RULE.replace("pop's and Swing's", "pop's, Swing's and an SFT probe's (the same SFT without teacher "
                          "tasks, trained without those users' later events)")
"""The rule with `teacher_probe`."""
BASELINES = ("pop", "swing")
"""What a teacher must beat. Swing too, not only pop: on MovieLens-100k Swing is above pop, yet Swing's items as SFT
targets lowered SFT-only by −0.032 [−0.056, −0.007] (docs/BENCHMARKS.md, `warmup_swing`)."""


def gate_teachers(tasks: dict, split: Split, k: int = 20, baselines: tuple = BASELINES,
                  student=None) -> tuple[dict, list[dict]]:
    """`tasks` (SFT task → weight) with each teacher task whose teacher does not beat every one of `baselines` set
    to weight 0, and one decision per teacher task asked for: its teacher, FHR@K of teacher and baselines, the
    paired differences with CIs, and whether it was kept. Every user the protocol carves from `split`'s training
    events validates (more than the curriculum's sample: a gate on 100-200 users would be decided by noise).
    `student`: a model folder the teacher must beat too, as baseline `sft_probe` (the SFT probe, trained without
    those users' later events), or a function that returns one; either is used only when some teacher beats every
    baseline, so a function may train the probe then."""
    asked = [t for t, w in tasks.items() if w and t in TEACHER_TASKS]
    if not asked:
        return dict(tasks), []
    val = validation_users(split)
    key = f"FHR@{k}"
    base = {b: evaluate(get_method(b), val, k=k, progress=False) for b in baselines}
    out, decisions, scored = dict(tasks), [], {}
    for task in asked:
        teacher = TEACHER_TASKS[task]
        if teacher == "category_knn" and not has_category_column(split.data):
            log.warning("SFT teacher gate: %s dropped (weight 0): %s has no item category column", task,
                        split.data.name)
            decisions.append({"task": task, "teacher": teacher, "kept": False, "reason": "no item category column"})
            out[task] = 0.0
            continue
        scored[task] = evaluate(get_method(teacher), val, k=k, progress=False)["per_user"][key]
    if student and any(all(paired_diff(v, b["per_user"][key])["lo"] > 0 for b in base.values())
                       for v in scored.values()):
        path = student() if callable(student) else student
        base["sft_probe"] = evaluate(get_method("model", checkpoint=path), val, k=k, progress=False)
    for task, v in scored.items():
        vs = {}
        for b, rb in base.items():
            c = paired_diff(v, rb["per_user"][key])
            vs[b] = {"value": rb["metrics"][key], "diff": c["diff"], "lo": c["lo"], "hi": c["hi"]}
        keep = all(x["lo"] > 0 for x in vs.values())
        decisions.append({"task": task, "teacher": TEACHER_TASKS[task], "users": int(len(val.test)), "metric": key,
                          "teacher_value": float(v.mean()), "against": vs, "kept": keep})
        log.info("SFT teacher gate: %s (%s) %s %.4f on %d validation users; %s → %s", task, TEACHER_TASKS[task], key,
                 v.mean(), len(val.test),
                 ", ".join(f"vs {b} {x['value']:.4f}: {x['diff']:+.4f} [{x['lo']:+.4f}, {x['hi']:+.4f}]"
                           for b, x in vs.items()),
                 "kept" if keep else f"dropped (weight 0): not above {' and '.join(base)}")
        if not keep:
            out[task] = 0.0
    return out, decisions


def table(decisions: list[dict]) -> str:
    """The decisions as a markdown table (one row per teacher task)."""
    against = list(dict.fromkeys(b for d in decisions for b in d.get("against", {})))
    rows = ["| task | teacher | users | FHR@K | " + " | ".join(f"vs {b} [95 % CI]" for b in against) + " | kept |",
            "|---" * (5 + len(against)) + "|"]
    for d in decisions:
        if "against" not in d:
            rows.append(f"| {d['task']} | {d['teacher']} | | | {'| ' * len(against)}no ({d['reason']}) |")
            continue
        vs = [d["against"].get(b) for b in against]
        cells = [f"{v['value']:.4f} → {v['diff']:+.4f} [{v['lo']:+.4f}, {v['hi']:+.4f}]" if v else "" for v in vs]
        rows.append(f"| {d['task']} | {d['teacher']} | {d['users']} | {d['teacher_value']:.4f} | "
                    + " | ".join(cells) + f" | {'yes' if d['kept'] else 'no'} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """`conrec gate --data SPEC`: what the teacher gate of `conrec run` would decide on a log, without training."""
    import argparse

    from common.atomic import check_writable, write_json_atomic
    from common.config import build
    from feedback.loaders import load
    from feedback.split import SplitConfig, make_split

    p = argparse.ArgumentParser(prog="conrec gate", description=main.__doc__.split(": ", 1)[1])
    p.add_argument("--data", required=True, help="data spec (see feedback/loaders.py)")
    p.add_argument("--tasks", nargs="+", default=list(TEACHER_TASKS), choices=list(TEACHER_TASKS),
                   help="teacher tasks to judge (default: all)")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--out", help="write the decisions here (JSON, as RUN/sft/teacher_gate.json)")
    p.add_argument("--student", help="a model the teachers must beat too: a run's SFT probe (RUN/sft/probe/final), "
                   "which never saw the carved users' later events (a model that saw them is no fair student)")
    p.add_argument("overrides", nargs="*", help="split overrides as `conrec run` takes them, e.g. "
                   "split.validation_run=true (the gate of a validation run: the training events carved twice)")
    a = p.parse_intermixed_args(argv)
    if a.k <= 0:
        p.error("--k must be positive")
    if a.out:
        check_writable(a.out)  # before the evaluation, not after it
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    bad = [o for o in a.overrides if not o.startswith("split.")]
    if bad:
        p.error(f"only split.* overrides are taken here, not {bad}: the teachers run with their default config, "
                "as the SFT tasks build them")
    cfg = build(SplitConfig, None, [o.removeprefix("split.") for o in a.overrides])
    if problems := cfg.problems():
        raise ValueError("; ".join(problems))
    split = make_split(load(a.data), cfg)
    _, decisions = gate_teachers({t: 1.0 for t in a.tasks}, split, a.k, student=a.student)
    print(table(decisions))
    if a.out:
        write_json_atomic({"rule": RULE_PROBE if a.student else RULE, "data": a.data, "split": a.overrides,
                           "student": a.student, "decisions": decisions}, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
