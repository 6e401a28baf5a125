"""SID tokens ↔ (level, value) for one tokenizer: the one map every package uses (constrained decoding,
the learner's masks, the reward's parser, evaluation)."""

from __future__ import annotations

import numpy as np

from sid.vocab import LETTERS


class SidTokenMap:
    """SID token ids ↔ (level, value), for one tokenizer."""

    def __init__(self, tokenizer, level_sizes: list[int]):
        self.levels = len(level_sizes)
        self.ids = []  # ids[level][value] = token id
        for lvl, k in enumerate(level_sizes):
            ids = tokenizer.convert_tokens_to_ids([f"<{LETTERS[lvl]}_{v}>" for v in range(k)])
            if any(i is None or i == tokenizer.unk_token_id for i in ids):
                raise ValueError(f"tokenizer lacks SID tokens of level {lvl}: build it with the SID vocabulary "
                                 "(trainer.models.build_tokenizer) or add index.tokens()")
            self.ids.append(np.asarray(ids, dtype=np.int64))
        self.value_of = {}
        for lvl, ids in enumerate(self.ids):
            for v, t in enumerate(ids.tolist()):
                self.value_of[t] = (lvl, v)
        self.eos = tokenizer.eos_token_id

    def prefix(self, token_ids) -> tuple[int, ...] | None:
        """The SID values read from the start of `token_ids`, up to the first non-SID token; None if a
        token is an async-scheduling placeholder (< 0), i.e. the prefix is not known yet."""
        out = []
        for t in token_ids:
            t = int(t)
            if t < 0:
                return None
            lv = self.value_of.get(t)
            if lv is None:
                break
            out.append(lv[1])
        return tuple(out)

    def allowed_ids(self, trie, prefix: tuple) -> np.ndarray:
        """Token ids the trie allows after `prefix`: the next level's values, or EOS after a full code
        (or a prefix that leads nowhere)."""
        if len(prefix) >= self.levels:
            return np.array([self.eos])
        vals = trie.next_values(prefix)
        return self.ids[len(prefix)][vals] if len(vals) else np.array([self.eos])

    def table(self, vocab_size: int) -> np.ndarray:
        """[vocab_size, 2]: token id → (level, value), every other token → (-1, -1); the reward server's
        vectorised form of the same map."""
        out = np.full((vocab_size, 2), -1, dtype=np.int64)
        for t, lv in self.value_of.items():
            if 0 <= t < vocab_size:
                out[t] = lv
        return out

    def decode(self, token_ids) -> tuple[int, ...] | None:
        """Token ids → code, None unless exactly one token per level in order (EOS/pad ignored)."""
        out = []
        for t in token_ids:
            lv = self.value_of.get(int(t))
            if lv is None:
                if int(t) in (self.eos,):
                    break
                return None
            if lv[0] != len(out):
                return None
            out.append(lv[1])
        return tuple(out) if len(out) == self.levels else None
