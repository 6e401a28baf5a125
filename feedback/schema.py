"""The feedback-log schema and its validation.

Events: `user_id`, `item_id`, `timestamp` (int seconds), `feedback` in {negative, neutral, positive},
optional `exposed` (bool) and `reason` (str). Items: `item_id`, `title`, optional `text`, categorical
columns and embedding columns (fixed-length float lists). Ids may be integers or strings.

Validation is strict: every problem raises `DataValidationError` naming the file, column, row and the
fix. The only repairs are the documented options of `ValidationOptions`, and each one is counted in
the `DataReport`, so nothing disappears silently.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

FEEDBACK_LABELS = ("negative", "neutral", "positive")
FEEDBACK_CODE = {"negative": -1, "neutral": 0, "positive": 1}
EVENT_REQUIRED = ("user_id", "item_id", "timestamp", "feedback")
EVENT_OPTIONAL = ("exposed", "reason")
ITEM_REQUIRED = ("item_id", "title")
# 1970-01-01 .. 2100-01-01: anything outside is a unit error (ms or µs instead of seconds) or garbage.
TS_MIN, TS_MAX = 0, 4_102_444_800


class DataValidationError(ValueError):
    """Bad input data: says where (file, column, row) and what to do."""

    def __init__(self, source: str, problem: str, fix: str, column: str | None = None, row=None,
                 line: int | None = None):
        where = source + (f", column {column!r}" if column else "")
        where += f", line {line}" if line is not None else f", row {row}" if row is not None else ""
        super().__init__(f"{where}: {problem}. Fix: {fix}")
        self.source, self.column, self.row, self.problem, self.fix = source, column, row, problem, fix
        self.line = line

    def at_line(self, header_lines: int | None) -> "DataValidationError":
        """The same error with the 0-based table row told as the line of the file it came from
        (`header_lines` = lines before the first record; None leaves the row as it is)."""
        line = self.row + header_lines + 1 if header_lines is not None and self.row is not None else None
        return DataValidationError(self.source, self.problem, self.fix, self.column, self.row, line)


@dataclass
class ValidationOptions:
    """Documented repairs. Each defaults to 'error'; a repair is counted in the data report."""

    on_duplicate: str = "error"
    """Identical (user_id, item_id, timestamp) events: 'error' or 'drop' (keep the first)."""
    on_unknown_item: str = "error"
    """Events naming an item absent from the item table: 'error' or 'drop'."""
    on_empty_title: str = "error"
    """Items with an empty/null title: 'error' or 'fill' (title becomes 'item <id>')."""


REPAIR_CHOICES = {"on_duplicate": ("error", "drop"), "on_unknown_item": ("error", "drop"),
                  "on_empty_title": ("error", "fill")}
"""The values each `ValidationOptions` field accepts."""


@dataclass
class DataReport:
    """What was loaded, and everything dropped or repaired on the way."""

    source: str
    n_events: int = 0
    n_users: int = 0
    n_items: int = 0
    n_negative: int = 0
    n_neutral: int = 0
    n_positive: int = 0
    time_span_days: float = 0.0
    dropped: dict = field(default_factory=dict)
    repaired: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            f"dataset      {self.source}",
            f"events       {self.n_events:,} (negative {self.n_negative:,}, neutral {self.n_neutral:,}, "
            f"positive {self.n_positive:,})",
            f"users/items  {self.n_users:,} / {self.n_items:,}",
            f"time span    {self.time_span_days:.1f} days",
        ]
        for k, v in self.dropped.items():
            lines.append(f"dropped      {v:,} {k}")
        for k, v in self.repaired.items():
            lines.append(f"repaired     {v:,} {k}")
        lines += [f"note         {n}" for n in self.notes]
        return "\n".join(lines)


def _py(v):
    """numpy scalar → Python scalar, so messages read `1`, not `np.int64(1)`."""
    return v.item() if hasattr(v, "item") else v


def _first_row(mask) -> int:
    """The first flagged row as the table's original 0-based row (the index label, which survives the rows
    dropped before the check), so a file line can be told from it."""
    pos = int(np.flatnonzero(np.asarray(mask))[0])
    return int(mask.index[pos]) if isinstance(mask, pd.Series) else pos


def _check_id_column(df: pd.DataFrame, col: str, source: str) -> None:
    s = df[col]
    if s.isna().any():
        raise DataValidationError(source, "null id", "remove the row or give it an id", col, _first_row(s.isna()))
    if not (pd.api.types.is_integer_dtype(s) or pd.api.types.is_string_dtype(s) or s.dtype == object):
        raise DataValidationError(source, f"ids must be integers or strings, found dtype {s.dtype}",
                                  "cast the column to int64 or string", col)
    if s.dtype == object:
        bad = ~s.map(lambda v: isinstance(v, (str, int, np.integer)))
        if bad.any():
            r = _first_row(bad)
            raise DataValidationError(source, f"id {s.iloc[r]!r} of type {type(s.iloc[r]).__name__}",
                                      "ids must be integers or strings", col, r)


def validate_items(items: pd.DataFrame, source: str, opts: ValidationOptions | None = None,
                   report: DataReport | None = None) -> pd.DataFrame:
    """Check the item table; returns it with a clean RangeIndex. Embedding columns hold equal-length lists."""
    opts = opts or ValidationOptions()
    for col in ITEM_REQUIRED:
        if col not in items.columns:
            raise DataValidationError(source, f"missing required column {col!r} (have {list(items.columns)})",
                                      f"add a {col!r} column to the item table", col)
    items = items.reset_index(drop=True)
    _check_id_column(items, "item_id", source)
    dup = items["item_id"].duplicated()
    if dup.any():
        r = _first_row(dup)
        raise DataValidationError(source, f"duplicate item id {_py(items['item_id'].iloc[r])!r}",
                                  "give each item one row (merge or drop the duplicates)", "item_id", r)
    empty = items["title"].isna() | (items["title"].astype(str).str.strip() == "")
    if empty.any():
        if opts.on_empty_title != "fill":
            raise DataValidationError(source, f"{int(empty.sum())} empty title(s)",
                                      "give every item a title, or pass on_empty_title='fill'", "title",
                                      _first_row(empty))
        items = items.copy()
        items.loc[empty, "title"] = "item " + items.loc[empty, "item_id"].astype(str)
        if report is not None:
            report.repaired["empty titles filled"] = int(empty.sum())
    for col in items.columns:
        first = items[col].iloc[0] if len(items) else None
        if isinstance(first, (list, np.ndarray)):
            lengths = items[col].map(len)
            if lengths.nunique() != 1:
                r = _first_row(lengths != lengths.iloc[0])
                raise DataValidationError(source, f"embedding length {lengths.iloc[r]} differs from "
                                          f"{lengths.iloc[0]}", "give every item the same embedding length",
                                          col, r)
            arr = np.asarray(items[col].tolist(), dtype=np.float64)
            finite = np.isfinite(arr).all(axis=1)
            if not finite.all():
                raise DataValidationError(source, "NaN or inf in an embedding", "recompute or drop that "
                                          "item's embedding", col, _first_row(~finite))
    return items


def validate_events(events: pd.DataFrame, source: str, items: pd.DataFrame | None = None,
                    opts: ValidationOptions | None = None, report: DataReport | None = None) -> pd.DataFrame:
    """Check the event table; returns it sorted by (user_id, timestamp, item_id) with a RangeIndex."""
    opts = opts or ValidationOptions()
    report = report if report is not None else DataReport(source)
    for col in EVENT_REQUIRED:
        if col not in events.columns:
            raise DataValidationError(source, f"missing required column {col!r} (have {list(events.columns)})",
                                      f"add a {col!r} column (see feedback/schema.py)", col)
    if len(events) == 0:
        raise DataValidationError(source, "no events", "point the data spec at a non-empty log")
    ev = events.reset_index(drop=True)
    for col in ("user_id", "item_id"):
        _check_id_column(ev, col, source)

    ts = ev["timestamp"]
    if ts.isna().any():
        raise DataValidationError(source, "null timestamp", "give every event a timestamp in seconds",
                                  "timestamp", _first_row(ts.isna()))
    if not pd.api.types.is_numeric_dtype(ts):
        raise DataValidationError(source, f"timestamps must be numbers of seconds, found dtype {ts.dtype}",
                                  "convert to Unix seconds (int64)", "timestamp")
    if pd.api.types.is_float_dtype(ts):
        frac = ts != np.floor(ts)
        if frac.any():
            raise DataValidationError(source, f"fractional timestamp {_py(ts[frac].iloc[0])}",
                                      "round to whole seconds", "timestamp", _first_row(frac))
    bad = (ts < TS_MIN) | (ts >= TS_MAX)
    if bad.any():
        r = _first_row(bad)
        raise DataValidationError(source, f"impossible timestamp {_py(ts.iloc[r])} (outside 1970..2100)",
                                  "timestamps are Unix seconds; divide milliseconds by 1000", "timestamp", r)
    ev["timestamp"] = ts.astype(np.int64)

    fb = ev["feedback"]
    unknown = ~fb.isin(FEEDBACK_LABELS)
    if unknown.any():
        r = _first_row(unknown)
        raise DataValidationError(source, f"unknown feedback label {_py(fb.iloc[r])!r}",
                                  f"use one of {FEEDBACK_LABELS} (map ratings in the loader)", "feedback", r)
    if "exposed" in ev.columns and not pd.api.types.is_bool_dtype(ev["exposed"]):
        raise DataValidationError(source, f"'exposed' must be bool, found dtype {ev['exposed'].dtype}",
                                  "cast it to bool", "exposed")

    key = ["user_id", "item_id", "timestamp"]
    dup = ev.duplicated(key)
    if dup.any():
        if opts.on_duplicate != "drop":
            r = _first_row(dup)
            raise DataValidationError(source, f"{int(dup.sum())} duplicate (user_id, item_id, timestamp) event(s)",
                                      "deduplicate upstream, or pass on_duplicate='drop'", None, r)
        ev = ev[~dup]
        report.dropped["duplicate events"] = int(dup.sum())

    if items is not None:
        if ev["item_id"].dtype != items["item_id"].dtype and not (
                pd.api.types.is_integer_dtype(ev["item_id"]) and pd.api.types.is_integer_dtype(items["item_id"])):
            raise DataValidationError(source, f"event item_id dtype {ev['item_id'].dtype} differs from the item "
                                      f"table's {items['item_id'].dtype}", "use one id type in both tables",
                                      "item_id")
        unk = ~ev["item_id"].isin(items["item_id"])
        if unk.any():
            if opts.on_unknown_item != "drop":
                r = _first_row(unk)
                raise DataValidationError(source, f"{int(unk.sum())} event(s) name items absent from the item "
                                          f"table, e.g. {_py(ev['item_id'].loc[r])!r}",
                                          "add the items, or pass on_unknown_item='drop'", "item_id", r)
            ev = ev[~unk]
            report.dropped["events naming unknown items"] = int(unk.sum())

    ev = ev.sort_values(["user_id", "timestamp", "item_id"], kind="stable").reset_index(drop=True)
    counts = ev["feedback"].value_counts()
    report.n_events = len(ev)
    report.n_users = int(ev["user_id"].nunique())
    report.n_items = int(len(items)) if items is not None else int(ev["item_id"].nunique())
    report.n_negative = int(counts.get("negative", 0))
    report.n_neutral = int(counts.get("neutral", 0))
    report.n_positive = int(counts.get("positive", 0))
    report.time_span_days = float((ev["timestamp"].max() - ev["timestamp"].min()) / 86400) if len(ev) else 0.0
    if report.n_negative == 0:
        report.notes.append("no negative feedback at all: nothing to learn or evaluate")
    return ev


def feedback_codes(feedback: pd.Series) -> np.ndarray:
    """negative → -1, neutral → 0, positive → 1 (int8)."""
    return feedback.map(FEEDBACK_CODE).to_numpy(np.int8)

