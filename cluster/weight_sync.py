"""Weight sync: the learner's weights → every rollout engine after each update, in buckets.

Transports, chosen by `grpo.sync_transport` (registry `TRANSPORTS`):

- `object_store`: learner rank 0 hands the state dict to the driver; each bucket goes into Ray's
  object store once and every engine loads it (`reload_weights`). Works on any cluster.
- `collective`: learner rank 0 and the engines form their own torch.distributed group, separate
  from the learners' DeepSpeed group: NCCL when each member has a GPU of its own (the bytes then
  never leave the devices' interconnect), gloo otherwise (CPU, or engines sharing the learner's GPU).
  Each bucket is flattened into one buffer and broadcast from rank 0; the engines unflatten it into
  views and load them. Only the bucket plan (names, shapes, dtypes) travels through Ray, once.

Both take the same bucket plan (`plan_buckets`, `grpo.sync_bucket_mb`) and a deadline
(`grpo.sync_timeout_s`). With ZeRO-3 the weights are sharded, so every learner rank takes part in
gathering them; rank 0 alone sends. A group member that dies (a restarted rollout actor) breaks the
collective group, so `reset()` rebuilds it with a fresh port.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta

import ray

from common.actor_group import get

# ---------------------------------------------------------------------------------------------- plan


def module_group(name: str) -> str:
    """The module whose parameters vLLM may fuse into one kernel tensor (q/k/v_proj → qkv_proj under
    self_attn, gate/up_proj → gate_up_proj under mlp): the name minus its last two components."""
    return name.rsplit(".", 2)[0] if name.count(".") >= 2 else ""


def plan_buckets(meta: list[tuple[str, tuple, str]], limit_bytes: int) -> list[list[int]]:
    """Consecutive tensors grouped into buckets of at most `limit_bytes` and one dtype each (a bucket
    flattens into one buffer). A bucket never splits a module group: vLLM's in-place reload rebuilds a
    fused layer from what one call delivers, so a layer whose q_proj and v_proj arrived in different
    calls would be left half uninitialised. A group larger than the limit gets a bucket of its own.
    `meta`: (name, shape, dtype) in state-dict order."""
    import torch

    groups: list[list[int]] = []
    for i, (name, _, _) in enumerate(meta):
        if groups and module_group(meta[groups[-1][0]][0]) == module_group(name):
            groups[-1].append(i)
        else:
            groups.append([i])
    buckets, cur, size, cur_dtype = [], [], 0, None
    for grp in groups:
        dtypes = {meta[i][2] for i in grp}
        if len(dtypes) > 1:
            raise ValueError(f"module {module_group(meta[grp[0]][0])!r} mixes dtypes {sorted(dtypes)}; weight sync "
                             "sends one dtype per bucket (cast the policy to one dtype)")
        nbytes = sum(math.prod(meta[i][1]) * getattr(torch, meta[i][2]).itemsize for i in grp)
        dtype = dtypes.pop()
        if cur and (size + nbytes > limit_bytes or dtype != cur_dtype):
            buckets.append(cur)
            cur, size = [], 0
        cur += grp
        size += nbytes
        cur_dtype = dtype
    if cur:
        buckets.append(cur)
    return buckets


def tensor_meta(named: list) -> list[tuple[str, tuple, str]]:
    return [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in named]


def flatten(tensors: list):
    import torch

    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(buffer, shapes: list[tuple]) -> list:
    """Views of `buffer` with the given shapes (no copies)."""
    out, off = [], 0
    for shape in shapes:
        n = math.prod(shape)
        out.append(buffer[off:off + n].view(shape))
        off += n
    if off != buffer.numel():
        raise ValueError(f"weight bucket of {buffer.numel()} elements does not match its plan ({off})")
    return out


# ------------------------------------------------------------------------- in the actors' processes


def device_slot() -> tuple[str, tuple]:
    """(node id, GPU ids Ray gave this actor): what decides whether NCCL can join the members."""
    return ray.get_runtime_context().get_node_id(), tuple(str(g) for g in ray.get_gpu_ids())


def choose_backend(slots: list[tuple[str, tuple]]) -> str:
    """NCCL when every member has a GPU of its own (NCCL refuses two ranks on one device); else gloo,
    which moves the buckets through host memory (colocated learner and engines, or CPU only)."""
    seen = set()
    for node, gpus in slots:
        if not gpus:
            return "gloo"
        for g in gpus:
            if (node, g) in seen:
                return "gloo"
            seen.add((node, g))
    return "nccl"


class SyncGroup:
    """One member of the learner-0 + engines group; lives in a learner or rollout actor."""

    def __init__(self, addr: str, port: int, rank: int, world: int, backend: str, timeout_s: float):
        import torch.distributed as dist

        from trainer.distributed import make_store

        timeout = timedelta(seconds=timeout_s)
        store = make_store(addr, port, rank, world, timeout_s)
        if backend == "nccl":
            self.pg = dist.ProcessGroupNCCL(store, rank, world, dist.ProcessGroupNCCL.Options())
            self.device = "cuda"
        elif backend == "gloo":
            self.pg = dist.ProcessGroupGloo(store, rank, world, timeout)
            self.device = "cpu"
        else:
            raise ValueError(f"weight-sync backend must be 'gloo' or 'nccl', got {backend!r}")

    def broadcast(self, buffer) -> None:
        import torch.distributed as dist

        opts = dist.BroadcastOptions()
        opts.rootRank = 0
        self.pg.broadcast([buffer], opts).wait()

    def send(self, named: list, plan: list[list[int]]) -> None:
        for bucket in plan:
            self.broadcast(flatten([named[i][1].to(self.device) for i in bucket]))

    def receive(self, meta: list, plan: list[list[int]], load) -> float:
        """Each bucket: receive, unflatten, `load([(name, tensor)])`. Returns seconds spent loading."""
        import torch

        loading = 0.0
        for bucket in plan:
            n = sum(math.prod(meta[i][1]) for i in bucket)
            buf = torch.empty(n, dtype=getattr(torch, meta[bucket[0]][2]), device=self.device)
            self.broadcast(buf)
            views = unflatten(buf, [meta[i][1] for i in bucket])
            t0 = time.perf_counter()
            load([(meta[i][0], v) for i, v in zip(bucket, views)])
            loading += time.perf_counter() - t0
        return loading


class SyncMember:
    """The group-membership methods every actor of the group has (mixed into the learner and rollout actors)."""

    def device_slot(self) -> tuple:
        return device_slot()

    def join_sync_group(self, rank: int, addr: str, port: int, world: int, backend: str, timeout_s: float) -> bool:
        self.sync_group = SyncGroup(addr, port, rank, world, backend, timeout_s)
        return True


# ---------------------------------------------------------------------------------- in the driver


class WeightSync:
    """Driver side. `sync(targets)` returns (engine seconds, buckets)."""

    def __init__(self, learners: list, rollouts: list, bucket_mb: float, timeout_s: float, zero3: bool):
        self.learners, self.rollouts = learners, rollouts
        self.limit = int(bucket_mb * 2**20)
        self.timeout_s, self.zero3 = timeout_s, zero3

    def reset(self, learners: list, rollouts: list) -> None:
        """After an actor restart: new handles, and whatever state the transport keeps rebuilt."""
        self.learners, self.rollouts = learners, rollouts

    def _get(self, refs: list, what: str) -> list:
        try:
            return ray.get(refs, timeout=self.timeout_s)
        except ray.exceptions.GetTimeoutError:
            raise RuntimeError(f"weight sync ({type(self).__name__}): {what} did not finish within "
                               f"{self.timeout_s}s (grpo.sync_timeout_s)") from None

    def _gather_calls(self, method: str, *args) -> list:
        """Rank 0's call, plus the other ranks' share of the ZeRO-3 gather (they send nothing)."""
        ranks = self.learners if self.zero3 else self.learners[:1]
        return [getattr(a, method).remote(*args) for a in ranks]


class ObjectStoreSync(WeightSync):
    def sync(self, targets: list | None = None) -> tuple[float, int]:
        targets = self.rollouts if targets is None else targets
        named = self._get(self._gather_calls("named_weights"), "gathering the weights")[0]
        plan = plan_buckets(tensor_meta(named), self.limit)
        spent = 0.0
        for bucket in plan:
            ref = ray.put([named[i] for i in bucket])
            spent += max(self._get([r.update_weights.remote(ref) for r in targets],
                                   f"a bucket of {len(bucket)} tensors reaching {len(targets)} rollout actor(s)"))
        return spent, len(plan)


class CollectiveSync(WeightSync):
    def __init__(self, *a, backend: str = "", **kw):
        super().__init__(*a, **kw)
        self.backend = backend
        self.meta = self.plan = None
        self.joined = False

    def _join(self) -> None:
        addr, port = get(self.learners[0].free_port.remote())  # the group's store lives in learner rank 0
        world = 1 + len(self.rollouts)
        backend = self.backend or choose_backend(get([a.device_slot.remote()
                                                          for a in [self.learners[0], *self.rollouts]]))
        args = (addr, port, world, backend, self.timeout_s)
        self._get([self.learners[0].join_sync_group.remote(0, *args)] +
                  [r.join_sync_group.remote(i + 1, *args) for i, r in enumerate(self.rollouts)],
                  f"forming the {backend} weight-sync group of {world}")
        self.joined = True

    def reset(self, learners: list, rollouts: list) -> None:
        super().reset(learners, rollouts)
        self.joined = False  # rejoin at the next sync

    def sync(self, targets: list | None = None) -> tuple[float, int]:
        # targets is ignored: a broadcast needs every member, and a restarted engine arrives via reset()
        if not self.joined:
            self._join()
        if self.plan is None:
            self.meta = self._get(self._gather_calls("weight_meta"), "reading the weight shapes")[0]
            self.plan = plan_buckets(self.meta, self.limit)
        refs = self._gather_calls("send_weights", self.plan)
        recv = [r.receive_weights.remote(self.meta, self.plan) for r in self.rollouts]
        spent = self._get(refs + recv, f"broadcasting {len(self.plan)} bucket(s)")[len(refs):]
        return max(spent), len(self.plan)


TRANSPORTS = {"object_store": ObjectStoreSync, "collective": CollectiveSync}


def make_sync(transport: str, learners: list, rollouts: list, bucket_mb: float, timeout_s: float,
              zero3: bool, backend: str = "") -> WeightSync:
    if transport not in TRANSPORTS:
        raise ValueError(f"grpo.sync_transport must be one of {sorted(TRANSPORTS)}, got {transport!r}")
    kw = {"backend": backend} if transport == "collective" else {}
    return TRANSPORTS[transport](learners, rollouts, bucket_mb, timeout_s, zero3, **kw)
