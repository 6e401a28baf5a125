"""SID tokens and the prefix trie over the catalogue's codes.

Level l's value v is the token `<{letter}_{v}>` (a, b, c, d, …), so item (12, 5, 201) reads
`<a_12><b_5><c_201>`. The trie answers, for any prefix of a code, which next values lead to an item
of the catalogue: constrained decoding masks everything else, so only real items come out.
"""

from __future__ import annotations

import re
import string

import numpy as np

LETTERS = string.ascii_lowercase
TOKEN_RE = re.compile(r"<([a-z])_(\d+)>")


def sid_tokens(level_sizes: list[int]) -> list[str]:
    """Every SID token, level by level."""
    return [f"<{LETTERS[lvl]}_{v}>" for lvl, k in enumerate(level_sizes) for v in range(k)]


def code_to_str(code) -> str:
    return "".join(f"<{LETTERS[lvl]}_{int(v)}>" for lvl, v in enumerate(code))


def str_to_code(s: str, levels: int) -> tuple[int, ...] | None:
    """Parse `<a_1><b_2>…`; None unless it is exactly `levels` tokens in level order."""
    toks = TOKEN_RE.findall(s.replace(" ", ""))
    if len(toks) != levels or TOKEN_RE.sub("", s.replace(" ", "")) != "":
        return None
    if [t[0] for t in toks] != list(LETTERS[:levels]):
        return None
    return tuple(int(v) for _, v in toks)


class SidTrie:
    """Prefix trie over item codes: `next_values(prefix)` and `item(code)`."""

    def __init__(self, codes: np.ndarray):
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim != 2 or len(codes) == 0:
            raise ValueError("SidTrie needs a non-empty [n_items, levels] code array")
        self.levels = codes.shape[1]
        self._children: dict[tuple, np.ndarray] = {}
        self._item: dict[tuple, int] = {}
        for i, c in enumerate(map(tuple, codes.tolist())):
            if c in self._item:
                raise ValueError(f"SidTrie: code {c} belongs to items {self._item[c]} and {i}; resolve collisions "
                                 "first (sid/collisions.py)")
            self._item[c] = i
        for lvl in range(self.levels):
            pre = np.unique(codes[:, : lvl + 1], axis=0)
            for row in pre.tolist():
                self._children.setdefault(tuple(row[:-1]), []).append(row[-1])
        self._children = {k: np.array(sorted(v), dtype=np.int64) for k, v in self._children.items()}

    def next_values(self, prefix=()) -> np.ndarray:
        """Allowed values at level len(prefix); empty if the prefix leads to no item (or is complete)."""
        return self._children.get(tuple(int(p) for p in prefix), np.empty(0, dtype=np.int64))

    def item(self, code) -> int | None:
        """Item index of a full code, or None if the code is no item of the catalogue."""
        return self._item.get(tuple(int(c) for c in code))

    def __len__(self) -> int:
        return len(self._item)

    def to_json(self) -> dict:
        return {"levels": self.levels, "codes": [list(c) for c in self._item]}
