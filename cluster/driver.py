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
import os
import time
from pathlib import Path

import numpy as np
import ray
from verl.utils.profiler import marked_timer

from cluster.placement import PlacementError, placement_message, unseen_from, where
from cluster.run_config import RunConfig
from common.actor_group import ActorGroup, ActorLost, get
from common.faults import wait_restarted
from rollout.engine import SamplingConfig
from trainer.batch import StepBatch
from trainer.curriculum import get_curriculum
from trainer.prompts import ContextConfig, build_context

log = logging.getLogger(__name__)


def stage_dir_name(stage: str, attempt: int = 0) -> str:
    """The folder under RUN/grpo holding a curriculum stage's weights ('start' = the SFT policy)."""
    return "stage_start" if stage == "start" else f"stage_{stage}_try{attempt}"


def _alive_nodes() -> set[str]:
    return {n["NodeID"] for n in ray.nodes() if n.get("Alive")}


class LearnerLost(RuntimeError):
    """A learner rank died; the group's collective state is gone and must be rebuilt from a checkpoint."""


class Driver:
    def __init__(self, cfg: RunConfig, examples, gt, index, model_dir: str, sid_dir: str, mlog):
        from transformers import AutoTokenizer

        from cluster.rollout_actor import RolloutActor
        from cluster.weight_sync import make_sync
        from reward.server import RewardServer
        from sid.tokens import SidTokenMap

        self.cfg, self.ex, self.index, self.mlog = cfg, examples, index, mlog
        self.sid_dir = sid_dir
        t = cfg.topology
        if cfg.grpo.prompts_per_step < t.learner_ranks:
            raise ValueError(f"grpo.prompts_per_step={cfg.grpo.prompts_per_step} < topology.learner_ranks="
                             f"{t.learner_ranks}: every learner rank needs at least one prompt group per step")
        self.tok = tok = AutoTokenizer.from_pretrained(model_dir)
        self.tmap = SidTokenMap(tok, index.level_sizes)
        self.reward = RewardServer(cfg.grpo.reward, gt, index, self.tmap.table(len(tok)),
                                   num_cpus_per_worker=t.cpus_per_actor)
        self.model_dir = model_dir
        self.pg, self.place = self._placement_group()
        n = t.rollout_actors + t.learner_ranks
        blind = unseen_from(Path(cfg.run_dir) / "grpo", self.place, n)
        if blind:
            where_ = [f"{'rollout actor' if i < t.rollout_actors else 'learner rank'} "
                      f"{i if i < t.rollout_actors else i - t.rollout_actors}" for i in blind]
            raise FileNotFoundError(f"run_dir {cfg.run_dir} is not visible from the node(s) of {', '.join(where_)}: "
                                    "models and checkpoints pass through it, so it must be on storage every node "
                                    "mounts (a shared file system), at the same absolute path")
        # Ray restarts a dead rollout actor; the driver (not Ray) resubmits its shard after giving it weights
        self.rollouts = ActorGroup("rollout actor", [
            RolloutActor.options(num_cpus=t.cpus_per_actor, num_gpus=t.gpus_per_rollout,
                                 max_restarts=t.max_actor_restarts, max_task_retries=0,
                                 scheduling_strategy=self.place(i)).remote(
                t.rollout_engine, model_dir, sid_dir, cfg.seed + i, cfg.rollout) for i in range(t.rollout_actors)],
            max_restarts=t.max_actor_restarts, restart_timeout_s=t.placement_timeout_s)
        self.faults = {"fault/rollout_restarts": 0, "fault/learner_restarts": 0, "fault/node_losses": 0}
        self.start_nodes = _alive_nodes()
        self._start_learners()
        self.rollouts.call_all("ready")
        g = cfg.grpo
        self.weights = make_sync(g.sync_transport, self.learners, self.rollouts, g.sync_bucket_mb, g.sync_timeout_s,
                                 g.learner.zero_stage == 3, g.sync_backend)
        self.rng = np.random.default_rng(cfg.seed)
        self.step = 0

    def _start_learners(self) -> None:
        """One actor per rank in its bundle; a fresh rendezvous port each time (a rebuilt group too)."""
        from cluster.learner_actor import LearnerActor, free_port_on_node

        t = self.cfg.topology
        try:  # bounded: a bundle on a node Ray has not yet declared lost, and cannot place again, would hang here
            addr, port = ray.get(ray.remote(num_cpus=0)(free_port_on_node).options(
                scheduling_strategy=self.place(t.rollout_actors)).remote(), timeout=t.placement_timeout_s)
            # no restarts: a lost rank takes the group's collective state with it (Driver._recover rebuilds it)
            self.learners = ActorGroup("learner rank", [
                LearnerActor.options(num_cpus=t.cpus_per_actor, num_gpus=t.gpus_per_learner,
                                     scheduling_strategy=self.place(t.rollout_actors + r)).remote(
                    r, t.learner_ranks, addr, port) for r in range(t.learner_ranks)])
            self.learners.call_all("ready", timeout_s=t.placement_timeout_s)
        except ray.exceptions.GetTimeoutError:
            raise PlacementError(placement_message(self.bundles, t.placement_strategy, t.placement_timeout_s,
                                                   again=bool(self.faults["fault/learner_restarts"])) +
                                 f" The checkpoints under {Path(self.cfg.run_dir) / 'grpo' / 'checkpoints'} are "
                                 "intact: once the cluster has them, continue with `conrec run --config ... "
                                 "--resume`") from None
        self._learners("setup", [(self.model_dir, self.sid_dir, self.cfg.grpo.learner)] * t.learner_ranks)

    def _placement_group(self):
        """One bundle per rollout actor and learner rank, reserved together, sized from the topology."""
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        t = self.cfg.topology

        def bundle(gpus):
            return {"CPU": t.cpus_per_actor, **({"GPU": gpus} if gpus else {})}

        bundles = [bundle(t.gpus_per_rollout)] * t.rollout_actors + [bundle(t.gpus_per_learner)] * t.learner_ranks
        self.bundles = bundles
        pg = placement_group(bundles, strategy=t.placement_strategy)
        try:
            ray.get(pg.ready(), timeout=t.placement_timeout_s)
        except ray.exceptions.GetTimeoutError:
            ray.util.remove_placement_group(pg)
            raise PlacementError(placement_message(bundles, t.placement_strategy, t.placement_timeout_s)) from None
        nodes = where(pg, t.rollout_actors)
        log.info("placement (%s) on %d node(s): rollout actors on %s, learner ranks on %s", t.placement_strategy,
                 len(set(nodes["rollout"] + nodes["learner"])), nodes["rollout"], nodes["learner"])
        return pg, lambda i: PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i)

    # ------------------------------------------------------------------ one step
    def train_step(self, ctx: ContextConfig, kl_coef: float) -> dict:
        g, timing = self.cfg.grpo, {}
        with marked_timer("timing/step", timing):
            ids = self.rng.choice(len(self.ex), min(g.prompts_per_step, len(self.ex)), replace=False)
            batch, first_rewards, drop = self._rollout_groups(ids, ctx, timing)
            if g.learner.nll_coef > 0:
                batch.targets = self._targets(batch.example_ids)
            with marked_timer("timing/update", timing):
                upd = self._learners("update", [(shard, kl_coef) for shard in batch.shard(len(self.learners))])
            with marked_timer("timing/weight_sync_total", timing):
                timing["timing/weight_sync"] = self.sync()
            timing["sync/buckets"] = float(self.n_buckets)
            if g.verify_sync_every and (self.step + 1) % g.verify_sync_every == 0:
                timing["sync/verified"] = float(self.verify_sync(batch.prompt_ids[:4]))
        m = {k: float(np.mean([u[k] for u in upd if k in u])) for k in upd[0]}
        m.update({k: v for k, v in first_rewards["metrics"].items() if not k.startswith("timing/")})
        m["reward/group_std"] = float(batch.rewards.reshape(-1, batch.group_size).std(1).mean())
        m["rollout/dropped_groups"] = drop
        m.update(timing)
        self._count_node_losses()
        m.update({k: float(v) for k, v in self.faults.items()})
        self.step += 1
        return m

    def _rollout_groups(self, ids: np.ndarray, ctx: ContextConfig, timing: dict):
        """Prompts → G completions each → rewards, as one StepBatch. With `grpo.dynamic_sampling`, groups whose
        rewards are all equal (zero advantage: no gradient) are replaced by groups of fresh prompts, for up to
        `dynamic_sampling_rounds` more rounds (DAPO). Returns the kept batch, the first round's reward output
        (the policy's rewards before any selection, for the metrics) and the share of groups dropped."""
        g = self.cfg.grpo
        want, kept, first, used, generated = len(ids), [], None, set(), 0
        rounds = 1 + (g.dynamic_sampling_rounds if g.dynamic_sampling else 0)
        for round_ in range(rounds):
            batch, rew = self._generate_and_score(ids, ctx, round_, timing)
            first = first or rew
            generated += batch.n_groups
            used.update(ids.tolist())
            sc = batch.rewards.reshape(-1, batch.group_size)
            ok = np.flatnonzero(sc.std(1) > 1e-8) if g.dynamic_sampling else np.arange(batch.n_groups)
            have = sum(k.n_groups for k in kept)
            kept.append(batch.groups(ok[: want - have]))
            fresh = np.setdiff1d(np.arange(len(self.ex)), np.fromiter(used, int))
            if have + len(ok) >= want or round_ == rounds - 1 or len(fresh) == 0:
                break
            ids = self.rng.choice(fresh, min(want, len(fresh)), replace=False)
        out = StepBatch.concat(kept)
        short = self.cfg.topology.learner_ranks - out.n_groups
        if short > 0:  # every learner rank needs a group: top up with zero-advantage groups (no gradient)
            out = StepBatch.concat([out, batch.groups(np.arange(short) % batch.n_groups)])
        return out, first, 1.0 - out.n_groups / generated

    def _generate_and_score(self, ids: np.ndarray, ctx: ContextConfig, round_: int, timing: dict
                            ) -> tuple[StepBatch, dict]:
        """One round: the examples' prompts (tokenized once, here), G completions each, their rewards; and
        the reward server's whole output (its metrics)."""
        g = self.cfg.grpo
        prompts = [build_context(self.ex.ctx_items.iat[i], self.ex.ctx_fb.iat[i], self.ex.ctx_ts.iat[i],
                                 int(self.ex.t_cut.iat[i]), self.index.sid, ctx) for i in ids]
        p_ids = self.tok(prompts, add_special_tokens=False)["input_ids"]
        with marked_timer("timing/generate", timing):
            comps = [c for grp in self.generate(p_ids, round_) for c in grp]
        batch = StepBatch(np.asarray(ids), p_ids, [c.token_ids for c in comps], [c.logprobs for c in comps],
                          g.sampling.n, g.sampling.temperature)
        with marked_timer("timing/reward", timing):
            rew = self.reward.score(batch.row_example_ids(), batch.completions, batch.group_size)
            batch.rewards, batch.reward_terms = rew["score"], rew["terms"]
            if g.inject_target:
                rew["metrics"]["rollout/injected_groups"] = self._inject_targets(batch)
        return batch, rew

    def _inject_targets(self, batch: StepBatch) -> float:
        """`grpo.inject_target`: in each group where a future negative of its example, in place of the last row,
        would score above every drawn row, it takes that row, and the group keeps the trial's rewards (a group
        reward such as rank_hit's depends on the whole group). In place; returns the share of groups changed."""
        G, P = batch.group_size, batch.n_groups
        last = np.arange(P) * G + G - 1
        trial = StepBatch(batch.example_ids, batch.prompt_ids, list(batch.completions), None, G)
        for r, t in zip(last, self._targets(batch.example_ids)):
            trial.completions[r] = t
        rew = self.reward.score(trial.row_example_ids(), trial.completions, G)
        inj = rew["score"][last] > batch.rewards.reshape(P, G).max(1) + 1e-8
        rows = (np.flatnonzero(inj)[:, None] * G + np.arange(G)).ravel()
        batch.rewards = batch.rewards.copy()
        batch.rewards[rows] = rew["score"][rows]
        for k, v in rew["terms"].items():
            if k in batch.reward_terms:
                batch.reward_terms[k] = batch.reward_terms[k].copy()
                batch.reward_terms[k][rows] = v[rows]
        for r in last[inj]:
            batch.completions[r] = trial.completions[r]
            if batch.engine_logprobs is not None:
                batch.engine_logprobs[r] = None
        return float(inj.mean())

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

    def generate(self, prompts: list, round_: int = 0) -> list:
        """G completions per prompt, one contiguous shard per rollout actor. The seed of a shard is fixed by
        (run seed, step, round, shard), so a shard regenerated after its actor died draws the same samples."""
        g = self.cfg.grpo
        shards = np.array_split(np.arange(len(prompts)), len(self.rollouts))
        seeds = [g.sampling.seed + 1000 * self.step + 100 * round_ + i for i in range(len(shards))]
        calls = [([prompts[j] for j in s], SamplingConfig(**{**vars(g.sampling), "seed": seed})) if len(s) else None
                 for s, seed in zip(shards, seeds)]

        def restarted(i, e):
            self.faults["fault/rollout_restarts"] += 1
            log.warning("rollout actor %d died at step %d (%s); restart %d: syncing weights and regenerating its %d "
                        "prompts", i, self.step + 1, type(e).__name__, self.faults["fault/rollout_restarts"],
                        len(calls[i][0]))
            self.weights.reset(self.learners, self.rollouts)  # a collective group lost a member
            self.sync([self.rollouts[i]])  # a restarted engine holds the SFT weights

        return [grp for part in self.rollouts.call("generate", calls, on_restart=restarted) for grp in part]

    def engine_validation(self, val, k: int, ctx: ContextConfig, extra_beams: int = 20) -> np.ndarray:
        """Per validation user, FHR@k of the current policy, ranked on the rollout engines."""
        from evaluation.metrics import any_hit

        topk = self.engine_topk(val.test, np.arange(len(val.test)), k, ctx, extra_beams)
        return any_hit(topk, val.test["future_neg"].to_list()).astype(np.float64)

    def prompts_of(self, t, rows: np.ndarray, ctx: ContextConfig) -> list[str]:
        """The evaluation prompt of each row of a split's test table (the context the model card names)."""
        return [build_context(t["context_items"].iat[r], t["context_fb"].iat[r], t["context_ts"].iat[r],
                              int(t["t_cut"].iat[r]), self.index.sid, ctx) for r in rows]

    def engine_topk(self, t, rows: np.ndarray, k: int, ctx: ContextConfig, extra_beams: int = 20) -> np.ndarray:
        """int[len(rows), k] items of the current policy for those rows of a test table, ranked on the rollout
        engines (the weights are already there): a constrained beam of k + extra_beams codes per prompt, the
        user's context items removed, -1 where fewer remain."""
        p_ids = self.tok(self.prompts_of(t, rows, ctx), add_special_tokens=False)["input_ids"]
        beam = SamplingConfig(n=k + extra_beams, temperature=1.0, max_tokens=self.cfg.grpo.sampling.max_tokens,
                              mode="beam")
        shards = np.array_split(np.arange(len(p_ids)), len(self.rollouts))
        calls = [([p_ids[j] for j in s], beam) if len(s) else None for s in shards]
        groups = [grp for part in self.rollouts.call("generate", calls) for grp in part]
        topk = np.full((len(rows), k), -1, dtype=np.int64)
        for b, (r, grp) in enumerate(zip(rows, groups)):
            seen = set(t["context_items"].iat[r].tolist())
            codes = (self.tmap.decode(c.token_ids) for c in grp)
            items = [i for i in (self.index.trie.item(c) if c is not None else None for c in codes)
                     if i is not None and i not in seen]
            items = list(dict.fromkeys(items))[:k]  # a short trie repeats its last code: keep each item once
            topk[b, :len(items)] = items
        return topk

    def learner_code_logprobs(self, prompts: list[str], codes: np.ndarray) -> np.ndarray:
        """log p(code | prompt) [B, C] of the current policy, teacher-forced on the learners (each rank a
        contiguous shard of the prompts; the same computation as the driver's evaluation)."""
        shards = np.array_split(np.arange(len(prompts)), len(self.learners))
        parts = self._learners("code_logprobs", [([prompts[j] for j in s], codes[s]) for s in shards])
        return np.concatenate(parts, 0)

    def _learners(self, method: str, args: list) -> list:
        """`method` on every learner rank. A lost rank ends the call at once (the others may be blocked in a
        collective with it): LearnerLost, which the curriculum loop answers with Driver._recover."""
        try:
            return self.learners.call(method, args)
        except ActorLost as e:
            raise LearnerLost(f"learner rank {e.index} was lost during {method} at step {self.step + 1}") from e
        except ray.exceptions.RayTaskError as e:
            # a rank whose peer vanished (its node lost) fails in the collective before Ray reports the peer
            # dead; a collective error is a RuntimeError, so only those wait for the GCS's verdict
            if not isinstance(e.cause, RuntimeError):
                raise
            down = _not_alive(self.learners.actors, self.cfg.topology.lost_member_grace_s)
            if not down:
                raise
            raise LearnerLost(f"learner rank {down[0]} was lost during {method} at step {self.step + 1} (a peer "
                              f"saw: {str(e.cause).splitlines()[0][:160]})") from e

    def verify_sync(self, prompts: list) -> bool:
        """Each rollout engine's greedy codes must equal the learner's: same weights, same constraint."""
        want = get(self.learners[0].greedy_codes.remote(prompts))
        greedy = SamplingConfig(n=1, temperature=0.0, max_tokens=self.cfg.grpo.sampling.max_tokens)
        for i, r in enumerate(self.rollouts):
            got = [self.tmap.decode(g[0].token_ids) for g in get(r.generate.remote(prompts, greedy))]
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
            down = _not_alive(self.learners.actors + self.rollouts.actors, self.cfg.topology.lost_member_grace_s)
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
        st = (self._load_state(run) if resume else None) or self._start_state(run, validate)
        budget = self.cfg.grpo.max_total_steps
        from common.progress import progress

        total = sum(x.steps for x in stages)
        bar = progress(total, "grpo", initial=min(self.step, total))
        while st["stage_idx"] < len(stages):
            base = stages[st["stage_idx"]]
            stage = Stage(base.name, base.context_mode, base.steps, st["kl_coef"] or base.kl_coef,
                          st.get("lr_scale") or base.lr_scale)
            ctx = self.cfg.sft.context.for_stage(stage.context_mode, self.cfg.grpo.max_context_items)
            self.learners.call_all("set_lr", self.cfg.grpo.learner.lr * stage.lr_scale)
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
                self._log_step(m, stage.name, st["stage_idx"])
                if self.cfg.grpo.save_every and self.step % self.cfg.grpo.save_every == 0:
                    self._checkpoint(run, st)
            else:
                st = self._end_stage(cur, stage, st, run, validate)
        bar.close()
        self.final_dir = Path(st["best_dir"])
        return st["records"]

    def _start_state(self, run: Path, validate) -> dict:
        """A fresh curriculum: the SFT policy's validation is the first best; step 0 is checkpointed, so a lost
        learner rank always has a checkpoint to come back to."""
        self.mlog.truncate(0)  # a --resume that found no checkpoint starts GRPO over
        hits = validate(self.save(run / stage_dir_name("start")))
        log.info("validation before GRPO: %.4f (%d users)", float(np.mean(hits)), len(hits))
        st = {"stage_idx": 0, "attempt": 0, "kl_coef": None, "lr_scale": None, "step_in_stage": 0,
              "best_hits": hits.tolist(), "best_dir": str(run / stage_dir_name("start")),
              "records": [{"stage": "start", "val": float(np.mean(hits)), "accepted": True}]}
        self._checkpoint(run, st)
        return st

    def _log_step(self, m: dict, stage: str, stage_idx: int) -> None:
        m["curriculum/stage_index"] = stage_idx
        self.mlog.log(self.step, {k: v for k, v in m.items() if isinstance(v, (int, float))})
        # a line per step with -v; a quiet run shows the progress bar and keeps the figures in metrics.jsonl
        level = logging.DEBUG if os.environ.get("CONREC_LOG_DIR") else logging.INFO
        log.log(level, "step %d [%s] reward %.4f invalid %.3f kl %.4f gen %.2fs reward %.2fs update %.2fs sync %.3fs",
                 self.step, stage, m["reward/mean"], m["reward/invalid_rate"], m.get("actor/kl", 0.0),
                 m["timing/generate"], m["timing/reward"], m["timing/update"], m["timing/weight_sync"])

    def _end_stage(self, cur, stage, st: dict, run: Path, validate) -> dict:
        """Validate the stage's policy; accept it, retry the stage with a new β, or keep the previous best."""
        d = self.save(run / stage_dir_name(stage.name, st["attempt"]))
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
        self._count_node_losses()
        # a lost node takes its bundles with it; Ray places them again if the surviving nodes can hold them
        if not self.pg.wait(t.placement_timeout_s):
            raise PlacementError(placement_message(self.bundles, t.placement_strategy, t.placement_timeout_s,
                                                   again=True) +
                                 f" The checkpoints under {run / 'checkpoints'} are intact: once the cluster has "
                                 "them, continue with `conrec run --config ... --resume`") from err
        self._start_learners()
        self.weights.reset(self.learners, self.rollouts)
        st = self._load_state(run)
        if st is None:
            raise RuntimeError(f"{err}, and no checkpoint under {run / 'checkpoints'} verifies") from err
        return st

    def _count_node_losses(self) -> None:
        """`fault/node_losses`: nodes alive when the run started that are gone now (warned once each)."""
        lost = self.start_nodes - _alive_nodes()
        if len(lost) > self.faults["fault/node_losses"]:
            log.warning("%d Ray node(s) of the %d the run started on are gone (%s); their actors are placed again "
                        "on the surviving nodes", len(lost), len(self.start_nodes),
                        ", ".join(sorted(n[:8] for n in lost)))
        self.faults["fault/node_losses"] = len(lost)

    def _checkpoint(self, run: Path, st: dict) -> None:
        """Learner state (all ranks: weights, optimizer, scheduler) + driver state, manifest written last."""
        from common.atomic import write_json_atomic
        from trainer.checkpoint import step_dir, write_manifest

        d = step_dir(run, self.step)
        (d / "manifest.json").unlink(missing_ok=True)  # rewriting a step (its stage ended): unsealed until done
        self._learners("save_state", [(str(d / "ds"),)] * len(self.learners))
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
        self.learners.call_all("load_state", str(ck / "ds"))
        self.sync()
        self.step = st.pop("step")
        self.rng.bit_generator.state = st.pop("rng")
        self.mlog.truncate(self.step)  # the steps after the checkpoint are replayed, not logged twice
        log.info("resumed GRPO from %s: step %d, stage %d, attempt %d", ck, self.step, st["stage_idx"], st["attempt"])
        return st

    def save(self, d: Path) -> Path:
        d.mkdir(parents=True, exist_ok=True)
        self._learners("save", [(str(d),)] * len(self.learners))  # every rank: ZeRO-3 gathers the shards
        from trainer.sft import write_model_card

        write_model_card(d, self.sid_dir, self.cfg.sft.context, self.cfg.data)
        return d

    def restore(self, d: Path) -> None:
        from safetensors.torch import load_file

        ref = ray.put(list(load_file(str(next(Path(d).glob("*.safetensors")))).items()))
        self.learners.call_all("load_weights", ref)
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
