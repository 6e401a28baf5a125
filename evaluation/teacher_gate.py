"""Is a kNN teacher worth distilling into SFT on this log? Judged on validation users carved from training data.

The SFT tasks `warmup_category_knn` and `warmup_user_knn` (trainer/prompts.py) teach the model a user-kNN's items.
On the simulator the category-level kNN is far above pop and distilling it lifts SFT-only by +0.04 FHR@20; on
MovieLens-100k the same kNN over genres is below pop (docs/BENCHMARKS.md), and teaching a model a teacher
worse than popularity can only pull it down. A shipped config is also run on logs nobody here has seen, so the
choice is made per log, by a rule written down: a teacher task is kept when the teacher's FHR@K beats both pop's
and Swing's on the carved validation users, each paired 95 % CI above 0, and its weight is set to 0 otherwise.

Necessary, not sufficient: on MovieLens-100k the item-level kNN passes (+0.059 over Swing), yet distilling it
lowered CoNRec by −0.041 [−0.070, −0.012] on validation users, because it is only level with the SFT model there.
The rule that would catch that compares the teacher with an SFT model trained without it (not built).
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
BASELINES = ("pop", "swing")
"""What a teacher must beat. Swing too, not only pop: on MovieLens-100k Swing is above pop, yet Swing's items as SFT
targets lowered SFT-only by −0.032 [−0.056, −0.007] (docs/BENCHMARKS.md, `warmup_swing`)."""


def gate_teachers(tasks: dict, split: Split, k: int = 20, baselines: tuple = BASELINES) -> tuple[dict, list[dict]]:
    """`tasks` (SFT task → weight) with each teacher task whose teacher does not beat every one of `baselines` set
    to weight 0, and one decision per teacher task asked for: its teacher, FHR@K of teacher and baselines, the
    paired differences with CIs, and whether it was kept. Every user the protocol carves from `split`'s training
    events validates (more than the curriculum's sample: a gate on 100-200 users would be decided by noise)."""
    asked = [t for t, w in tasks.items() if w and t in TEACHER_TASKS]
    if not asked:
        return dict(tasks), []
    val = validation_users(split)
    key = f"FHR@{k}"
    base = {b: evaluate(get_method(b), val, k=k, progress=False) for b in baselines}
    out, decisions = dict(tasks), []
    for task in asked:
        teacher = TEACHER_TASKS[task]
        if teacher == "category_knn" and not has_category_column(split.data):
            log.warning("SFT teacher gate: %s dropped (weight 0): %s has no item category column", task,
                        split.data.name)
            decisions.append({"task": task, "teacher": teacher, "kept": False, "reason": "no item category column"})
            out[task] = 0.0
            continue
        r = evaluate(get_method(teacher), val, k=k, progress=False)
        vs = {}
        for b, rb in base.items():
            c = paired_diff(r["per_user"][key], rb["per_user"][key])
            vs[b] = {"value": rb["metrics"][key], "diff": c["diff"], "lo": c["lo"], "hi": c["hi"]}
        keep = all(v["lo"] > 0 for v in vs.values())
        decisions.append({"task": task, "teacher": teacher, "users": int(len(val.test)), "metric": key,
                          "teacher_value": r["metrics"][key], "against": vs, "kept": keep})
        log.info("SFT teacher gate: %s (%s) %s %.4f on %d validation users; %s → %s", task, teacher, key,
                 r["metrics"][key], len(val.test),
                 ", ".join(f"vs {b} {v['value']:.4f}: {v['diff']:+.4f} [{v['lo']:+.4f}, {v['hi']:+.4f}]"
                           for b, v in vs.items()),
                 "kept" if keep else f"dropped (weight 0): not above {' and '.join(baselines)}")
        if not keep:
            out[task] = 0.0
    return out, decisions
