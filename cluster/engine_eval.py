"""The final evaluation on the cluster (`evaluate_on: engines`): the same protocol as `evaluation/`, run where
the weights already are. The rollout engines rank each test user's top K by constrained beam search; the
learners teacher-force the Candidate Acc. and alignment scores. The driver only loads each model's weights
into the group (as it does after a rejected stage), so on a GPU cluster nothing model-sized runs on the
driver's CPU.

One difference from the driver's evaluation, by construction: the engines rank by the constrained
distribution (each level's log-probs renormalised over the trie's open values, what the policy samples
from), the driver's HF beam search by the raw log-probs of the open values. A trained model puts almost all of
each level's mass on the open values, so the two lists nearly agree; docs/BENCHMARKS.md gives the measured
difference. Candidate Acc. and the alignment accuracy are the same computation in both.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from evaluation.methods import Method
from feedback.split import Split
from trainer.prompts import ContextConfig

log = logging.getLogger("conrec.run")


class EngineMethod(Method):
    """A `Method` over the policy the driver's group holds now: top-K from the engines, scores from the learners."""

    def __init__(self, driver, ctx: ContextConfig, name: str = "model", extra_beams: int = 20):
        self.driver, self.ctx, self.name, self.extra_beams = driver, ctx, name, extra_beams

    def fit(self, split: Split) -> None:
        self.driver.index.check_catalogue(split.data.items["item_id"].to_numpy())
        self.split = split

    def recommend(self, test_rows: np.ndarray, k: int) -> np.ndarray:
        return self.driver.engine_topk(self.split.test, test_rows, k, self.ctx, self.extra_beams)

    def score_candidates(self, test_rows: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        prompts = self.driver.prompts_of(self.split.test, test_rows, self.ctx)
        return self.driver.learner_code_logprobs(prompts, self.driver.index.codes[candidates])


def evaluate_on_engines(driver, split: Split, models: dict, k: int, ctx: ContextConfig, batch_size: int = 256,
                        progress: bool = False) -> dict[str, dict]:
    """{name: evaluate() result} for each {name: HF model folder}: its weights into the learners and engines, then
    the protocol on the test split. The group holds the last model's weights afterwards."""
    from evaluation.evaluate import evaluate
    from evaluation.model_method import alignment_questions, alignment_score

    questions = alignment_questions(driver.index, split)
    out = {}
    for name, d in models.items():
        driver.restore(Path(d))
        m = EngineMethod(driver, ctx, name)
        r = evaluate(m, split, k=k, batch_size=batch_size, progress=progress)
        r["metrics"].update(alignment_score(driver.learner_code_logprobs, *questions))
        log.info("%s evaluated on the engines: FHR@%d %.4f (%d users, %.0f s)", name, k, r["metrics"][f"FHR@{k}"],
                 r["n_test_users"], r["timing"]["total_s"])
        out[name] = r
    return out
