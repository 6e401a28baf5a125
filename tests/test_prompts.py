"""The prompt's user context: which items, in what order, and the recency marks (hand-checked strings)."""

import numpy as np
import pytest

from trainer.prompts import DAY, ContextConfig, build_context

# items 0..7, oldest → newest; the cutoff is day 10, so items 4-7 fall in the last 3 days
ITEMS = np.arange(8)
FB = np.array([-1, 1, -1, 1, -1, -1, 1, 0])
TS = (np.array([0, 1, 2, 3, 9, 9.5, 9.6, 9.7]) * DAY).astype(np.int64)
T_CUT = 10 * DAY


def ctx(**kw) -> str:
    return build_context(ITEMS, FB, TS, T_CUT, lambda i: f"<{i}>", ContextConfig(**kw))


@pytest.mark.parametrize("mode, marked, want", [
    ("neg_recent", False, "user disliked: <4> <5> next dislike:"),
    ("neg_recent", True, "user disliked: recently: <4> <5> next dislike:"),
    ("neg_all", False, "user disliked: <0> <2> <4> <5> next dislike:"),
    ("neg_all", True, "user disliked: <0> <2> recently: <4> <5> next dislike:"),
    ("neg_pos", False, "user disliked: <2> <4> <5> liked: <1> <3> <6> next dislike:"),
    ("neg_pos", True, "user disliked: <2> recently: <4> <5> liked: <1> <3> recently: <6> next dislike:"),
])
def test_context_modes_and_recency_marks(mode, marked, want):
    assert ctx(mode=mode, mark_recent=marked, max_items=6) == want


def test_budget_keeps_the_newest_and_marks_only_what_is_kept():
    # 4 items: 2 negatives and 2 positives, the newest of each; every kept negative is recent
    assert ctx(mode="neg_pos", mark_recent=True, max_items=4) == \
        "user disliked: recently: <4> <5> liked: <3> recently: <6> next dislike:"
    # nothing recent: no mark
    assert ctx(mode="neg_all", mark_recent=True, max_items=4, recent_days=0.1) == \
        "user disliked: <0> <2> <4> <5> next dislike:"


def test_stage_context_keeps_the_marks():
    base = ContextConfig(mode="neg_pos", mark_recent=True, recent_days=2.0, max_items=30)
    stage = base.for_stage("neg_recent", 20)
    assert (stage.mode, stage.max_items, stage.mark_recent, stage.recent_days) == ("neg_recent", 20, True, 2.0)
    assert base.mode == "neg_pos"


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="neg_recent, neg_all or neg_pos"):
        ctx(mode="everything")


def test_swing_warmup_targets_the_context_negatives_neighbours():
    from types import SimpleNamespace

    import pandas as pd

    from feedback.split import Split, SplitConfig
    from trainer.prompts import warmup_swing

    # negatives: users 0-2 disliked items 0 and 1, users 3-4 items 0 and 2; item 3 co-occurs with nothing.
    # Swing (α = 1): sim(0, 1) = 3 user pairs × 1 / (1 + 2) = 1; sim(0, 2) = 1 pair × 1/3
    pairs = [(u, 0) for u in range(5)] + [(u, 1) for u in range(3)] + [(3, 2), (4, 2), (5, 3)]
    train = pd.DataFrame({"uidx": [u for u, _ in pairs], "iidx": [i for _, i in pairs], "fb": -1})
    ex = pd.DataFrame({"ctx_items": [np.array([0]), np.array([3]), np.array([0, 4])],
                       "ctx_fb": [np.array([-1]), np.array([-1]), np.array([-1, 1])],
                       "ctx_ts": [np.array([0]), np.array([0]), np.array([0, 0])], "t_cut": [DAY] * 3})
    split = Split(SimpleNamespace(n_users=6, n_items=5), SplitConfig(), train, pd.DataFrame())
    kw = dict(examples=ex, split=split, sid=lambda i: f"<{i}>", context=ContextConfig(mode="neg_pos"))
    # top 1: the best neighbour of item 0; the example whose negative has no neighbour gives no pair
    assert list(warmup_swing(top_n=1, **kw)) == [("user disliked: <0> liked: next dislike:", "<1>"),
                                                 ("user disliked: <0> liked: <4> next dislike:", "<1>")]
    # top 2: item 1 or item 2, drawn 3 : 1, never a context item
    got = [t for s in range(200) for _, t in warmup_swing(top_n=2, seed=s, **kw)]
    assert set(got) == {"<1>", "<2>"} and 0.65 < got.count("<1>") / len(got) < 0.85
