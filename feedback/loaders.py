"""Loaders for every supported log format, selected by a data spec string.

Spec forms (options after the path, comma-separated `key=value`):

    movielens-100k:PATH[,neg=2,pos=4,scale=1-5]     folder with u.data and u.item (Latin-1)
    movielens-1m:PATH[,neg=2,pos=4,scale=1-5]       folder with ratings.dat and movies.dat (`::`-separated)
    movielens-csv:PATH[,neg=2,pos=4,scale=0.5-5]    folder with ratings.csv and movies.csv (ml-latest-small)
    kuairand:PATH[,logs=standard]         KuaiRand-Pure/1K `data` folder: is_hate = negative (see load_kuairand)
    parquet:PATH                          folder with events.parquet, items.parquet[, truth.parquet]
    synthetic:users=N,items=N,days=N,seed=N[,other SimConfig fields]
    NAME[,options]                        a public dataset by name (feedback/fetch.py: movielens-100k,
                                          movielens-1m, ml-latest-small, kuairand-pure), fetched once

Ratings map to feedback as rating <= neg → negative, rating >= pos → positive, else neutral; a rating
outside `scale` (or empty, or not a number) is an error naming its file line.
Validation repairs (see `ValidationOptions`) are spec options too, e.g. `parquet:DIR,on_duplicate=drop`.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd

from feedback.dataset import FeedbackData
from feedback.schema import (
    REPAIR_CHOICES,
    DataReport,
    DataValidationError,
    ValidationOptions,
    validate_events,
    validate_items,
)

KINDS = ("movielens-100k", "movielens-1m", "movielens-csv", "kuairand", "parquet", "synthetic")
ML100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                 "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                 "War", "Western"]


def parse_spec(spec: str) -> tuple[str, str | None, dict[str, str]]:
    """'kind:path,k=v,...' → (kind, path or None, options)."""
    if ":" not in spec:
        raise ValueError(f"data spec {spec!r} has no kind: write KIND:..., KIND one of {KINDS}")
    kind, rest = spec.split(":", 1)
    if kind not in KINDS:
        raise ValueError(f"data spec {spec!r}: unknown kind {kind!r}; expected one of {KINDS}")
    parts = [p for p in rest.split(",") if p != ""]
    path = None
    if kind != "synthetic":
        if not parts or "=" in parts[0]:
            raise ValueError(f"data spec {spec!r}: {kind} needs a folder path, e.g. {kind}:/data/ml-100k")
        path, parts = parts[0], parts[1:]
    opts = {}
    for p in parts:
        if "=" not in p:
            raise ValueError(f"data spec {spec!r}: option {p!r} is not key=value")
        k, v = p.split("=", 1)
        opts[k.strip()] = v.strip()
    return kind, path, opts


def _take_validation_opts(opts: dict[str, str]) -> ValidationOptions:
    names = {f.name for f in fields(ValidationOptions)}
    took = {k: opts.pop(k) for k in list(opts) if k in names}
    for k, v in took.items():
        if v not in REPAIR_CHOICES[k]:
            raise ValueError(f"data spec option {k}={v!r}: choose one of {', '.join(REPAIR_CHOICES[k])}")
    return ValidationOptions(**took)


def _scale(opts: dict[str, str], default: tuple[float, float]) -> tuple[float, float]:
    """The rating scale LO-HI (spec option scale=, e.g. scale=0.5-5); ratings outside it are errors."""
    if "scale" not in opts:
        return default
    text = opts.pop("scale")
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d*)?)\s*-\s*(-?\d+(?:\.\d*)?)\s*", text)
    if not m:
        raise ValueError(f"data spec option scale={text!r}: write LO-HI, e.g. scale=1-5")
    lo, hi = float(m[1]), float(m[2])
    if not lo < hi:
        raise ValueError(f"data spec option scale={text!r}: LO must be below HI")
    return lo, hi


def _check_scale(rating: pd.Series, scale: tuple[float, float], source: Path, header_lines: int) -> None:
    """Ratings outside the scale (0, 6, −1 on a 1–5 scale) would silently map to negative or positive."""
    lo, hi = scale
    out = np.flatnonzero(((rating < lo) | (rating > hi)).to_numpy())
    if len(out):
        r = int(out[0])
        raise DataValidationError(str(source), f"line {r + header_lines + 1}: rating {rating.iloc[r]:g} is outside "
                                  f"the scale {lo:g}–{hi:g} ({len(out)} such line(s))",
                                  "correct or remove those lines, or give the data's scale as a spec option "
                                  "(e.g. scale=0-10)")


def _ratings_to_feedback(rating: pd.Series, neg: float, pos: float) -> pd.Series:
    if not neg < pos:
        raise ValueError(f"rating thresholds need neg < pos, got neg={neg}, pos={pos}")
    out = np.where(rating <= neg, "negative", np.where(rating >= pos, "positive", "neutral"))
    return pd.Series(out, index=rating.index)


def _require(path: Path, names: list[str], kind: str) -> None:
    if not path.is_dir():
        raise FileNotFoundError(f"{kind}: {path} is not a folder")
    missing = [n for n in names if not (path / n).exists()]
    if missing:
        raise FileNotFoundError(f"{kind}: {path} lacks {', '.join(missing)} (expected {', '.join(names)})")


def _finish(name, events, items, opts, vopts, report, categories, truth=None, items_source: str = "",
            header_lines: tuple[int | None, int | None] = (None, None)) -> FeedbackData:
    """Validate both tables. Errors name the file each table came from (`report.source` for the events,
    `items_source` for the items) and, for a line-per-record file, the line: `header_lines` holds the lines
    before the first record of (events, items), None where rows are not file lines."""
    if opts:
        raise ValueError(f"data spec {name!r}: unknown option(s) {sorted(opts)}")
    try:
        items = validate_items(items, items_source or report.source + " (items)", vopts, report)
    except DataValidationError as e:
        raise e.at_line(header_lines[1]) from None
    try:
        events = validate_events(events, report.source, items, vopts, report)
    except DataValidationError as e:
        raise e.at_line(header_lines[0]) from None
    return FeedbackData(name=name, events=events, items=items, report=report, category_columns=categories,
                        truth=truth)


def load_movielens_100k(path: str, opts: dict[str, str], spec: str) -> FeedbackData:
    root = Path(path)
    _require(root, ["u.data", "u.item"], "movielens-100k")
    neg, pos = float(opts.pop("neg", 2)), float(opts.pop("pos", 4))
    vopts = _take_validation_opts(opts)
    scale = _scale(opts, (1, 5))
    raw = _read_u_data(root / "u.data")
    _check_scale(raw["rating"], scale, root / "u.data", 0)
    events = raw[["user_id", "item_id", "timestamp"]].copy()
    events["feedback"] = _ratings_to_feedback(raw["rating"], neg, pos)
    cols = ["item_id", "title", "release_date", "video_release_date", "url"] + [f"g{i}" for i in range(19)]
    it = pd.read_csv(root / "u.item", sep="|", header=None, names=cols, encoding="latin-1",
                     dtype={"item_id": np.int64})
    flags = it[[f"g{i}" for i in range(19)]].to_numpy(bool)
    genres = ["|".join(g for g, f in zip(ML100K_GENRES, row) if f) for row in flags]
    items = pd.DataFrame({"item_id": it["item_id"], "title": it["title"].fillna("").astype(str),
                          "genres": genres, "year": it["release_date"].fillna("").astype(str).str[-4:]})
    items["text"] = items["title"] + " " + items["genres"].str.replace("|", " ", regex=False)
    report = DataReport(source=str(root / "u.data"))
    return _finish(spec, events, items, opts, vopts, report, ["genres"], items_source=str(root / "u.item"),
                   header_lines=(0, 0))


def _read_u_data(path: Path) -> pd.DataFrame:
    """u.data: four tab-separated numbers per line; a bad line is an error naming its line."""
    try:
        raw = pd.read_csv(path, sep="\t", header=None, names=["user_id", "item_id", "rating", "timestamp"],
                          dtype=str, keep_default_na=False)
    except pd.errors.ParserError as e:  # e.g. an extra field: pandas names the line
        raise DataValidationError(str(path), f"not four tab-separated fields per line ({_parser_detail(e)})",
                                  "each line must be user_id, item_id, rating, timestamp separated by tabs") from None
    return _numeric_columns(raw, path, 0, "each line must be user_id, item_id, rating, timestamp: four numbers")


def _parser_detail(e: Exception) -> str:
    """pandas' tokenizer message without its preamble: 'Expected 4 fields in line 3, saw 5'."""
    return str(e).strip().split(". ")[-1]


def _numeric_columns(raw: pd.DataFrame, path: Path, header_lines: int, fix: str) -> pd.DataFrame:
    """Every column as numbers (ids and timestamps as int64); the first empty or non-numeric field is an error
    naming its file line (`header_lines` = lines before the first record)."""
    for col in raw.columns:
        num = pd.to_numeric(raw[col], errors="coerce")
        bad = np.flatnonzero(num.isna().to_numpy())
        if len(bad):
            r = int(bad[0])
            v = raw[col].iloc[r]
            shown = "empty" if pd.isna(v) or v == "" else repr(str(v))
            raise DataValidationError(str(path), f"line {r + header_lines + 1}: {col} {shown} is not a number "
                                      f"({len(bad)} such line(s))", fix)
        raw[col] = num
    return raw.astype({c: (np.float64 if c == "rating" else np.int64) for c in raw.columns})


def load_movielens_1m(path: str, opts: dict[str, str], spec: str) -> FeedbackData:
    root = Path(path)
    _require(root, ["ratings.dat", "movies.dat"], "movielens-1m")
    neg, pos = float(opts.pop("neg", 2)), float(opts.pop("pos", 4))
    vopts = _take_validation_opts(opts)
    scale = _scale(opts, (1, 5))
    raw = _numeric_columns(_read_dat(root / "ratings.dat", ["user_id", "item_id", "rating", "timestamp"]),
                           root / "ratings.dat", 0, "each line must be UserID::MovieID::Rating::Timestamp, all numbers")
    _check_scale(raw["rating"], scale, root / "ratings.dat", 0)
    events = raw[["user_id", "item_id", "timestamp"]].copy()
    events["feedback"] = _ratings_to_feedback(raw["rating"], neg, pos)
    mv = _read_dat(root / "movies.dat", ["item_id", "title", "genres"])
    items = pd.DataFrame({"item_id": mv["item_id"].astype(np.int64), "title": mv["title"].astype(str),
                          "genres": mv["genres"].fillna("").astype(str)})
    items["text"] = items["title"] + " " + items["genres"].str.replace("|", " ", regex=False)
    report = DataReport(source=str(root / "ratings.dat"))
    return _finish(spec, events, items, opts, vopts, report, ["genres"], items_source=str(root / "movies.dat"),
                   header_lines=(0, 0))


def _read_dat(path: Path, names: list[str]) -> pd.DataFrame:
    """MovieLens-1M's `::`-separated, Latin-1 files (titles may hold a single ':', never '::')."""
    rows = [line.split("::") for line in path.read_text(encoding="latin-1").splitlines()]  # row r = line r + 1
    bad = next((i for i, r in enumerate(rows) if len(r) != len(names)), None)
    if bad is not None:
        raise DataValidationError(str(path), f"line {bad + 1} has {len(rows[bad])} '::'-separated fields, "
                                  f"expected {len(names)}", f"each line must be {'::'.join(names)}")
    return pd.DataFrame(rows, columns=names)


def load_kuairand(path: str, opts: dict[str, str], spec: str) -> FeedbackData:
    """KuaiRand (Pure or 1K) `data` folder, per the dataset's documented schema.

    Events: `log_standard_*.csv` (logs=standard, the default), plus `log_random_*.csv` (the randomly
    exposed videos) with logs=all. Timestamps are `time_ms` (milliseconds) → seconds. Feedback:
    `is_hate` = 1 (the explicit "not interested") → negative; else `is_like`, `is_follow`, `is_forward` or
    `long_view` → positive; else neutral. Items: `video_features_basic*.csv` (tag, video_type, music_type
    as categories; a text of those fields, there being no titles); videos with logs but no feature row
    get an item row of their id alone.
    """
    root = Path(path)
    logs = opts.pop("logs", "standard")
    if logs not in ("standard", "all"):
        raise ValueError(f"data spec {spec!r}: logs must be 'standard' or 'all', got {logs!r}")
    vopts = _take_validation_opts(opts)
    files = sorted(root.glob("log_standard_*.csv")) + (sorted(root.glob("log_random_*.csv")) if logs == "all" else [])
    feats = sorted(root.glob("video_features_basic*.csv"))
    if not root.is_dir() or not files or not feats:
        raise FileNotFoundError(f"kuairand: {root} needs log_standard_*.csv and video_features_basic*.csv (the "
                                "`data` folder of KuaiRand-Pure or KuaiRand-1K)")
    need = ["user_id", "video_id", "time_ms", "is_hate", "is_like", "is_follow", "is_forward", "long_view"]
    parts = []
    for f in files:
        df = pd.read_csv(f, usecols=lambda c: c in need)
        miss = [c for c in need if c not in df.columns]
        if miss:
            raise DataValidationError(str(f), f"missing columns {miss}", "expected KuaiRand's log schema")
        parts.append(df)
    inter = pd.concat(parts, ignore_index=True)
    pos_sig = inter[["is_like", "is_follow", "is_forward", "long_view"]].fillna(0).to_numpy().any(1)
    fb = np.where(inter["is_hate"].fillna(0).to_numpy() > 0, "negative", np.where(pos_sig, "positive", "neutral"))
    events = pd.DataFrame({"user_id": inter["user_id"], "item_id": inter["video_id"],
                           "timestamp": inter["time_ms"] // 1000, "feedback": fb})
    vf = pd.concat([pd.read_csv(f) for f in feats], ignore_index=True).drop_duplicates("video_id")
    cats = [c for c in ("tag", "video_type", "music_type") if c in vf.columns]
    items = pd.DataFrame({"item_id": vf["video_id"]})
    for c in cats:
        items[c] = vf[c].fillna("").astype(str).to_numpy()
    extra = np.setdiff1d(events["item_id"].unique(), items["item_id"].to_numpy())
    if len(extra):
        items = pd.concat([items, pd.DataFrame({"item_id": extra})], ignore_index=True).fillna("")
    items["title"] = "video " + items["item_id"].astype(str)
    items["text"] = items["title"]
    for c in cats:
        items["text"] = items["text"] + " " + c.replace("_", " ") + " " + items[c]
    report = DataReport(source=str(files[0]) if len(files) == 1 else f"{root} (log_*.csv, concatenated)")
    return _finish(spec, events, items, opts, vopts, report, cats, items_source=str(feats[0]) if len(feats) == 1
                   else f"{root} (video_features_basic*.csv)", header_lines=(1 if len(files) == 1 else None, None))


def load_movielens_csv(path: str, opts: dict[str, str], spec: str) -> FeedbackData:
    root = Path(path)
    _require(root, ["ratings.csv", "movies.csv"], "movielens-csv")
    neg, pos = float(opts.pop("neg", 2)), float(opts.pop("pos", 4))
    vopts = _take_validation_opts(opts)
    scale = _scale(opts, (0.5, 5))
    try:
        raw = pd.read_csv(root / "ratings.csv")
    except pd.errors.ParserError as e:  # e.g. an extra field: pandas names the line
        raise DataValidationError(str(root / "ratings.csv"), f"not a CSV of four fields per line ({_parser_detail(e)})",
                                  "each line must be userId,movieId,rating,timestamp") from None
    need = {"userId", "movieId", "rating", "timestamp"}
    if not need <= set(raw.columns):
        raise DataValidationError(str(root / "ratings.csv"), f"missing columns {sorted(need - set(raw.columns))}",
                                  "expected the MovieLens header userId,movieId,rating,timestamp")
    raw["rating"] = _numeric_columns(raw[["rating"]].copy(), root / "ratings.csv", 1,
                                     "give every rating a number, or remove those lines")["rating"]
    _check_scale(raw["rating"], scale, root / "ratings.csv", 1)
    events = pd.DataFrame({"user_id": raw["userId"], "item_id": raw["movieId"], "timestamp": raw["timestamp"],
                           "feedback": _ratings_to_feedback(raw["rating"], neg, pos)})
    mv = pd.read_csv(root / "movies.csv")
    items = pd.DataFrame({"item_id": mv["movieId"], "title": mv["title"],
                          "genres": mv.get("genres", pd.Series([""] * len(mv))).fillna("").astype(str)})
    items.loc[items["genres"] == "(no genres listed)", "genres"] = ""
    items["text"] = items["title"].astype(str) + " " + items["genres"].str.replace("|", " ", regex=False)
    report = DataReport(source=str(root / "ratings.csv"))
    return _finish(spec, events, items, opts, vopts, report, ["genres"], items_source=str(root / "movies.csv"),
                   header_lines=(1, 1))


def _read_parquet(path: Path) -> pd.DataFrame:
    """One Parquet file, or an error that names it and tells an unreadable file from damaged bytes."""
    try:
        return pd.read_parquet(path)
    except OSError as e:
        if e.errno is None:  # pyarrow raises its IO errors as OSError without an errno: damaged bytes
            err = e
        else:
            raise DataValidationError(str(path), f"cannot open it ({e.strerror or e})",
                                      "check the path and its read permission") from e
    except Exception as e:  # ArrowInvalid and friends: the bytes are not (all) Parquet
        err = e
    size = path.stat().st_size
    fix = ("the file is empty: copy it again" if size == 0 else
           "if it was copied or downloaded, copy it again (a truncated copy reads like this); if another tool "
           "wrote it, rewrite it with pyarrow or pandas to_parquet")
    raise DataValidationError(str(path), f"not a readable Parquet file of {size} bytes ({type(err).__name__}: "
                                         f"{err})", fix) from err


def load_parquet(path: str, opts: dict[str, str], spec: str) -> FeedbackData:
    root = Path(path)
    _require(root, ["events.parquet", "items.parquet"], "parquet")
    vopts = _take_validation_opts(opts)
    events, items = _read_parquet(root / "events.parquet"), _read_parquet(root / "items.parquet")
    truth = _read_parquet(root / "truth.parquet") if (root / "truth.parquet").exists() else None
    skip = {"item_id", "title", "text"}
    cats = [c for c in items.columns if c not in skip and
            (pd.api.types.is_string_dtype(items[c]) or items[c].dtype == object) and
            not isinstance(items[c].iloc[0] if len(items) else None, (list, np.ndarray))]
    report = DataReport(source=str(root / "events.parquet"))
    return _finish(spec, events, items, opts, vopts, report, cats, truth, items_source=str(root / "items.parquet"))


def load_synthetic(opts: dict[str, str], spec: str) -> FeedbackData:
    from feedback.simulator import SimConfig, simulate

    names = {f.name: f.type for f in fields(SimConfig)}
    unknown = [k for k in opts if k not in names]
    if unknown:
        raise ValueError(f"data spec {spec!r}: unknown simulator option(s) {unknown}; valid: {sorted(names)}")
    kwargs = {}
    defaults = SimConfig()
    for k, v in opts.items():
        cur = getattr(defaults, k)
        kwargs[k] = (v.lower() in ("1", "true", "yes")) if isinstance(cur, bool) else type(cur)(v)
    events, items, truth = simulate(SimConfig(**kwargs))
    report = DataReport(source=spec)
    return _finish(spec, events, items, {}, ValidationOptions(), report, ["category"], truth)


def load(spec: str) -> FeedbackData:
    """Load and validate the dataset a spec string names (see the module docstring)."""
    from feedback.fetch import DATASETS, resolve

    name, _, rest = spec.partition(",")
    if ":" not in name and name in DATASETS:
        spec = resolve(name) + ("," + rest if rest else "")
    kind, path, opts = parse_spec(spec)
    try:
        return _load(kind, path, opts, spec)
    except PermissionError as e:
        raise DataValidationError(str(e.filename or path), f"cannot be read ({e.strerror})",
                                  "check the file's permissions, or copy it somewhere readable") from None


def _load(kind: str, path: str | None, opts: dict, spec: str) -> FeedbackData:
    if kind == "movielens-100k":
        return load_movielens_100k(path, opts, spec)
    if kind == "movielens-1m":
        return load_movielens_1m(path, opts, spec)
    if kind == "kuairand":
        return load_kuairand(path, opts, spec)
    if kind == "movielens-csv":
        return load_movielens_csv(path, opts, spec)
    if kind == "parquet":
        return load_parquet(path, opts, spec)
    return load_synthetic(opts, spec)
