"""The GRPO driver: it reads as the RL dataflow.

    for each curriculum stage, for each step:
        prompts   ← training examples (context built as the stage says)
        rollouts  ← rollout actors, G trie-constrained samples (or beam codes) per prompt
        rewards   ← reward server
        update    ← learner ranks (old/ref log-probs, advantages, loss, optimizer step)
        sync      ← learner rank 0's weights → every rollout actor
        log
    after each stage: validation FHR@K → accept / retry with a new β / keep the previous weights

Faults: a rollout actor that dies mid-step is restarted by Ray, given the current weights, and its
shard regenerated with the same seed (the step neither loses nor duplicates samples); the reward
server does the same for its actors. A lost learner rank ends the step; the learner group is rebuilt
and the run continues from the last checkpoint. Every restart is logged and counted (`fault/*`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import ray

from cluster.run_config import RunConfig
from common.faults import actor_lost, get_with_restarts, wait_restarted
from rollout.engine import SamplingConfig
from trainer.curriculum import get_curriculum
from trainer.grpo_learner import RolloutBatch
from trainer.prompts import ContextConfig, build_context

log = logging.getLogger(__name__)


class LearnerLost(RuntimeError):
    """A learner rank died; the group's collective state is gone and must be rebuilt from a checkpoint."""


class Driver:
    def __init__(self, cfg: RunConfig, examples, gt, index, model_dir: str, sid_dir: str, val_split, mlog):
        from transformers import AutoTokenizer

        from cluster.rollout_actor import RolloutActor
        from cluster.weight_sync import make_sync
        from reward.scorer import token_to_code_table
        from reward.server import RewardServer
        from rollout.constrained import SidTokenMap

        self.cfg, self.ex, self.index, self.val_split, self.mlog = cfg, examples, index, val_split, mlog
        self.sid_dir = sid_dir
        t = cfg.topology
        if cfg.grpo.prompts_per_step < t.learner_ranks:
            raise ValueError(f"grpo.prompts_per_step={cfg.grpo.prompts_per_step} < topology.learner_ranks="
                             f"{t.learner_ranks}: every learner rank needs at least one prompt group per step")
        tok = AutoTokenizer.from_pretrained(model_dir)
        self.tmap = SidTokenMap(tok, index.level_sizes)
        table = token_to_code_table(tok, index.level_sizes)
        self.reward = RewardServer(cfg.grpo.reward, gt, index, table, num_cpus_per_worker=t.cpus_per_actor)
        self.model_dir = model_dir
        self.pg, self.place = self._placement_group()
        # Ray restarts a dead rollout actor; the driver (not Ray) resubmits its shard after giving it weights
        self.rollouts = [RolloutActor.options(num_cpus=t.cpus_per_actor, num_gpus=t.gpus_per_rollout,
                                              max_restarts=t.max_actor_restarts, max_task_retries=0,
                                              scheduling_strategy=self.place(i)).remote(
            t.rollout_engine, model_dir, sid_dir, cfg.seed + i, cfg.rollout) for i in range(t.rollout_actors)]
        self._start_learners()
        ray.get([r.ready.remote() for r in self.rollouts])
        g = cfg.grpo
        self.weights = make_sync(g.sync_transport, self.learners, self.rollouts, g.sync_bucket_mb, g.sync_timeout_s,
                                 g.learner.zero_stage == 3, g.sync_backend)
        self.rng = np.random.default_rng(cfg.seed)
        self.step = 0
        self.faults = {"fault/rollout_restarts": 0, "fault/learner_restarts": 0}

    def _start_learners(self) -> None:
        """One actor per rank in its bundle; a fresh rendezvous port each time (a rebuilt group too)."""
        from cluster.learner_actor import LearnerActor, free_port_on_node

        t = self.cfg.topology
        addr, port = ray.get(ray.remote(num_cpus=0)(free_port_on_node).options(
            scheduling_strategy=self.place(t.rollout_actors)).remote())
        self.learners = [LearnerActor.options(num_cpus=t.cpus_per_actor, num_gpus=t.gpus_per_learner,
                                              scheduling_strategy=self.place(t.rollout_actors + r)).remote(
            r, t.learner_ranks, addr, port) for r in range(t.learner_ranks)]
        ray.get([a.setup.remote(self.model_dir, self.sid_dir, self.cfg.grpo.learner) for a in self.learners])

    def _placement_group(self):
        """One bundle per rollout actor and learner rank, reserved together, sized from the topology."""
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        t = self.cfg.topology

        def bundle(gpus):
            return {"CPU": t.cpus_per_actor, **({"GPU": gpus} if gpus else {})}

        bundles = [bundle(t.gpus_per_rollout)] * t.rollout_actors + [bundle(t.gpus_per_learner)] * t.learner_ranks
        pg = placement_group(bundles, strategy=t.placement_strategy)
        try:
            ray.get(pg.ready(), timeout=t.placement_timeout_s)
        except ray.exceptions.GetTimeoutError:
            raise RuntimeError(f"placement group of {len(bundles)} bundles {bundles[0]}… ({t.placement_strategy}) "
                               f"was not placed within {t.placement_timeout_s}s; the cluster offers "
                               f"{ray.available_resources()}. Lower topology.* or add nodes.") from None
        return pg, lambda i: PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i)

    # ------------------------------------------------------------------ one step
    def train_step(self, ctx: ContextConfig, kl_coef: float) -> dict:
        g = self.cfg.grpo
        timing = {}
        t_step = time.perf_counter()
        ids = self.rng.choice(len(self.ex), min(g.prompts_per_step, len(self.ex)), replace=False)
        ids, prompts, comps, rew, drop = self._rollout_groups(ids, ctx, timing)

        t0 = time.perf_counter()
        n = g.sampling.n
        sample_ids = np.repeat(ids, n)
        targets = self._targets(ids) if g.learner.nll_coef > 0 else None
        refs = []
        for a, ps in zip(self.learners, np.array_split(np.arange(len(prompts)), len(self.learners))):
            rows = np.arange(ps[0] * n, (ps[-1] + 1) * n) if len(ps) else np.empty(0, int)  # whole groups per rank
            batch = RolloutBatch([prompts[r // n] for r in rows], [comps[r].token_ids for r in rows],
                                 rew["score"][rows], list(sample_ids[rows]), [comps[r].logprobs for r in rows],
                                 g.sampling.temperature, [targets[r // n] for r in rows] if targets else None)
            refs.append(a.update.remote(batch, kl_coef))
        upd = self._get_learners(refs, "update")
        timing["timing/update"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        timing["timing/weight_sync"] = self.sync()
        timing["timing/weight_sync_total"] = time.perf_counter() - t0
        timing["sync/buckets"] = float(self.n_buckets)
        every = g.verify_sync_every
        if every and (self.step + 1) % every == 0:
            timing["sync/verified"] = float(self.verify_sync(prompts[:4]))

        m = {k: float(np.mean([u[k] for u in upd if k in u])) for k in upd[0]}
        m.update({k: v for k, v in rew["metrics"].items() if not k.startswith("timing/")})
        score = rew["score"].reshape(-1, n)
        m["reward/group_std"] = float(score.std(1).mean())
        m["rollout/dropped_groups"] = drop
        m.update(timing)
        m["timing/step"] = time.perf_counter() - t_step
        m.update({k: float(v) for k, v in self.faults.items()})
        self.step += 1
        return m

    def _rollout_groups(self, ids: np.ndarray, ctx: ContextConfig, timing: dict):
        """Prompts → G samples each → rewards. With `grpo.dynamic_sampling`, groups whose rewards are all
        equal (zero advantage: no gradient) are replaced by groups of fresh prompts, for up to
        `dynamic_sampling_rounds` more rounds (DAPO). Returns the kept example ids, prompts, completions
        (flat, G per prompt), their rewards, and the share of generated groups dropped."""
        g = self.cfg.grpo
        n, want = g.sampling.n, len(ids)
        keep_ids, keep_prompts, keep_comps, scores, metrics = [], [], [], [], None
        used, generated, rounds = set(), 0, 0
        while True:
            prompts = [build_context(self.ex.ctx_items.iat[i], self.ex.ctx_fb.iat[i], self.ex.ctx_ts.iat[i],
                                     int(self.ex.t_cut.iat[i]), self.index.sid, ctx) for i in ids]
            t0 = time.perf_counter()
            comps = [c for grp in self.generate(prompts, rounds) for c in grp]
            timing["timing/generate"] = timing.get("timing/generate", 0.0) + time.perf_counter() - t0
            t0 = time.perf_counter()
            rew = self.reward.score(np.repeat(ids, n), [c.token_ids for c in comps], n)
            timing["timing/reward"] = timing.get("timing/reward", 0.0) + time.perf_counter() - t0
            metrics = metrics or rew  # the first round: the policy's rewards before any selection
            sc = rew["score"].reshape(-1, n)
            ok = np.ones(len(ids), bool) if not g.dynamic_sampling else sc.std(1) > 1e-8
            generated += len(ids)
            used.update(ids.tolist())
            for j in np.flatnonzero(ok)[: want - len(keep_ids)]:
                keep_ids.append(int(ids[j]))
                keep_prompts.append(prompts[j])
                keep_comps += comps[j * n:(j + 1) * n]
                scores.append(sc[j])
            rounds += 1
            if len(keep_ids) >= want or rounds > g.dynamic_sampling_rounds or not g.dynamic_sampling:
                break
            fresh = np.setdiff1d(np.arange(len(self.ex)), np.fromiter(used, int))
            if len(fresh) == 0:
                break
            ids = self.rng.choice(fresh, min(want, len(fresh)), replace=False)
        short = self.cfg.topology.learner_ranks - len(keep_ids)
        if short > 0:  # every learner rank needs a group: top up with zero-advantage groups (no gradient)
            for j in range(short):
                keep_ids.append(int(ids[j % len(ids)]))
                keep_prompts.append(prompts[j % len(ids)])
                keep_comps += comps[(j % len(ids)) * n:(j % len(ids) + 1) * n]
                scores.append(sc[j % len(ids)])
        kept = {"score": np.concatenate(scores), "metrics": metrics["metrics"]}
        return np.asarray(keep_ids), keep_prompts, keep_comps, kept, 1.0 - len(keep_ids) / generated

    def _targets(self, ids: np.ndarray) -> list[list[int]]:
        """Per example, the token ids of one of its future negatives (SID tokens + EOS), for NLL anchoring;
        drawn from a generator of its own so the prompt stream does not depend on the option."""
        rng = np.random.default_rng((self.cfg.seed, self.step))
        out = []
        for i in ids:
            fut = self.ex.future_neg.iat[i]
            item = int(rng.choice(fut)) if len(fut) else int(self.ex.next_negative.iat[i])
            code = self.index.codes[item]
            out.append([int(self.tmap.ids[lvl][v]) for lvl, v in enumerate(code)] + [self.tmap.eos])
        return out

    def generate(self, prompts: list[str], round_: int = 0) -> list:
        """G samples per prompt, one contiguous shard per rollout actor. The seed of a shard is fixed by
        (run seed, step, shard), so a shard regenerated after its actor died draws the same samples."""
        g, t = self.cfg.grpo, self.cfg.topology
        shards = [s for s in np.array_split(np.arange(len(prompts)), len(self.rollouts)) if len(s)]
        calls = []
        for i, s in enumerate(shards):
            seed = g.sampling.seed + 1000 * self.step + 100 * round_ + i
            sampling = SamplingConfig(**{**vars(g.sampling), "seed": seed})
            calls.append(([prompts[j] for j in s], sampling))
        refs = [self.rollouts[i].generate.remote(*c) for i, c in enumerate(calls)]
        parts = []
        for i, (c, ref) in enumerate(zip(calls, refs)):
            actor = self.rollouts[i]

            def restarted(e, i=i, actor=actor, n_prompts=len(c[0])):
                self.faults["fault/rollout_restarts"] += 1
                log.warning("rollout actor %d died at step %d (%s); restart %d: syncing weights and regenerating "
                            "its %d prompts", i, self.step + 1, type(e).__name__, self.faults["fault/rollout_restarts"],
                            n_prompts)
                self.weights.reset(self.learners, self.rollouts)  # a collective group lost a member
                self.sync([actor])  # a restarted engine holds the SFT weights

            parts.append(get_with_restarts(ref, actor, lambda actor=actor, c=c: actor.generate.remote(*c), restarted,
                                           t.max_actor_restarts, t.placement_timeout_s))
        return [grp for part in parts for grp in part]

    def _get_learners(self, refs: list, what: str) -> list:
        """Results of one call on every rank. A dead rank leaves the others blocked in a collective, so
        results are taken as they finish and the first lost rank ends the step at once."""
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                ray.get(done[0])
            except Exception as e:
                if actor_lost(e):
                    raise LearnerLost(f"learner rank {refs.index(done[0])} was lost during {what} at step "
                                      f"{self.step + 1} ({type(e).__name__})") from e
                raise
        return ray.get(refs)

    def verify_sync(self, prompts: list[str]) -> bool:
        """Each rollout engine's greedy codes must equal the learner's: same weights, same constraint."""
        want = ray.get(self.learners[0].greedy_codes.remote(prompts))
        greedy = SamplingConfig(n=1, temperature=0.0, max_tokens=self.cfg.grpo.sampling.max_tokens)
        for i, r in enumerate(self.rollouts):
            got = [self.tmap.decode(g[0].token_ids) for g in ray.get(r.generate.remote(prompts, greedy))]
            if got != [tuple(w) for w in want]:
                raise RuntimeError(f"weight sync check failed: rollout actor {i} decodes {got}, learner {want}")
        return True

    def sync(self, targets: list | None = None, retry_left: int = 1) -> float:
        """Learner rank 0's weights → every rollout engine (or `targets`), bucket by bucket (the transport of
        `grpo.sync_transport`); returns the engines' seconds."""
        try:
            spent, self.n_buckets = self.weights.sync(targets)
        except Exception as e:
            # a dead member surfaces as its own ActorDiedError or as a peer's broken collective, in either
            # order; the GCS's view of the actors decides
            down = _not_alive(self.learners + self.rollouts)
            if any(i < len(self.learners) for i in down):
                raise LearnerLost(f"learner rank {min(down)} was lost during weight sync at step "
                                  f"{self.step + 1}") from e
            if not down or retry_left == 0:
                raise
            t = self.cfg.topology
            for i in (i - len(self.learners) for i in down):
                self.faults["fault/rollout_restarts"] += 1
                log.warning("rollout actor %d died during weight sync at step %d (%s); restart %d: waiting for it and "
                            "syncing every engine again", i, self.step + 1, type(e).__name__,
                            self.faults["fault/rollout_restarts"])
                wait_restarted(self.rollouts[i], t.placement_timeout_s)
            self.weights.reset(self.learners, self.rollouts)
            return self.sync(None, retry_left - 1)
        return spent

    # ------------------------------------------------------------------ the curriculum
    def run(self, validate, resume: bool = False) -> list[dict] | None:
        """Run every stage; `validate(save_dir) -> per-user hits` scores the current policy on the validation
        users. Returns the stage records, or None when `grpo.max_total_steps` stopped the run early (resumable)."""
        from trainer.curriculum import Stage

        cur = get_curriculum(self.cfg.curriculum)
        stages = cur.stages()
        run = Path(self.cfg.run_dir) / "grpo"
        st = self._load_state(run) if resume else None
        if st is None:
            self.mlog.truncate(0)  # a --resume that found no checkpoint starts GRPO over
            hits = validate(self.save(run / "stage_start"))
            best = float(np.mean(hits))
            log.info("validation before GRPO: %.4f (%d users)", best, len(hits))
            st = {"stage_idx": 0, "attempt": 0, "kl_coef": None, "lr_scale": None, "step_in_stage": 0,
                  "best_hits": hits.tolist(), "best_dir": str(run / "stage_start"),
                  "records": [{"stage": "start", "val": best, "accepted": True}]}
            self._checkpoint(run, st)  # step 0: a lost learner rank always has a checkpoint to come back to
        budget = self.cfg.grpo.max_total_steps
        from tqdm import tqdm

        total = sum(x.steps for x in stages)
        bar = tqdm(total=total, initial=min(self.step, total), desc="grpo", unit="step", dynamic_ncols=True)
        while st["stage_idx"] < len(stages):
            base = stages[st["stage_idx"]]
            stage = Stage(base.name, base.context_mode, base.steps, st["kl_coef"] or base.kl_coef,
                          st.get("lr_scale") or base.lr_scale)
            ctx = ContextConfig(mode=stage.context_mode, max_items=self.cfg.grpo.max_context_items)
            ray.get([a.set_lr.remote(self.cfg.grpo.learner.lr * stage.lr_scale) for a in self.learners])
            while st["step_in_stage"] < stage.steps:
                if budget and self.step >= budget:
                    bar.close()
                    self._checkpoint(run, st)
                    log.info("stopped at step %d (grpo.max_total_steps); continue with --resume", self.step)
                    return None
                try:
                    m = self.train_step(ctx, stage.kl_coef)
                except LearnerLost as e:
                    st = self._recover(run, e)
                    bar.n = min(self.step, total)
                    bar.refresh()
                    break  # re-enter the loop at the checkpoint's stage and step
                st["step_in_stage"] += 1
                bar.update(1)
                bar.set_postfix(stage=stage.name, reward=f"{m['reward/mean']:.3f}")
                m["curriculum/stage_index"] = st["stage_idx"]
                self.mlog.log(self.step, {k: v for k, v in m.items() if isinstance(v, (int, float))})
                log.info("step %d [%s] reward %.4f invalid %.3f kl %.4f gen %.2fs reward %.2fs update %.2fs "
                         "sync %.3fs", self.step, stage.name, m["reward/mean"], m["reward/invalid_rate"],
                         m.get("actor/kl", 0.0), m["timing/generate"], m["timing/reward"], m["timing/update"],
                         m["timing/weight_sync"])
                if self.cfg.grpo.save_every and self.step % self.cfg.grpo.save_every == 0:
                    self._checkpoint(run, st)
            else:
                st = self._end_stage(cur, stage, st, run, validate)
        bar.close()
        self.final_dir = Path(st["best_dir"])
        return st["records"]

    def _end_stage(self, cur, stage, st: dict, run: Path, validate) -> dict:
        """Validate the stage's policy; accept it, retry the stage with a new β, or keep the previous best."""
        d = self.save(run / f"stage_{stage.name}_try{st['attempt']}")
        hits = validate(d)
        val = float(np.mean(hits))
        best = np.asarray(st["best_hits"])
        verdict, retry, delta = cur.judge(stage, st["attempt"], hits, best)
        st["records"].append({"stage": stage.name, "attempt": st["attempt"], "kl_coef": stage.kl_coef,
                              "lr_scale": stage.lr_scale, "val": val, "delta": delta,
                              "accepted": verdict == "accept", "step": self.step})
        log.info("stage %s attempt %d: validation %.4f vs best %.4f (Δ %+.4f, 95%% CI [%+.4f, %+.4f]) → %s",
                 stage.name, st["attempt"], val, best.mean(), delta["diff"], delta["lo"], delta["hi"], verdict)
        if verdict == "accept":
            st["best_hits"], st["best_dir"] = hits.tolist(), str(d)
        else:
            self.restore(Path(st["best_dir"]))
        if verdict == "retry":
            st.update(attempt=st["attempt"] + 1, kl_coef=retry.kl_coef, lr_scale=retry.lr_scale, step_in_stage=0)
        else:  # accepted, or rejected (previous weights kept): the next stage
            st.update(stage_idx=st["stage_idx"] + 1, attempt=0, kl_coef=None, lr_scale=None, step_in_stage=0)
        self._checkpoint(run, st)
        return st

    def _recover(self, run: Path, err: LearnerLost) -> dict:
        """Rebuild the learner group and continue from the last good checkpoint (steps after it replay
        with the same seeds)."""
        t = self.cfg.topology
        if self.faults["fault/learner_restarts"] >= t.max_learner_restarts:
            raise RuntimeError(f"{err}; topology.max_learner_restarts={t.max_learner_restarts} already used. "
                               f"The checkpoints under {run / 'checkpoints'} are intact: continue with "
                               "`conrec run --config ... --resume`") from err
        self.faults["fault/learner_restarts"] += 1
        log.warning("%s; rebuilding the learner group (restart %d) and resuming from the last checkpoint",
                    err, self.faults["fault/learner_restarts"])
        for a in self.learners:
            ray.kill(a, no_restart=True)
        self._start_learners()
        self.weights.reset(self.learners, self.rollouts)
        st = self._load_state(run)
        if st is None:
            raise RuntimeError(f"{err}, and no checkpoint under {run / 'checkpoints'} verifies") from err
        return st

    def _checkpoint(self, run: Path, st: dict) -> None:
        """Learner state (all ranks: weights, optimizer, scheduler) + driver state, manifest written last."""
        from common.atomic import write_json_atomic
        from trainer.checkpoint import step_dir, write_manifest

        d = step_dir(run, self.step)
        (d / "manifest.json").unlink(missing_ok=True)  # rewriting a step (its stage ended): unsealed until done
        self._get_learners([a.save_state.remote(str(d / "ds")) for a in self.learners], "checkpoint")
        write_json_atomic({**st, "step": self.step, "rng": self.rng.bit_generator.state}, d / "driver.json")
        write_manifest(d, {"step": self.step}, keep=self.cfg.grpo.keep_checkpoints)

    def _load_state(self, run: Path) -> dict | None:
        import json

        from trainer.checkpoint import latest_checkpoint

        ck = latest_checkpoint(run)
        if ck is None:
            log.warning("--resume: no complete GRPO checkpoint under %s; GRPO starts from the SFT model", run)
            return None
        st = json.loads((ck / "driver.json").read_text())
        ray.get([a.load_state.remote(str(ck / "ds")) for a in self.learners])
        self.sync()
        self.step = st.pop("step")
        self.rng.bit_generator.state = st.pop("rng")
        self.mlog.truncate(self.step)  # the steps after the checkpoint are replayed, not logged twice
        log.info("resumed GRPO from %s: step %d, stage %d, attempt %d", ck, self.step, st["stage_idx"], st["attempt"])
        return st

    def save(self, d: Path) -> Path:
        d.mkdir(parents=True, exist_ok=True)
        ray.get(self.learners[0].save.remote(str(d)))
        from trainer.sft import write_model_card

        write_model_card(d, self.sid_dir, self.cfg.sft.context, self.cfg.data)
        return d

    def restore(self, d: Path) -> None:
        from safetensors.torch import load_file

        ref = ray.put(list(load_file(str(next(Path(d).glob("*.safetensors")))).items()))
        ray.get([a.load_weights.remote(ref) for a in self.learners])
        self.sync()  # the engines get them the way they get every update


def _not_alive(actors: list, grace_s: float = 10.0) -> list[int]:
    """Indices of the actors the GCS does not list as ALIVE (dead or restarting), waiting up to `grace_s`
    for a death to be noticed. Asking the actors themselves would queue behind their blocked calls, and
    Ray's state API needs the dashboard, which a local run does not start."""
    from ray._private.state import actors as actor_table

    deadline = time.monotonic() + grace_s
    while True:
        down = [i for i, a in enumerate(actors) if (actor_table(a._actor_id.hex()) or {}).get("State") != "ALIVE"]
        if down or time.monotonic() > deadline:
            return down
        time.sleep(0.5)
