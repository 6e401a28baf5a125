"""`SidIndex`: the SID artifacts of a catalogue, loaded for the reward, decoding and evaluation.

Folder layout (written by `sid.build`): `sids.parquet` (item_id, item index, code, SID string),
`codebooks.safetensors` (codebooks [L, K, D]; `prefix_levels`, the number of levels before the quantiser's, each
an item attribute such as the category: `SidConfig.prefix_column`), `rqvae.safetensors` (the quantiser's weights),
`vocab.json` (levels, level sizes, tokens), `report.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from sid.vocab import SidTrie, code_to_str, sid_tokens, str_to_code


class SidIndex:
    def __init__(self, item_ids: np.ndarray, codes: np.ndarray, codebooks: np.ndarray, prefix_levels: int = 0):
        self.item_ids = np.asarray(item_ids)
        self.codes = np.asarray(codes, dtype=np.int64)
        # [L_q, K, D] for levels prefix_levels … prefix_levels + L_q - 1; a prefix or extra level has none
        self.codebooks = np.asarray(codebooks, dtype=np.float32)
        self.prefix_levels = int(prefix_levels)
        self.levels = self.codes.shape[1]
        quantised = range(self.prefix_levels, self.prefix_levels + len(self.codebooks))
        self.level_sizes = [int(self.codebooks.shape[1]) if lvl in quantised else int(self.codes[:, lvl].max()) + 1
                            for lvl in range(self.levels)]
        self.trie = SidTrie(self.codes)
        self.item_embeddings = self.embed(self.codes)

    def embed(self, codes: np.ndarray) -> np.ndarray:
        """Reconstructed embedding of any code(s) [..., L]: the sum of the chosen codewords."""
        codes = np.asarray(codes, dtype=np.int64)
        out = np.zeros(codes.shape[:-1] + (self.codebooks.shape[2],), dtype=np.float32)
        for lvl in range(min(self.levels - self.prefix_levels, len(self.codebooks))):
            out += self.codebooks[lvl][codes[..., self.prefix_levels + lvl]]
        return out

    def sid(self, item_index: int) -> str:
        return code_to_str(self.codes[item_index])

    def parse(self, text: str) -> int | None:
        """Item index of a SID string, None if malformed or not in the catalogue."""
        code = str_to_code(text, self.levels)
        return None if code is None else self.trie.item(code)

    def tokens(self) -> list[str]:
        return sid_tokens(self.level_sizes)

    @classmethod
    def load(cls, path: str | Path) -> "SidIndex":
        from safetensors.numpy import load_file

        p = Path(path)
        for f in ("sids.parquet", "codebooks.safetensors"):
            if not (p / f).exists():
                raise FileNotFoundError(f"{p} lacks {f}: not a SID folder (build one with `conrec sid build`)")
        t = pd.read_parquet(p / "sids.parquet").sort_values("item_index")
        f = load_file(str(p / "codebooks.safetensors"))
        prefix = int(f["prefix_levels"][0]) if "prefix_levels" in f else 0  # absent in folders built before it
        return cls(t["item_id"].to_numpy(), np.stack(t["code"].to_list()), f["codebooks"], prefix)

    def check_catalogue(self, item_ids) -> None:
        """Raise if these SIDs were built for another catalogue."""
        ids = np.asarray(item_ids)
        if len(ids) != len(self.item_ids) or not np.array_equal(ids, self.item_ids):
            extra = len(set(ids.tolist()) - set(self.item_ids.tolist()))
            raise ValueError(f"SID table does not match the catalogue: {len(self.item_ids)} coded items vs "
                             f"{len(ids)} items ({extra} without a code). Rebuild with `conrec sid build`.")


def write_vocab(path: Path, index: SidIndex) -> None:
    from common.atomic import write_json_atomic

    write_json_atomic({"levels": index.levels, "level_sizes": index.level_sizes, "tokens": index.tokens()},
                      path)


def read_report(path: str | Path) -> dict:
    return json.loads((Path(path) / "report.json").read_text())
