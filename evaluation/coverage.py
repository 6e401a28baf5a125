"""The paper's motivation study, on data whose true negative interests are known (the simulator).

For each test user: is their top-1 (top-k: any of the top k) true negative interest — a category —
covered by the items of (a) the next negative, (b) the negatives of the next H days, (c) (b) plus the
top-n Swing neighbours of the user's context negatives? The paper found next-negative covers the top
interest far less often than multi-day future negatives.
"""

from __future__ import annotations

import numpy as np

from evaluation.methods import Swing
from feedback.split import Split


def coverage_study(split: Split, top_ks=(1, 4), swing_n: int = 20, swing: Swing | None = None) -> dict:
    data = split.data
    if data.truth is None or "neg_interests" not in data.truth.columns:
        raise ValueError(f"{data.name}: the coverage study needs true negative interests (a `truth` table with "
                         "`neg_interests`), which only the simulator (synthetic:...) records")
    cat = data.items["category"].to_numpy()
    interests = dict(zip(data.truth["user_id"], data.truth["neg_interests"]))
    test = split.test
    swing = swing or Swing()
    swing.fit(split)
    neigh = swing.recommend(np.arange(len(test)), swing_n)
    sets = {
        "next_negative": [np.array([x]) for x in test["next_negative"]],
        "future_negatives": list(test["future_neg"]),
    }
    sets["future_negatives+swing"] = [np.union1d(f, n[n >= 0]) for f, n in zip(sets["future_negatives"], neigh)]
    out = {"n_users": int(len(test)), "swing_n": swing_n, "horizon_days": split.config.horizon_days, "coverage": {}}
    for name, item_sets in sets.items():
        row = {}
        for k in top_ks:
            hits = [bool(set(cat[s]) & set(list(interests[u])[:k])) for s, u in zip(item_sets, test["user_id"])]
            row[f"top{k}"] = float(np.mean(hits))
        row["mean_set_size"] = float(np.mean([len(s) for s in item_sets]))
        out["coverage"][name] = row
    return out
