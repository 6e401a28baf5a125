"""Curriculum schedulers for progressive GRPO, in a registry.

A scheduler yields stages (context mode, steps, KL β) and decides, from the validation metric after
each stage, whether to accept it, retry it with an adjusted β, or stop. The default is the paper's
progression: negatives of the last 3 days → all negatives → negatives + positives, each stage
accepted unless validation FHR@K dropped below the last accepted stage's by more than noise: by
default a paired bootstrap over the validation users decides (a drop whose 95 % CI includes 0 is
no drop), so a handful of users changing their hit cannot reject a stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from common.registry import registrar

CURRICULA: dict[str, Callable] = {}


register_curriculum = registrar(CURRICULA, "curriculum")


@dataclass
class Stage:
    name: str = "neg_recent"
    context_mode: str = "neg_recent"
    """trainer.prompts.ContextConfig.mode for this stage."""
    steps: int = 10
    kl_coef: float = 0.04
    lr_scale: float = 1.0
    """The learner's learning rate for this stage is grpo.learner.lr × lr_scale (retries lower it)."""


@dataclass
class CurriculumConfig:
    name: str = "progressive"
    """'progressive' (stages in order, with acceptance) or 'none' (one stage, full context)."""
    stages: list[Stage] = field(default_factory=lambda: [
        Stage("neg_recent", "neg_recent", 10, 0.04), Stage("neg_all", "neg_all", 10, 0.04),
        Stage("neg_pos", "neg_pos", 10, 0.04)])
    max_retries: int = 1
    """Retries of a stage whose validation metric dropped. A retry starts again from the last accepted
    weights with β × `retry_kl_factor` and the learning rate × `retry_lr_factor`: a smaller, more
    anchored step, which is what can turn a harmful update into a harmless one."""
    retry_kl_factor: float = 4.0
    retry_lr_factor: float = 0.5
    acceptance: str = "paired_ci"
    """'paired_ci': reject only when the paired bootstrap CI (over validation users) of (stage − best)
    lies entirely below −tolerance; 'point': reject when the point estimate is below best − tolerance."""
    confidence: float = 0.95
    """Confidence of the paired CI of the 'paired_ci' rule."""
    tolerance: float = 0.0
    """A drop of up to this much FHR@K is accepted in either rule."""
    on_reject: str = "keep_previous"
    """After the retries: 'keep_previous' (restore the last accepted weights and go on) or 'stop'."""


class CurriculumStop(RuntimeError):
    pass


@register_curriculum("progressive")
class Progressive:
    def __init__(self, cfg: CurriculumConfig):
        if not cfg.stages:
            raise ValueError("curriculum.stages is empty: give at least one stage")
        self.cfg = cfg

    def stages(self) -> list[Stage]:
        return list(self.cfg.stages)

    def judge(self, stage: Stage, attempt: int, per_user: np.ndarray, best_per_user: np.ndarray
              ) -> tuple[str, Stage | None, dict]:
        """Compare the stage's per-validation-user hits with the last accepted ones.

        Returns ('accept' | 'retry' | 'reject', the adjusted stage for a retry, the paired difference) —
        raises CurriculumStop on 'stop'."""
        from common.stats import paired_diff

        c = self.cfg
        if c.acceptance not in ("paired_ci", "point"):
            raise ValueError(f"curriculum.acceptance must be 'paired_ci' or 'point', got {c.acceptance!r}")
        d = paired_diff(per_user, best_per_user, confidence=c.confidence, seed=attempt)
        dropped = d["hi"] < -c.tolerance if c.acceptance == "paired_ci" else d["diff"] < -c.tolerance
        if not dropped:
            return "accept", None, d
        if attempt < c.max_retries:
            return "retry", Stage(stage.name, stage.context_mode, stage.steps, stage.kl_coef * c.retry_kl_factor,
                                  stage.lr_scale * c.retry_lr_factor), d
        if c.on_reject == "stop":
            raise CurriculumStop(f"curriculum stage {stage.name!r} lowered validation by {-d['diff']:.4f} (95 % CI "
                                 f"[{d['lo']:+.4f}, {d['hi']:+.4f}]) after {attempt + 1} attempt(s); stopping "
                                 "(curriculum.on_reject=stop)")
        return "reject", None, d


@register_curriculum("none")
class NoCurriculum(Progressive):
    """Ablation: one stage with the full context (negatives + positives) from the start."""

    def stages(self) -> list[Stage]:
        total = sum(s.steps for s in self.cfg.stages)
        return [Stage("full", "neg_pos", total, self.cfg.stages[-1].kl_coef)]


def get_curriculum(cfg: CurriculumConfig):
    if cfg.name not in CURRICULA:
        raise KeyError(f"unknown curriculum {cfg.name!r}; registered: {sorted(CURRICULA)}")
    return CURRICULA[cfg.name](cfg)
