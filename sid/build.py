"""`conrec sid build`: items → fused vectors → RQ-VAE → collision-free codes → artifacts + report."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from common.atomic import write_atomic, write_json_atomic, write_parquet_atomic
from common.config import build, to_dict
from sid.collisions import count_collisions, resolve
from sid.encode import EncoderConfig, encode_items
from sid.index import SidIndex, write_vocab
from sid.rqvae import RQVAEConfig, train_rqvae
from sid.vocab import code_to_str

log = logging.getLogger(__name__)


@dataclass
class SidConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    rqvae: RQVAEConfig = field(default_factory=RQVAEConfig)
    collisions: str = "reassign"
    """'reassign' (move to a free last-level code under the same prefix) or 'extra_level'."""
    prefix_column: str = ""
    """An item column (e.g. `category`) whose value becomes a first SID level before the quantiser's: items of
    one value share their first token, so the model can carry a category from the context's items to its
    answer in one token, where the quantiser's first level splits a category over many codes. A '|'-separated
    value (MovieLens genres) counts by its first entry; a missing one is a value of its own. Empty: none.
    Chosen on validation users of the demo's simulator (docs/BENCHMARKS.md, "A category as the first SID
    level")."""
    coherence_pairs: int = 20000


def prefix_codes(items: pd.DataFrame, column: str) -> tuple[np.ndarray, list[str]]:
    """Code of each item's `column` value (its first '|'-separated entry), in sorted order of the values."""
    if column not in items.columns:
        raise ValueError(f"sid.prefix_column={column!r} is not an item column; the items have "
                         f"{sorted(items.columns)}. Fix: name one of them, or leave it empty for no prefix level")
    first = items[column].fillna("").astype(str).str.split("|").str[0].str.strip()
    values = sorted(first.unique())
    return first.map({v: i for i, v in enumerate(values)}).to_numpy(np.int64), values


def level_stats(codes: np.ndarray, sizes: list[int]) -> tuple[list[float], list[float]]:
    util, perp = [], []
    for lvl, k in enumerate(sizes):
        counts = np.bincount(codes[:, lvl], minlength=k)
        p = counts[counts > 0] / counts.sum()
        util.append(float((counts > 0).sum() / k))
        perp.append(float(np.exp(-(p * np.log(p)).sum())))
    return util, perp


def coherence(first: np.ndarray, cats: list[set], n_pairs: int, seed: int = 0) -> dict:
    """Share of same-first-code item pairs that share a category, vs random pairs."""
    rng = np.random.default_rng(seed)
    n = len(first)
    order = np.argsort(first, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(first[order])) + 1)
    groups = [g for g in groups if len(g) > 1]
    if not groups:
        return {"same_code_pairs": float("nan"), "random_pairs": float("nan")}
    w = np.array([len(g) * (len(g) - 1) for g in groups], dtype=np.float64)
    gi = rng.choice(len(groups), n_pairs, p=w / w.sum())
    same = []
    for g in gi:
        a, b = rng.choice(groups[g], 2, replace=False)
        same.append(bool(cats[a] & cats[b]))
    ra, rb = rng.integers(0, n, n_pairs), rng.integers(0, n, n_pairs)
    keep = ra != rb
    rand = [bool(cats[a] & cats[b]) for a, b in zip(ra[keep], rb[keep])]
    return {"same_code_pairs": float(np.mean(same)), "random_pairs": float(np.mean(rand))}


def build_sids(items: pd.DataFrame, category_columns: list[str], cfg: SidConfig, out: str | Path | None = None
               ) -> tuple[SidIndex, dict]:
    """Run the whole SID pipeline; write artifacts to `out` when given."""
    import torch
    from safetensors.numpy import save_file

    t0 = time.perf_counter()
    x, parts = encode_items(items, category_columns, cfg.encoder)
    t_enc = time.perf_counter() - t0
    model, history = train_rqvae(x, cfg.rqvae)
    t_train = time.perf_counter() - t0 - t_enc
    X = torch.from_numpy(x)
    raw, last_res = model.encode_codes(X)
    cb = model.codebooks.detach().numpy().copy()
    before = count_collisions(raw)
    codes, method = resolve(raw, last_res, cb[-1], cfg.collisions)
    after = count_collisions(codes)
    prefix = {}
    if cfg.prefix_column:
        col, values = prefix_codes(items, cfg.prefix_column)
        codes = np.concatenate([col[:, None], codes], axis=1)
        prefix = {"column": cfg.prefix_column, "values": len(values)}
    index = SidIndex(items["item_id"].to_numpy(), codes, cb, prefix_levels=1 if prefix else 0)
    with torch.no_grad():  # in slices: the decoded catalogue is as large as the input matrix
        emb, step = torch.from_numpy(index.item_embeddings), 65536
        mse = float(sum(float(((model.decoder(emb[s:s + step]) - X[s:s + step]) ** 2).sum())
                        for s in range(0, len(X), step)) / max(X.numel(), 1))
    util, perp = level_stats(codes, index.level_sizes)
    report = {
        "n_items": int(len(items)),
        "input": parts,
        "input_dim": int(x.shape[1]),
        "levels": index.levels,
        "level_sizes": index.level_sizes,
        "collisions_before": before,
        "collisions_after": after,
        "collision_method": method,
        "items_moved": int((codes[:, index.prefix_levels: index.prefix_levels + raw.shape[1]] != raw).any(1).sum()),
        "prefix": prefix,
        "utilization": util,
        "perplexity": perp,
        "reconstruction_mse": mse,
        "final_loss": history[-1]["loss"] if history else None,
        "timing_s": {"encode": round(t_enc, 2), "train": round(t_train, 2),
                     "total": round(time.perf_counter() - t0, 2)},
        "config": to_dict(cfg),
    }
    if category_columns:
        cols = [items[c].fillna("").astype(str).tolist() for c in category_columns]
        cats = [{v for col in vals for v in col.split("|") if v} for vals in zip(*cols)]
        report["coherence"] = {"columns": category_columns,
                               **coherence(codes[:, index.prefix_levels], cats, cfg.coherence_pairs, cfg.rqvae.seed)}
    if out is not None:
        o = Path(out)
        o.mkdir(parents=True, exist_ok=True)
        table = pd.DataFrame({"item_id": items["item_id"].to_numpy(), "item_index": np.arange(len(items)),
                              "code": list(codes), "sid": [code_to_str(c) for c in codes]})
        write_parquet_atomic(table, o / "sids.parquet")
        write_atomic(o / "codebooks.safetensors", lambda tmp: save_file(
            {"codebooks": cb, "prefix_levels": np.array([index.prefix_levels], dtype=np.int64)}, tmp))
        weights = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
        write_atomic(o / "rqvae.safetensors", lambda tmp: save_file(weights, tmp))
        write_vocab(o / "vocab.json", index)
        write_json_atomic({"history": history}, o / "train_history.json")
        write_json_atomic(report, o / "report.json")  # last: its presence marks a complete folder
    return index, report


def summary(r: dict) -> str:
    lines = [f"items {r['n_items']:,}  levels {r['level_sizes']}  input {r['input']}",
             f"collisions {r['collisions_before']} -> {r['collisions_after']} ({r['collision_method']}, "
             f"{r['items_moved']} moved)",
             "utilization " + " ".join(f"{u:.3f}" for u in r["utilization"]),
             "perplexity  " + " ".join(f"{p:.1f}" for p in r["perplexity"]),
             f"reconstruction mse {r['reconstruction_mse']:.5f}"]
    if r.get("prefix"):
        lines.append(f"first level: the item's {r['prefix']['column']} ({r['prefix']['values']} values)")
    if "coherence" in r:
        c = r["coherence"]
        lines.append(f"coherence (share of pairs sharing a {'/'.join(c['columns'])}): same first quantised code "
                     f"{c['same_code_pairs']:.3f} vs random {c['random_pairs']:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="conrec sid", description="Semantic IDs for a catalogue.")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="encode items, train the RQ-VAE, write codes, vocab, trie and report")
    b.add_argument("--data", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("overrides", nargs="*", help="e.g. rqvae.levels=3 rqvae.codebook_size=256 collisions=extra_level")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = build(SidConfig, None, a.overrides)
    from feedback.loaders import load

    data = load(a.data)
    _, report = build_sids(data.items, data.category_columns, cfg, a.out)
    print(summary(report))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
