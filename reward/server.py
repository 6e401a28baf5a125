"""The reward server: a pool of Ray actors that score rollout batches.

The ground truth and the SID index go into the object store once and reach every actor by
reference in a `load` call after construction (and again after a restart: a constructor argument
from the object store is one Ray warns about for restartable actors); a scoring call ships only
sample ids and generated outputs. A batch is split
into one contiguous shard of whole groups per actor, scored in parallel, and merged back in order. A batch has a
deadline. An actor that dies mid-batch is restarted by Ray (`max_restarts`) and only its shard is
resubmitted, so no sample is lost or scored twice; every restart is logged and counted
(`fault/reward_restarts`). An exception raised *by* the scorer (a plug-in bug, bad input) is not a
fault to retry: it fails the step with its own message.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import ray

from common.actor_group import ActorGroup
from common.faults import maybe_fail
from reward.ground_truth import GroundTruth
from reward.scorer import RewardConfig, RewardScorer

log = logging.getLogger(__name__)


class RewardTimeout(TimeoutError):
    pass


@ray.remote
class RewardWorker:
    def __init__(self, cfg: RewardConfig):
        import os

        from common.logs import redirect_worker_output

        if redirect_worker_output(f"reward-pid{os.getpid()}") is None:
            logging.basicConfig(level=logging.INFO)
        self.cfg, self.scorer = cfg, None

    def ready(self) -> bool:
        return True

    def load(self, gt: GroundTruth, index, token_to_code=None) -> int:
        self.scorer = RewardScorer(self.cfg, gt, index, token_to_code)
        return len(gt)

    def score(self, sample_ids, outputs, group_size: int = 1) -> dict:
        maybe_fail("reward_score")
        return self.scorer.score(sample_ids, outputs, group_size)


class RewardServer:
    def __init__(self, cfg: RewardConfig, gt: GroundTruth, index, token_to_code: np.ndarray | None = None,
                 num_cpus_per_worker: float = 0.5):
        self.cfg = cfg
        # held for the server's lifetime: a restarted actor is loaded again from these same object-store refs
        self._refs = [ray.put(x) for x in (gt, index, token_to_code)]
        # Ray restarts a dead actor; the server, not Ray, loads it and resubmits the lost shard, and counts it
        opts = dict(num_cpus=num_cpus_per_worker, max_restarts=cfg.max_restarts, max_task_retries=0)
        self.workers = ActorGroup("reward actor", [RewardWorker.options(**opts).remote(cfg)
                                                   for _ in range(cfg.num_workers)],
                                  max_restarts=cfg.max_restarts, restart_timeout_s=cfg.batch_timeout_s, probe="ready")
        self.workers.call_all("load", *self._refs, timeout_s=cfg.batch_timeout_s)
        self.restarts = 0

    def score(self, sample_ids, outputs, group_size: int = 1) -> dict:
        """Rewards of a batch of whole groups (`group_size` consecutive samples each), in order."""
        t0 = time.perf_counter()
        sample_ids = np.asarray(sample_ids)
        n = len(sample_ids)
        if group_size < 1 or n % group_size:
            raise ValueError(f"reward server: {n} samples are not whole groups of {group_size}")
        bounds = np.linspace(0, n // group_size, len(self.workers) + 1).astype(int) * group_size
        args = [(sample_ids[lo:hi], list(outputs[lo:hi]), group_size) if hi > lo else None
                for lo, hi in zip(bounds[:-1], bounds[1:])]

        def restarted(i, e):
            self.restarts += 1
            log.warning("reward actor %d died scoring samples [%d, %d) (%s); restart %d, resubmitting its shard",
                        i, bounds[i], bounds[i + 1], type(e).__name__, self.restarts)
            ray.get(self.workers[i].load.remote(*self._refs), timeout=self.cfg.batch_timeout_s)

        try:
            parts = self.workers.call("score", args, on_restart=restarted, timeout_s=self.cfg.batch_timeout_s)
        except ray.exceptions.GetTimeoutError:
            raise RewardTimeout(f"reward server: a batch of {n} was not scored within {self.cfg.batch_timeout_s}s "
                                f"by {sum(a is not None for a in args)} actor(s); raise reward.batch_timeout_s or "
                                "check plug-in timeouts") from None
        out = merge(parts, n, time.perf_counter() - t0)
        out["metrics"]["fault/reward_restarts"] = float(self.restarts)
        return out


def merge(parts: list[dict], n: int, seconds: float) -> dict:
    score = np.concatenate([p["score"] for p in parts])
    keys = sorted({k for p in parts for k in p["terms"]})
    terms = {}
    for k in keys:
        terms[k] = np.concatenate([p["terms"].get(k, np.full(len(p["score"]), np.nan, np.float32)) for p in parts])
    metrics = {}
    counts = [len(p["score"]) for p in parts]
    for k in {k for p in parts for k in p["metrics"]}:
        vals = [p["metrics"].get(k, 0.0) for p in parts]
        if k.startswith("reward/plugin/"):
            metrics[k] = float(sum(vals))  # counts add up
        elif k.startswith("timing/"):
            metrics[k] = float(max(vals))
        else:
            metrics[k] = float(np.average(vals, weights=counts))  # per-sample means
    metrics["timing/reward"] = seconds
    return {"score": score, "terms": terms, "metrics": metrics}
