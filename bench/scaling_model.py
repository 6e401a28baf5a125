"""Step time and GPU-hours of conrec's pipeline at cluster scale, on paper (docs/SCALING.md).

    python -m bench.scaling_model [--out docs/results/scaling_model]

A FLOP-and-bandwidth model, not a measurement: every input is listed in ASSUMPTIONS with where it comes
from ('measured' = a figure in docs/BENCHMARKS.md, 'spec' = a vendor's published peak, 'assumed' = a
planning value to replace with a measurement). One GRPO step runs its phases one after another, as the
driver does (generate → reward → update → weight sync), on separate rollout and learner GPUs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ASSUMPTIONS = {
    # hardware
    "peak_bf16_flops": (989e12, "spec: H100 SXM dense bf16"),
    "nic_bytes_per_s": (50e9, "spec: one 400 Gb/s InfiniBand NIC per GPU"),
    "nvlink_bytes_per_s": (300e9, "assumed: effective NVLink bandwidth within a node (450 GB/s spec, one way)"),
    "gpus_per_node": (8, "spec: HGX H100"),
    # efficiency
    "learner_mfu": ({0.5e9: 0.20, 1.5e9: 0.30, 7e9: 0.40},
                    "assumed; measured 0.13 for a 210M model (82-102k tokens/s on one H100, bf16, ZeRO-1/2)"),
    "rollout_mfu": (0.25, "assumed: vLLM prefill-bound work (4-5 new tokens per sample)"),
    "grad_comm_hidden": (0.5, "assumed: share of ZeRO-2's gradient reduce-scatter hidden behind backward"),
    # the workload (per prompt): context of 50 items → ≈ 300 prompt tokens, G = 16 completions of 5 tokens
    "prompt_tokens": (300, "assumed: 50 context items × (4 SID tokens + 2 words); the demo's 20 items are ≈ 70"),
    "completion_tokens": (5, "measured: 3-4 SID levels + EOS"),
    "group": (16, "the shipped beam group"),
    "prompts_per_step": (1024, "assumed: one GRPO step's prompts, fixed as GPUs grow (a larger batch is no "
                               "better an RL step); 16 on MovieLens here"),
    "step_overhead_s": (0.1, "assumed: Ray dispatch, vLLM scheduling and Python per step and phase boundary"),
    "rollout_share": (0.3, "assumed: share of GPUs that serve rollouts (balances the phases below)"),
    "rewards_per_s_per_core": (117e3, "measured: 234k future_sim rewards/s on 2 cores (G = 8, 200 targets)"),
    "reward_cores": (32, "assumed: CPU cores per node for reward actors"),
    # Taobao-scale data (the paper's logs are not public; orders of magnitude)
    "sft_examples": (50e6, "assumed: one example per negative with context, Taobao-scale logs"),
    "rl_prompts": (2e6, "assumed: prompts seen by GRPO (2 epochs over 1M, as MiniOneRec's 2 epochs)"),
}
MODELS = [0.5e9, 1.5e9, 7e9]
GPUS = [8, 64, 512]


def a(name):
    return ASSUMPTIONS[name][0]


def step(n_params: float, n_gpus: int) -> dict:
    """Seconds per GRPO step by phase, and the step's prompts, for `n_params` on `n_gpus`."""
    roll = max(1, round(n_gpus * a("rollout_share")))
    learn = n_gpus - roll
    prompts = a("prompts_per_step")
    # one group: the prompt once (vLLM's prefix cache; the learner's packed rows) and G short completions
    tokens = a("prompt_tokens") + a("group") * a("completion_tokens")
    peak = a("peak_bf16_flops")
    gen = 2 * n_params * tokens * prompts / (a("rollout_mfu") * peak * roll)
    mfu = a("learner_mfu")[n_params]
    compute = (2 + 6) * n_params * tokens * prompts / (mfu * peak * learn)  # reference forward + forward/backward
    grad_bytes = 2 * n_params  # bf16 gradients, ring reduce-scatter: ≈ 1× the gradient per GPU over the slowest link
    link = a("nvlink_bytes_per_s") if learn <= a("gpus_per_node") else a("nic_bytes_per_s")
    comm = grad_bytes / link * (1 - a("grad_comm_hidden"))
    sync = 2 * n_params / (a("nvlink_bytes_per_s") if n_gpus <= a("gpus_per_node") else a("nic_bytes_per_s"))
    reward = prompts * a("group") / (a("rewards_per_s_per_core") * a("reward_cores") * max(1, n_gpus // 8))
    phases = {"generate": gen, "reward": reward, "update": compute + comm, "weight_sync": sync,
              "overhead": a("step_overhead_s")}
    total = sum(phases.values())
    return {"rollout_gpus": roll, "learner_gpus": learn, "prompts_per_step": prompts, "phases_s": phases,
            "grad_comm_s": comm, "gpu_busy": (gen * roll + compute * learn) / (sum(phases.values()) * n_gpus),
            "step_s": total, "bottleneck": max(phases, key=phases.get)}


def run_cost(n_params: float, n_gpus: int) -> dict:
    s = step(n_params, n_gpus)
    rl_steps = a("rl_prompts") / s["prompts_per_step"]
    sft_tokens = a("sft_examples") * (a("prompt_tokens") + a("completion_tokens"))
    sft_s = 6 * n_params * sft_tokens / (a("learner_mfu")[n_params] * a("peak_bf16_flops") * n_gpus)
    return {**s, "rl_steps": rl_steps, "rl_hours": rl_steps * s["step_s"] / 3600,
            "rl_gpu_hours": rl_steps * s["step_s"] * n_gpus / 3600, "sft_epoch_hours": sft_s / 3600,
            "sft_epoch_gpu_hours": sft_s * n_gpus / 3600}


def table(rows: list[dict]) -> str:
    head = ("| policy | GPUs (rollout + learner) | prompts / step | generate s | update s (of it gradient comm.) | "
            "weight sync s | step s | "
            "bottleneck | GRPO wall h | GRPO GPU-h | SFT epoch GPU-h |")
    out = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in rows:
        p = r["phases_s"]
        out.append(f"| {r['params'] / 1e9:g} B | {r['gpus']} ({r['rollout_gpus']} + {r['learner_gpus']}) | "
                   f"{r['prompts_per_step']:,} | {p['generate']:.2f} | {p['update']:.2f} ({r['grad_comm_s']:.2f}) | "
                   f"{p['weight_sync']:.2f} | {r['step_s']:.2f} | {r['bottleneck']} | {100 * r['gpu_busy']:.0f} % | "
                   f"{r['rl_hours']:.1f} | {r['rl_gpu_hours']:,.0f} | {r['sft_epoch_gpu_hours']:,.0f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/results/scaling_model")
    args = p.parse_args(argv)
    rows = [{"params": m, "gpus": g, **run_cost(m, g)} for m in MODELS for g in GPUS]
    from common.atomic import write_json_atomic, write_text_atomic

    write_json_atomic({"assumptions": {k: {"value": v, "source": s} for k, (v, s) in ASSUMPTIONS.items()},
                       "rows": rows}, Path(args.out + ".json"))
    md = table(rows)
    write_text_atomic(md + "\n", Path(args.out + ".md"))
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
