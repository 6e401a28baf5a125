"""The reward server: a pool of Ray actors that score rollout batches.

The ground truth and the SID index go into the object store once and reach every actor by
reference at construction; a call ships only sample ids and generated outputs. A batch is split
into one contiguous shard per actor, scored in parallel, and merged back in order. Actors restart
on failure (Ray's policy, `max_restarts`) and a batch has a deadline.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import ray

from reward.ground_truth import GroundTruth
from reward.scorer import RewardConfig, RewardScorer

log = logging.getLogger(__name__)


class RewardTimeout(TimeoutError):
    pass


@ray.remote
class RewardWorker:
    def __init__(self, cfg: RewardConfig, gt: GroundTruth, index, token_to_code=None):
        logging.basicConfig(level=logging.INFO)
        self.scorer = RewardScorer(cfg, gt, index, token_to_code)

    def score(self, sample_ids, outputs) -> dict:
        return self.scorer.score(sample_ids, outputs)

    def ping(self) -> int:
        return len(self.scorer.gt)


class RewardServer:
    def __init__(self, cfg: RewardConfig, gt: GroundTruth, index, token_to_code: np.ndarray | None = None,
                 num_cpus_per_worker: float = 0.5):
        self.cfg = cfg
        refs = [ray.put(x) for x in (gt, index, token_to_code)]
        opts = dict(num_cpus=num_cpus_per_worker, max_restarts=cfg.max_restarts, max_task_retries=cfg.max_restarts)
        self.workers = [RewardWorker.options(**opts).remote(cfg, *refs) for _ in range(cfg.num_workers)]
        ray.get([w.ping.remote() for w in self.workers], timeout=cfg.batch_timeout_s)

    def score(self, sample_ids, outputs) -> dict:
        t0 = time.perf_counter()
        sample_ids = np.asarray(sample_ids)
        n = len(sample_ids)
        bounds = np.linspace(0, n, len(self.workers) + 1).astype(int)
        shards = [(w, lo, hi) for w, lo, hi in zip(self.workers, bounds[:-1], bounds[1:]) if hi > lo]
        refs = [w.score.remote(sample_ids[lo:hi], list(outputs[lo:hi])) for w, lo, hi in shards]
        try:
            parts = ray.get(refs, timeout=self.cfg.batch_timeout_s)
        except ray.exceptions.GetTimeoutError:
            for r in refs:
                ray.cancel(r)
            raise RewardTimeout(f"reward server: a batch of {n} was not scored within {self.cfg.batch_timeout_s}s "
                                f"by {len(shards)} actor(s); raise reward.batch_timeout_s or check plug-in timeouts")
        return merge(parts, n, time.perf_counter() - t0)


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
