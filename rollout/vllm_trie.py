"""The SID-trie constraint as a vLLM (v1) logits processor.

Pass the class to `LLM(logits_processors=[SidTrieLogitsProcessor])`; a request opts in with
`SamplingParams(extra_args={"sid_dir": PATH})`. The processor learns each row's live output-token
list when the request joins the batch, and before every sampling step leaves open only the
continuations of that row's SID prefix (after a full code: EOS). A request whose prompt already ends in
SID tokens (level-by-level beam search) names them with `extra_args["sid_prefix"]` (the values); its
output then continues that prefix. The trie and the tokenizer's SID
token table are loaded once per SID folder per worker, not per request.
"""

from __future__ import annotations

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality


class SidTrieLogitsProcessor(LogitsProcessor):
    _tables: dict = {}  # sid_dir → (trie, token map); shared by the processors of one worker

    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool):
        self.device = device
        self.tokenizer_path = vllm_config.model_config.tokenizer
        self.rows: dict[int, tuple[str, list[int], tuple]] = {}  # row → (sid_dir, live output tokens, prompt's prefix)
        self.allowed: dict[tuple, torch.Tensor] = {}

    def _table(self, sid_dir: str):
        if sid_dir not in self._tables:
            from transformers import AutoTokenizer

            from sid.index import SidIndex
            from sid.tokens import SidTokenMap

            index = SidIndex.load(sid_dir)
            tok = AutoTokenizer.from_pretrained(self.tokenizer_path)
            self._tables[sid_dir] = (index.trie, SidTokenMap(tok, index.level_sizes))
        return self._tables[sid_dir]

    def is_argmax_invariant(self) -> bool:
        return False  # masking changes the argmax: greedy requests must go through apply()

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if batch_update is None:
            return
        for idx in batch_update.removed:
            self.rows.pop(idx, None)
        for idx, params, _prompt, out_ids in batch_update.added:
            extra = (params.extra_args or {}) if params is not None else {}
            if "sid_dir" in extra:
                self._table(extra["sid_dir"])
                self.rows[idx] = (extra["sid_dir"], out_ids, tuple(int(v) for v in extra.get("sid_prefix", ())))
            else:
                self.rows.pop(idx, None)
        for a, b, kind in batch_update.moved:
            ra, rb = self.rows.pop(a, None), self.rows.pop(b, None)
            if ra is not None:
                self.rows[b] = ra
            if kind == MoveDirectionality.SWAP and rb is not None:
                self.rows[a] = rb

    def _allowed(self, sid_dir: str, out_ids: list[int], base: tuple) -> torch.Tensor | None:
        trie, tmap = self._tables[sid_dir]
        prefix = tmap.prefix(out_ids)
        if prefix is None:  # async-scheduling placeholder: the row's prefix is not known yet
            return None
        prefix = base + prefix
        key = (sid_dir, prefix)
        if key not in self.allowed:
            self.allowed[key] = torch.as_tensor(tmap.allowed_ids(trie, prefix), dtype=torch.long, device=self.device)
        return self.allowed[key]

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        for row, (sid_dir, out_ids, base) in self.rows.items():
            if row >= logits.shape[0]:
                continue
            allowed = self._allowed(sid_dir, out_ids, base)
            if allowed is None:
                continue
            keep = logits[row, allowed].clone()
            logits[row].fill_(float("-inf"))
            logits[row, allowed] = keep
        return logits
