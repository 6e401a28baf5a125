"""A minimal DeepSpeed ZeRO training step on the tiny Qwen2, used by `conrec doctor` and the tests.

Run on N ranks with `python -m torch.distributed.run --nproc_per_node N -m trainer.ds_smoke`.
"""

from __future__ import annotations

import argparse
import json


def zero_step(stage: int = 2, steps: int = 2, seed: int = 0) -> tuple[float, float]:
    """Train the tiny model `steps` times on a fixed batch; return (first loss, last loss) on rank 0.

    Every rank sees the same batch, so the loss must fall on every rank after the first update.
    """
    import deepspeed
    import torch

    from trainer.distributed import ds_config, init_distributed
    from trainer.models import TinyModelConfig, build_tiny_qwen2

    rank, world = init_distributed()
    torch.manual_seed(seed)
    model = build_tiny_qwen2(vocab_size=97, cfg=TinyModelConfig(seed=seed))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=opt, config=ds_config(stage, micro_batch=4))
    ids = torch.randint(0, 97, (4, 16), generator=torch.Generator().manual_seed(seed)).to(engine.device)
    losses = []
    for _ in range(steps):
        loss = engine(input_ids=ids, labels=ids).loss
        engine.backward(loss)
        engine.step()
        losses.append(float(loss.detach()))
    return losses[0], losses[-1]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--stage", type=int, default=2)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--out", help="folder for one rankN.json per rank (ranks' stdout interleaves under torchrun)")
    p.add_argument("--local_rank", type=int, default=None)  # passed by the deepspeed launcher
    a = p.parse_args()
    import torch.distributed as dist

    first, last = zero_step(a.stage, a.steps)
    row = {"rank": dist.get_rank(), "world": dist.get_world_size(), "first": first, "last": last}
    if a.out:
        from pathlib import Path

        from common.atomic import write_json_atomic

        write_json_atomic(row, Path(a.out) / f"rank{row['rank']}.json")
    else:
        print(json.dumps(row), flush=True)
    dist.barrier()  # no rank tears the group down while another still talks to it
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
