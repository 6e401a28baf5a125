"""Train/evaluation splits and their labels, exactly as docs/EVALUATION.md fixes them.

Per-user split (default): a user's events, sorted by (timestamp, item id), are cut at position
floor(context_frac · n); the events before it are the context (the only training data), and the
future window is [t_cut, t_cut + horizon). Global split: one time cutoff for all users (leak-free
across users). Test users have ≥ 1 negative in their window. `carve_validation` applies the same
protocol to the training events alone, so validation never sees an evaluation window.

Training examples slide a cutoff over each user's context: every context negative starts a window
of its own, and windows are clipped at the user's evaluation cutoff.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from feedback.dataset import FeedbackData
from feedback.schema import DataValidationError

log = logging.getLogger(__name__)

DAY = 86_400


@dataclass
class SplitConfig:
    """How to cut the log into context (training) and evaluation windows."""

    method: str = "per_user"
    """'per_user' (cut each user at floor(context_frac · n)) or 'global' (one time cutoff)."""
    context_frac: float = 0.8
    horizon_days: float = 7.0
    """Length of the future window H in days."""
    global_quantile: float = 0.8
    """For method='global': the cutoff is this quantile of all event timestamps."""
    n_candidates: int = 20
    """Candidate Acc.: one true future negative plus n_candidates - 1 distractors."""
    seed: int = 0
    validation_run: bool = False
    """Tuning mode: cut the training events again by the same rule and use that as the whole split, so
    the test users become the validation users carved from training data. A run tuned this way never
    reads the test split; `conrec run ... split.validation_run=true` is how hyperparameters are chosen."""

    def problems(self) -> list[str]:
        """What is wrong with these settings, each naming its key (empty when they are usable)."""
        checks = [
            (0 < self.context_frac < 1, f"split.context_frac={self.context_frac} must lie strictly between 0 and 1"),
            (self.horizon_days > 0, f"split.horizon_days={self.horizon_days} must be > 0"),
            (self.n_candidates >= 1, f"split.n_candidates={self.n_candidates} must be ≥ 1"),
            (self.method in ("per_user", "global"), f"split.method={self.method!r} must be 'per_user' or 'global'"),
            (0 < self.global_quantile < 1, f"split.global_quantile={self.global_quantile} must lie in (0, 1)"),
        ]
        return [msg for ok, msg in checks if not ok]


@dataclass
class Split:
    """`train`: the context events (all users). `test`: one row per test user with list-valued labels."""

    data: FeedbackData
    config: SplitConfig
    train: pd.DataFrame
    test: pd.DataFrame

    @property
    def n_items(self) -> int:
        return self.data.n_items

    def negative_matrix(self):
        """Binary users × items CSR matrix of the training negatives (the graph Swing runs on)."""
        from feedback.swing import user_item_matrix

        neg = self.train[self.train["fb"] == -1]
        return user_item_matrix(neg["uidx"].to_numpy(), neg["iidx"].to_numpy(), self.data.n_users, self.n_items)

    def train_negative_counts(self) -> np.ndarray:
        tr = self.train
        return np.bincount(tr.loc[tr["fb"] == -1, "iidx"], minlength=self.n_items)

    def describe(self) -> dict:
        return {"method": self.config.method, "n_train_events": int(len(self.train)),
                "n_test_users": int(len(self.test)), "config": asdict(self.config)}


def save_split(split: Split, out: str | Path, extra: dict | None = None) -> Path:
    """Write a split for another process to read with `load_split`, exactly: data/ (the `parquet:` format),
    train.parquet, test.parquet and split.json (with `extra` in it), each written atomically (split.json
    last, as the marker)."""
    from common.atomic import write_json_atomic, write_parquet_atomic

    out = Path(out)
    split.data.save(out / "data")
    write_parquet_atomic(split.train, out / "train.parquet")
    write_parquet_atomic(split.test, out / "test.parquet")
    write_json_atomic({**(extra or {}), "name": split.data.name, "category_columns": split.data.category_columns,
                       **split.describe()}, out / "split.json")
    return out


def load_split(folder: str | Path) -> Split:
    """The split `save_split` wrote: the same events, indexes, training events and test rows."""
    import json

    from feedback.loaders import load

    folder = Path(folder)
    if not (folder / "split.json").exists():
        raise FileNotFoundError(f"{folder} holds no saved split (split.json is missing): write it with save_split "
                                "or `conrec data split --out`")
    meta = json.loads((folder / "split.json").read_text())
    data = load(f"parquet:{folder / 'data'}")
    data = replace(data, name=meta.get("name", data.name), category_columns=meta.get("category_columns", []))
    train, test = pd.read_parquet(folder / "train.parquet"), pd.read_parquet(folder / "test.parquet")
    for col in test.columns:  # list-valued labels come back as object arrays of arrays: keep numpy int64
        if test[col].dtype == object and len(test) and isinstance(test[col].iat[0], np.ndarray):
            test[col] = [np.asarray(v, dtype=np.int64) for v in test[col]]
    return Split(data=data, config=SplitConfig(**meta["config"]), train=train, test=test)


def _cut_positions(ev: pd.DataFrame, cfg: SplitConfig) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Per event: its position within the user and the user's cut position (aligned to ev rows); and
    the global cutoff time (None for the per-user split)."""
    pos = ev.groupby("uidx", sort=False).cumcount().to_numpy()
    n = ev.groupby("uidx", sort=False)["uidx"].transform("size").to_numpy()
    if cfg.method == "per_user":
        cut = np.floor(cfg.context_frac * n).astype(np.int64)
        return pos, cut, None
    if cfg.method == "global":
        t_cut = int(np.quantile(ev["timestamp"].to_numpy(), cfg.global_quantile))
        before = (ev["timestamp"].to_numpy() < t_cut).astype(np.int64)
        cut = ev.assign(b=before).groupby("uidx", sort=False)["b"].transform("sum").to_numpy()
        return pos, cut, t_cut
    raise ValueError(f"SplitConfig.method must be 'per_user' or 'global', got {cfg.method!r}")


def make_split(data: FeedbackData, cfg: SplitConfig | None = None) -> Split:
    """Cut `data` per `cfg`; build the test table (labels and Candidate Acc. candidates)."""
    cfg = cfg or SplitConfig()
    if problems := cfg.problems():  # not blamed later on the data's feedback labels
        raise ValueError("; ".join(problems))
    if cfg.validation_run:
        full = replace(cfg, validation_run=False)
        return carve_validation(make_split(data, full), full)
    ev = data.events  # sorted by (user_id, timestamp, item_id) at validation
    pos, cut, t_cut_global = _cut_positions(ev, cfg)
    is_ctx = pos < cut
    train = ev[is_ctx].reset_index(drop=True)

    horizon = int(round(cfg.horizon_days * DAY))
    after = ev[~is_ctx]
    # t_cut: the timestamp of the user's first event at or after the cut (global: the global cutoff)
    if t_cut_global is not None:
        t_cut = pd.Series(t_cut_global, index=after.index)
    else:
        t_cut = after.groupby("uidx", sort=False)["timestamp"].transform("first")
    win = after[after["timestamp"].to_numpy() < t_cut.to_numpy() + horizon]
    test_uidx = np.unique(win.loc[win["fb"] == -1, "uidx"].to_numpy())
    if len(test_uidx) == 0:
        n_neg = int((ev["fb"] == -1).sum())
        raise DataValidationError(
            data.name, f"no user has a negative event in the {cfg.horizon_days:g}-day window after their cutoff, "
            f"so there is nothing to predict or reward ({n_neg} negative events in {len(ev)} events of "
            f"{data.n_users} users)",
            "check the feedback labels (a loader's neg= threshold, the 'feedback' column's 'negative' rows) or "
            "widen split.horizon_days / lower split.context_frac", column="feedback")
    if len(test_uidx) < data.n_users:
        log.info("%d of %d users have no negative after their cutoff and are not test users",
                 data.n_users - len(test_uidx), data.n_users)

    rng = np.random.default_rng(cfg.seed)
    # each user's rows are one contiguous run in ev, train and win (uidx ascends with the sorted events), so a
    # user's context, window and history are slices: no per-user frames (≈ 200 k users at 10 M events)
    cols = {name: {c: f[c].to_numpy() for c in ("uidx", "iidx", "fb", "timestamp")}
            for name, f in (("ctx", train), ("win", win), ("all", ev))}
    span = {name: (np.searchsorted(c["uidx"], test_uidx, "left"), np.searchsorted(c["uidx"], test_uidx, "right"))
            for name, c in cols.items()}
    user_ids = np.asarray(data.user_ids)
    rows = []
    for k, u in enumerate(test_uidx.tolist()):
        ctx, w, h = ({c: v[span[n][0][k]:span[n][1][k]] for c, v in cols[n].items()} for n in ("ctx", "win", "all"))
        fneg, fpos = w["iidx"][w["fb"] == -1], w["iidx"][w["fb"] == 1]
        next_neg = int(fneg[0])
        fneg_set = set(fneg.tolist())
        rows.append({
            "uidx": int(u),
            "user_id": user_ids[u],
            "t_cut": int(w["timestamp"][0]) if t_cut_global is None else t_cut_global,
            "context_items": ctx["iidx"].copy(),
            "context_fb": ctx["fb"].copy(),
            "context_ts": ctx["timestamp"].copy(),
            "context_neg": ctx["iidx"][ctx["fb"] == -1],
            "context_pos": ctx["iidx"][ctx["fb"] == 1],
            "next_negative": next_neg,
            "future_neg": np.array(list(dict.fromkeys(fneg.tolist())), dtype=np.int64),
            "future_pos": np.array(list(dict.fromkeys(fpos.tolist())), dtype=np.int64),
            "candidates": _candidates(next_neg, w, h, fneg_set, data.n_items, cfg.n_candidates, rng),
        })
    test = pd.DataFrame(rows, columns=["uidx", "user_id", "t_cut", "context_items", "context_fb", "context_ts",
                                       "context_neg", "context_pos",
                                       "next_negative", "future_neg", "future_pos", "candidates"])
    return Split(data=data, config=cfg, train=train, test=test)


def _candidates(true_neg, window, history, fneg_set, n_items, n, rng) -> np.ndarray:
    """[true negative, n-1 distractors]: window non-negatives first, then the user's other
    non-negative items, then random catalogue items the user never disliked (all deduplicated;
    -1 pads when the catalogue has too few items). `window`, `history`: {"iidx": ..., "fb": ...} arrays."""
    user_neg = set(history["iidx"][history["fb"] == -1].tolist()) | fneg_set
    picked: list[int] = []
    seen = {true_neg}
    for pool in (window["iidx"][window["fb"] != -1], rng.permutation(history["iidx"][history["fb"] != -1])):
        for i in pool.tolist():
            if len(picked) == n - 1:
                break
            if i not in seen and i not in user_neg:
                picked.append(i)
                seen.add(i)
    free = n_items - len(seen | user_neg)
    while len(picked) < n - 1 and free > 0:
        i = int(rng.integers(0, n_items))
        if i not in seen and i not in user_neg:
            picked.append(i)
            seen.add(i)
            free -= 1
    picked += [-1] * (n - 1 - len(picked))  # a catalogue too small to fill the list: -1 pads, never scored
    return np.array([true_neg] + picked, dtype=np.int64)


def carve_validation(split: Split, cfg: SplitConfig | None = None) -> Split:
    """A validation split of the training events alone, under the same protocol."""
    d = split.data
    cols = [c for c in split.train.columns if c not in ("uidx", "iidx", "fb")]
    sub = FeedbackData(name=d.name + " [validation]", events=split.train[cols].copy(), items=d.items,
                       report=d.report, category_columns=d.category_columns, truth=d.truth)
    return make_split(sub, cfg or split.config)


def validation_users(split: Split, n_users: int = 0, seed: int = 0) -> Split:
    """The curriculum's validation split: `carve_validation`, its test users cut to a seeded sample of
    `n_users` (0 = all). The same users whatever stage asks (SFT's hold-out, GRPO's acceptance)."""
    val = carve_validation(split)
    if n_users and n_users < len(val.test):
        pick = np.sort(np.random.default_rng(seed).choice(len(val.test), n_users, replace=False))
        val.test = val.test.iloc[pick].reset_index(drop=True)
    return val


def without_validation_future(split: Split, val: Split) -> Split:
    """`split` whose training events stop, for each validation user, at that user's validation cutoff: a
    stage trained on it (SFT) has not seen the windows the curriculum validates on, so the validation
    figure of its model is not a memory test. Other users' events are kept."""
    limit = dict(zip(val.test["user_id"].tolist(), val.test["t_cut"].tolist()))
    tr = split.train
    uid = np.asarray(split.data.user_ids)[tr["uidx"].to_numpy()]
    lim = np.array([limit.get(u, np.iinfo(np.int64).max) for u in uid], dtype=np.int64)
    return replace(split, train=tr[tr["timestamp"].to_numpy(dtype=np.int64) < lim].reset_index(drop=True))


def training_examples(split: Split, max_context: int = 50, min_context: int = 1) -> pd.DataFrame:
    """One example per context negative: the cutoff slides to that event.

    Context: the user's last `max_context` events before it (item, feedback, timestamp; newest last).
    Labels: `next_negative` (that event's item), `future_neg` / `future_pos` within the horizon. The
    window is clipped at the user's evaluation cutoff because only `split.train` is read.
    """
    horizon = int(round(split.config.horizon_days * DAY))
    rows = []
    for u, g in split.train.groupby("uidx", sort=False):
        items = g["iidx"].to_numpy()
        fb = g["fb"].to_numpy()
        ts = g["timestamp"].to_numpy()
        end = np.searchsorted(ts, ts + horizon, side="left")  # window [ts[p], ts[p] + H)
        for p in np.flatnonzero(fb == -1):
            if p < min_context:
                continue
            lo = max(0, p - max_context)
            w_items, w_fb = items[p:end[p]], fb[p:end[p]]
            rows.append({
                "uidx": int(u), "cut_pos": int(p), "t_cut": int(ts[p]),
                "ctx_items": items[lo:p], "ctx_fb": fb[lo:p], "ctx_ts": ts[lo:p],
                "next_negative": int(items[p]),
                "future_neg": np.unique(w_items[w_fb == -1]),
                "future_pos": np.unique(w_items[w_fb == 1]),
            })
    return pd.DataFrame(rows, columns=["uidx", "cut_pos", "t_cut", "ctx_items", "ctx_fb", "ctx_ts", "next_negative",
                                       "future_neg", "future_pos"])


def user_chunks(split: Split, users: int):
    """`split` with its training events in consecutive chunks of `users` users each (a user's events stay in one
    chunk): work per training example (the examples, their ground truth) then holds one chunk at a time, and the
    chunks' examples, in order, are `training_examples(split)`'s."""
    uidx = split.train["uidx"].to_numpy()
    if len(uidx) == 0:
        return
    bounds = np.searchsorted(uidx, np.arange(0, int(uidx[-1]) + users + 1, users))  # uidx ascends (sorted events)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        if hi > lo:
            yield replace(split, train=split.train.iloc[lo:hi])


def latest_examples(examples: pd.DataFrame, n: int) -> pd.DataFrame:
    """Each user's `n` latest examples (by cutoff position; 0 = all of them). The evaluation predicts at the
    end of a user's history, with a full context; a user's latest examples are the training prompts most
    like it, where the earliest have one or two context events."""
    if n <= 0:
        return examples
    rank = examples.groupby("uidx", sort=False)["cut_pos"].rank(method="first", ascending=False)
    return examples[rank.to_numpy() <= n].reset_index(drop=True)


def fresh_tail(split: Split, frac: float) -> tuple[Split, dict[int, int]]:
    """`split` without the last `frac` of each training user's events, and each user's first held-out position
    (an index into that user's events in `split.train`). A stage trained on the shortened split (SFT) has not
    fitted the tail; another (GRPO) can then learn from windows its starting model has not memorised."""
    tr = split.train
    pos = tr.groupby("uidx", sort=False).cumcount().to_numpy()
    n = tr.groupby("uidx", sort=False)["uidx"].transform("size").to_numpy()
    start = n - np.floor(n * frac).astype(np.int64)
    starts = dict(zip(tr["uidx"].to_numpy().tolist(), start.tolist()))
    return replace(split, train=tr[pos < start].reset_index(drop=True)), starts


def in_fresh_tail(examples: pd.DataFrame, starts: dict[int, int]) -> pd.DataFrame:
    """The examples cut inside their user's held-out tail (`fresh_tail`)."""
    lim = np.array([starts.get(u, np.iinfo(np.int64).max) for u in examples["uidx"].tolist()], dtype=np.int64)
    return examples[examples["cut_pos"].to_numpy(dtype=np.int64) >= lim].reset_index(drop=True)


def holdout_validation_windows(examples: pd.DataFrame, split: Split, val: Split) -> pd.DataFrame:
    """`examples` without those of a validation user whose future window reaches the user's validation
    cutoff (t_cut + H > validation t_cut): trained on, those windows would make validation a memory
    test. Other users' examples, and a validation user's earlier ones, are kept."""
    horizon = int(round(split.config.horizon_days * DAY))
    limit = dict(zip(val.test["user_id"].tolist(), val.test["t_cut"].tolist()))
    uid = np.asarray(split.data.user_ids)[examples["uidx"].to_numpy()]
    lim = np.array([limit.get(u, np.iinfo(np.int64).max) for u in uid], dtype=np.int64)
    keep = examples["t_cut"].to_numpy(dtype=np.int64) + horizon <= lim
    return examples[keep].reset_index(drop=True)
