"""Weight-sync bucketing and (un)flattening by hand, and the collective transport over a real gloo
group of three processes."""

import multiprocessing as mp

import pytest
import torch

from cluster.weight_sync import choose_backend, flatten, plan_buckets, tensor_meta, unflatten


def test_plan_buckets_by_hand():
    meta = [(f"m.{c}.p.w", shape, dt) for c, shape, dt in
            [("a", (2, 3), "float32"), ("b", (4,), "float32"), ("c", (10,), "bfloat16"), ("d", (1,), "bfloat16"),
             ("e", (100,), "bfloat16")]]  # five modules of one parameter each
    # a = 24 B; b = 16 B would pass 32 B; c changes dtype; d (2 B) joins c (20 B); e (200 B) exceeds alone
    assert plan_buckets(meta, 32) == [[0], [1], [2, 3], [4]]
    assert plan_buckets(meta[:2], 1 << 20) == [[0, 1]]
    assert plan_buckets([], 10) == []


def test_buckets_never_split_a_fused_module():
    """q/k/v of one attention block (fused into qkv_proj by vLLM) travel together, whatever the limit."""
    meta = [("model.embed_tokens.weight", (10, 4), "float32")]
    for layer in range(2):
        meta += [(f"model.layers.{layer}.self_attn.{p}_proj.weight", (4, 4), "float32") for p in "qkvo"]
        meta += [(f"model.layers.{layer}.mlp.{p}_proj.weight", (8, 4), "float32") for p in ("gate", "up", "down")]
    plan = plan_buckets(meta, 64)  # smaller than any module group
    assert plan == [[0], [1, 2, 3, 4], [5, 6, 7], [8, 9, 10, 11], [12, 13, 14]]
    # embed 160 B + attention 256 B + MLP 384 B = 800 B fit 1000 B; the next attention block does not
    assert plan_buckets(meta, 1000) == [list(range(8)), list(range(8, 15))]
    with pytest.raises(ValueError, match="mixes dtypes"):
        plan_buckets([("m.x.a.w", (1,), "float32"), ("m.x.b.w", (1,), "bfloat16")], 10)


def test_backend_choice():
    assert choose_backend([("n1", ("0",)), ("n1", ("1",)), ("n2", ("0",))]) == "nccl"  # a GPU each
    assert choose_backend([("n1", ("0",)), ("n1", ("0",))]) == "gloo"  # colocated on one GPU
    assert choose_backend([("n1", ()), ("n1", ())]) == "gloo"  # CPU only


def test_flatten_unflatten_round_trip():
    named = [("w", torch.arange(6.0).view(2, 3)), ("b", torch.tensor([7.0, 8.0])), ("s", torch.tensor(9.0))]
    meta = tensor_meta(named)
    assert meta == [("w", (2, 3), "float32"), ("b", (2,), "float32"), ("s", (), "float32")]
    buf = flatten([t for _, t in named])
    assert buf.tolist() == [0, 1, 2, 3, 4, 5, 7, 8, 9]
    views = unflatten(buf, [m[1] for m in meta])
    for (_, t), v in zip(named, views):
        assert torch.equal(t, v)
    assert views[0].data_ptr() == buf.data_ptr()  # views, not copies
    with pytest.raises(ValueError, match="does not match its plan"):
        unflatten(buf, [(2, 3)])


def _member(rank, port, q):
    from cluster.weight_sync import SyncGroup

    g = SyncGroup("127.0.0.1", port, rank, 3, "gloo", 30)
    named = [(f"m.t{i}.p.w", torch.full((i + 1, 3), float(i))) for i in range(5)]
    meta = tensor_meta(named)
    plan = plan_buckets(meta, 40)  # 12, 24, 36, 48, 60 bytes → several buckets
    if rank == 0:
        g.send(named, plan)
        q.put((rank, len(plan), None))
    else:
        got = []
        g.receive(meta, plan, lambda pairs: got.extend((k, v.clone()) for k, v in pairs))
        q.put((rank, len(plan), all(k == n and torch.equal(v, t) for (k, v), (n, t) in zip(got, named))
               and len(got) == len(named)))


def test_collective_broadcast_reaches_every_member():
    from common.net import free_port

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_member, args=(r, port, q)) for r in range(3)]
    for p in procs:
        p.start()
    res = sorted(q.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
    assert [r[1] for r in res] == [4, 4, 4]
    assert res[1][2] and res[2][2]
