"""`FeedbackData`: a validated event log with its item table, in one object every stage shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from feedback.schema import DataReport, feedback_codes


@dataclass
class FeedbackData:
    """Events and items after validation, plus integer indexes used by every vectorised stage.

    `events` is sorted by (user_id, timestamp, item_id) and carries `uidx`/`iidx` (0-based user and
    item positions, items in item-table order) and `fb` (-1/0/1). `truth`, when the source knows it
    (the simulator), holds each user's true negative interests, strongest first.
    """

    name: str
    events: pd.DataFrame
    items: pd.DataFrame
    report: DataReport
    category_columns: list[str] = field(default_factory=list)
    truth: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        item_pos = pd.Index(self.items["item_id"])
        self.events["iidx"] = item_pos.get_indexer(self.events["item_id"]).astype(np.int64)
        if (self.events["iidx"] < 0).any():
            raise ValueError(f"{self.name}: events name items missing from the item table (validate first)")
        self.user_ids = pd.Index(self.events["user_id"].unique())
        self.events["uidx"] = self.user_ids.get_indexer(self.events["user_id"]).astype(np.int64)
        self.events["fb"] = feedback_codes(self.events["feedback"])

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def save(self, out_dir: str | Path) -> Path:
        """Write events.parquet and items.parquet (the generic `parquet:` format)."""
        from common.atomic import write_parquet_atomic

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        cols = [c for c in self.events.columns if c not in ("uidx", "iidx", "fb")]
        write_parquet_atomic(self.events[cols], out / "events.parquet")
        write_parquet_atomic(self.items, out / "items.parquet")
        if self.truth is not None:
            write_parquet_atomic(self.truth, out / "truth.parquet")
        return out
