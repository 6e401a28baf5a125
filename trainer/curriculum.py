"""Curriculum schedulers for progressive GRPO, in a registry.

A scheduler yields stages (context mode, steps, KL β) and decides, from the validation metric after
each stage, whether to accept it, retry it with an adjusted β, or stop. The default is the paper's
progression: negatives of the last 3 days → all negatives → negatives + positives, each stage
accepted only if validation FHR@K did not drop below the previous stage's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

CURRICULA: dict[str, Callable] = {}


def register_curriculum(name: str):
    def deco(cls):
        CURRICULA[name] = cls
        return cls

    return deco


@dataclass
class Stage:
    name: str = "neg_recent"
    context_mode: str = "neg_recent"
    """trainer.prompts.ContextConfig.mode for this stage."""
    steps: int = 10
    kl_coef: float = 0.04


@dataclass
class CurriculumConfig:
    name: str = "progressive"
    """'progressive' (stages in order, with acceptance) or 'none' (one stage, full context)."""
    stages: list[Stage] = field(default_factory=lambda: [
        Stage("neg_recent", "neg_recent", 10, 0.04), Stage("neg_all", "neg_all", 10, 0.04),
        Stage("neg_pos", "neg_pos", 10, 0.04)])
    max_retries: int = 1
    """Retries of a stage whose validation metric dropped, each with β multiplied by `retry_kl_factor`."""
    retry_kl_factor: float = 2.0
    tolerance: float = 0.0
    """A stage is accepted if metric >= previous − tolerance."""
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

    def judge(self, stage: Stage, attempt: int, metric: float, best: float) -> tuple[str, Stage | None]:
        """'accept' | ('retry', adjusted stage) | 'reject' (keep previous) — raises CurriculumStop on 'stop'."""
        if metric >= best - self.cfg.tolerance:
            return "accept", None
        if attempt < self.cfg.max_retries:
            return "retry", Stage(stage.name, stage.context_mode, stage.steps, stage.kl_coef * self.cfg.retry_kl_factor)
        if self.cfg.on_reject == "stop":
            raise CurriculumStop(f"curriculum stage {stage.name!r} lowered validation from {best:.4f} to {metric:.4f} "
                                 f"after {attempt + 1} attempt(s); stopping (curriculum.on_reject=stop)")
        return "reject", None


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
