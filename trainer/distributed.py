"""torch.distributed / DeepSpeed set-up shared by every learner.

One place decides the backend (NCCL with CUDA, gloo on CPU) and builds the DeepSpeed config, so
the SFT and GRPO learners run the same code on a laptop and on a GPU cluster.
"""

from __future__ import annotations

import os
from datetime import timedelta


def backend() -> str:
    import torch

    return "nccl" if torch.cuda.is_available() else "gloo"


def init_distributed(timeout_s: int = 600) -> tuple[int, int]:
    """Initialise torch.distributed through DeepSpeed from the usual env vars; return (rank, world)."""
    import deepspeed
    import torch.distributed as dist

    for var in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE"):
        if var not in os.environ:
            raise RuntimeError(
                f"init_distributed: environment variable {var} is not set. Launch with torchrun, the "
                "deepspeed launcher, or a conrec learner actor (which sets MASTER_ADDR/PORT, RANK, WORLD_SIZE)."
            )
    if not dist.is_initialized():
        addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        if addr in ("127.0.0.1", "localhost") and "TORCHELASTIC_RUN_ID" not in os.environ:
            # torch's own rendezvous store would listen on every interface; a local run keeps it on loopback
            dist.init_process_group(backend(), store=make_store(addr, port, rank, world, timeout_s), rank=rank,
                                    world_size=world, timeout=timedelta(seconds=timeout_s))
        deepspeed.init_distributed(dist_backend=backend(), timeout=timedelta(seconds=timeout_s))
    return dist.get_rank(), dist.get_world_size()


def make_store(addr: str, port: int, rank: int, world: int, timeout_s: float):
    """A rendezvous TCPStore whose server (on rank 0) listens on `addr` only, not on every interface
    as torch's default does."""
    import socket

    import torch.distributed as dist

    kw = dict(world_size=world, timeout=timedelta(seconds=timeout_s))
    if rank != 0:
        return dist.TCPStore(addr, port, is_master=False, **kw)
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((addr, port))
    sock.listen(128)
    return dist.TCPStore(addr, port, is_master=True, master_listen_fd=sock.detach(), **kw)  # the store owns the fd


def ds_config(stage: int, micro_batch: int, grad_accum: int = 1, bf16: bool = False,
              grad_clip: float = 1.0) -> dict:
    """A DeepSpeed config for ZeRO `stage` (0-3). The optimizer is a client torch AdamW."""
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"ZeRO stage must be 0, 1, 2 or 3, got {stage!r}")
    cfg = {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": grad_accum,
        "gradient_clipping": grad_clip,
        "zero_optimization": {"stage": stage},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if bf16:
        cfg["bf16"] = {"enabled": True}
    return cfg
