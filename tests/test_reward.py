"""Rewards by hand on a 4-item catalogue, plug-in failure modes, and ground-truth construction."""

import textwrap
import time

import numpy as np
import pytest

from reward.ground_truth import GroundTruth, build_ground_truth
from reward.plugins import Plugin, PluginError
from reward.scorer import RewardConfig, RewardScorer, RewardTerm
from sid.index import SidIndex

# level-0 codewords e_x, e_y, -e_x; level-1 codewords 0, e_y, -e_y
CB = np.array([[[1, 0], [0, 1], [-1, 0]], [[0, 0], [0, 1], [0, -1]]], dtype=np.float32)
CODES = np.array([[0, 0], [1, 0], [0, 1], [2, 0]])  # embeddings: (1,0) (0,1) (1,1) (-1,0)
INDEX = SidIndex(np.array([10, 11, 12, 13]), CODES, CB)
# sample 0: GTS {1, 2}, FPS {3}, next negative 1; sample 1: GTS {3}, FPS {}, next negative 3
GT = GroundTruth.from_lists([[1, 2], [3]], [[3], []], [1, 3])
R2 = np.sqrt(0.5)


def scorer(*terms, **kw):
    return RewardScorer(RewardConfig(terms=list(terms), **kw), GT, INDEX)


S0, S1, S2, S3 = (INDEX.sid(i) for i in range(4))


def test_future_sim_by_hand():
    out = scorer(RewardTerm("future_sim", params={"gamma": 0.5})).score([0, 0, 1], [S0, S2, S1])
    # item0 vs GTS {1,2}: max(0, 1/√2); vs FPS {3}: −1 → 1/√2 + 0.5
    # item2 vs GTS: max(1/√2, 1) = 1; vs FPS: −1/√2 → 1 + 0.5/√2
    # item1 vs GTS {3}: 0; FPS empty → 0
    np.testing.assert_allclose(out["score"], [R2 + 0.5, 1 + 0.5 * R2, 0.0], rtol=1e-6)
    np.testing.assert_allclose(out["terms"]["future_sim/gts_sim"], [R2, 1.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(out["terms"]["future_sim/fps_sim"], [-1.0, -R2, 0.0], rtol=1e-6)
    assert out["metrics"]["reward/invalid_rate"] == 0.0


def test_invalid_codes_get_the_penalty_and_are_counted():
    out = scorer(RewardTerm("future_sim"), invalid_penalty=-2.0).score([0, 0, 0, 0], [S0, "<a_1><b_1>", "hello",
                                                                                   "<a_0>"])
    assert out["score"].tolist()[1:] == [-2.0, -2.0, -2.0]
    assert out["terms"]["invalid"].tolist() == [0, 1, 1, 1]
    assert np.isnan(out["terms"]["future_sim/gts_sim"][1])
    assert out["metrics"]["reward/invalid_rate"] == 0.75


def test_hit_by_hand():
    out = scorer(RewardTerm("hit")).score([0, 0, 0, 1], [S0, S2, S3, S1])
    # item0 (0,0) vs GTS (1,0),(0,1): one leading level with item2 → 0.1; item2 exact → 1;
    # item3 (2,0): none → 0; item1 (1,0) vs (2,0): none → 0
    assert out["score"].tolist() == pytest.approx([0.1, 1.0, 0.0, 0.0])
    assert out["terms"]["hit/matched_levels"].tolist() == [1, 2, 0, 0]


def test_rank_hit_by_hand():
    # beam groups of 3, best first. Group 0 (GTS {1, 2}) holds a full hit at rank 1: the wrong items at ranks
    # 0 and 2 lose w_k / Σw with w = (1, 1/log2 3, 1/2). Group 1 (GTS {3}) has no full hit: no rank term.
    out = scorer(RewardTerm("rank_hit")).score([0, 0, 0, 1, 1, 1], [S0, S2, S3, S1, S0, S2], group_size=3)
    w = np.array([1.0, 1 / np.log2(3), 0.5])
    w /= w.sum()
    np.testing.assert_allclose(out["score"], [0.1 - w[0], 1.0, -w[2], 0, 0, 0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out["terms"]["rank_hit/rank_penalty"], [w[0], 0, w[2], 0, 0, 0], rtol=1e-6)
    with pytest.raises(ValueError, match="whole groups"):
        scorer(RewardTerm("rank_hit")).score([0, 0, 0], [S0, S2, S3], group_size=2)
    with pytest.raises(ValueError, match="group_size=1"):
        scorer(RewardTerm("rank_hit")).score([0, 0], [S0, S2])


def test_rank_hit_fps_penalty_by_hand():
    # sample 0: GTS {1, 2}, FPS {3}. Group 0 holds a full hit (item 2) and the liked item 3 at rank 2; group 1
    # holds no full hit but the liked item 3 at rank 0 (item 0 shares one level with item 2: 0.1).
    w = np.array([1.0, 1 / np.log2(3), 0.5])
    w /= w.sum()
    groups = [0] * 6, [S0, S2, S3, S3, S0, S0]
    out = scorer(RewardTerm("rank_hit", params={"fps_penalty": 0.5})).score(*groups, group_size=3)
    np.testing.assert_allclose(out["score"], [0.1 - w[0], 1.0, -w[2] - 0.5, -0.5, 0.1, 0.1], rtol=1e-6, atol=1e-7)
    assert out["terms"]["rank_hit/fps_hit"].tolist() == [0, 0, 1, 1, 0, 0]
    # "hit": only groups holding a full hit pay it, so group 1 keeps its plain hit rewards
    out = scorer(RewardTerm("rank_hit", params={"fps_penalty": 0.5, "fps_groups": "hit"})).score(*groups, group_size=3)
    np.testing.assert_allclose(out["score"], [0.1 - w[0], 1.0, -w[2] - 0.5, 0.0, 0.1, 0.1], rtol=1e-6, atol=1e-7)
    # an example without future positives is never charged; an invalid output gets the invalid penalty instead
    out = scorer(RewardTerm("rank_hit", params={"fps_penalty": 0.5})).score([1, 1], [S3, "<a_9>"], group_size=2)
    assert out["terms"]["rank_hit/fps_hit"][0] == 0 and np.isnan(out["terms"]["rank_hit/fps_hit"][1])
    with pytest.raises(ValueError, match="fps_groups"):
        scorer(RewardTerm("rank_hit", params={"fps_penalty": 0.5, "fps_groups": "some"})).score(*groups, group_size=3)


def test_topk_hit_by_hand():
    # beam groups of 3, best first, k = 1. Group 0 (GTS {1, 2}): its full hit (item 2) sits at rank 1, below the
    # top 1, a near miss: the wrong item at rank 0 (0.1 for a shared leading level) loses penalty / k = 1, the
    # wrong item at rank 2 (outside the top k) is left at its hit reward 0. Group 1 (same GTS) holds the hit at
    # rank 0: every row pays 1 (no gradient). Group 2 (GTS {3}) has no full hit: the plain hit reward.
    out = scorer(RewardTerm("topk_hit", params={"k": 1})).score([0] * 6 + [1] * 3,
                                                                [S0, S2, S3, S2, S0, S3, S1, S0, S2], group_size=3)
    np.testing.assert_allclose(out["score"], [0.1 - 1.0, 1.0, 0.0, 1, 1, 1, 0, 0, 0], rtol=1e-6)
    assert out["terms"]["topk_hit/satisfied"].tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0]
    assert out["terms"]["topk_hit/near_miss"].tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="larger than k=20"):
        scorer(RewardTerm("topk_hit")).score([0] * 16, [S0] * 16, group_size=16)


def test_next_negative_and_threshold_by_hand():
    nn = scorer(RewardTerm("next_negative_sim")).score([0, 0], [S2, S1])
    np.testing.assert_allclose(nn["score"], [R2, 1.0], rtol=1e-6)
    th = scorer(RewardTerm("threshold_sim", params={"threshold": 0.8, "gamma": 0.5})).score([0, 0], [S0, S2])
    assert th["score"].tolist() == [0.0, 1.0]


def test_weighted_combination():
    out = scorer(RewardTerm("hit", weight=2.0), RewardTerm("next_negative_sim", weight=0.5)).score([0], [S2])
    assert out["score"][0] == pytest.approx(2.0 * 1.0 + 0.5 * R2)


def test_token_ids_are_parsed():
    table = np.full((10, 2), -1)
    table[5], table[6], table[7] = (0, 0), (1, 1), (0, 2)  # <a_0> <b_1> <a_2>
    sc = RewardScorer(RewardConfig(), GT, INDEX, table)
    items, _ = sc.parse([[5, 6, 1], [7, 6], [5]])
    assert items.tolist() == [2, -1, -1]  # (0,1) = item 2; (2,1) no item; incomplete


def test_unknown_term():
    with pytest.raises(ValueError, match="neither a built-in"):
        scorer(RewardTerm("futuresim"))


def test_bad_sample_ids():
    with pytest.raises(ValueError, match=r"sample ids must lie in \[0, 2\)"):
        scorer(RewardTerm()).score([5], [S0])


PLUGINS = textwrap.dedent("""
    import asyncio, math, time

    def good(data_source, solution_str, ground_truth, extra_info=None):
        return {"score": 0.5 if solution_str in ground_truth["gts"] else 0.0, "n_gts": len(ground_truth["gts"])}

    def boom(data_source, solution_str, ground_truth, extra_info=None):
        if extra_info["sample_id"] == 1:
            raise KeyError("no such user")
        return 1.0

    def hang(data_source, solution_str, ground_truth, extra_info=None):
        time.sleep(1.5)
        return 1.0

    import threading
    NEVER = threading.Event()

    def block(data_source, solution_str, ground_truth, extra_info=None):
        if extra_info["sample_id"] == 1:
            NEVER.wait()  # blocks for good
        return 1.0

    async def ahang(data_source, solution_str, ground_truth, extra_info=None):
        await asyncio.sleep(30)
        return 1.0

    async def agood(data_source, solution_str, ground_truth, extra_info=None):
        await asyncio.sleep(0.01)
        return 2.0

    def nan(data_source, solution_str, ground_truth, extra_info=None):
        return math.nan

    def noscore(data_source, solution_str, ground_truth, extra_info=None):
        return {"value": 1.0}

    def batch(data_sources, solution_strs, ground_truths, extra_infos):
        return [float(len(s)) for s in solution_strs]

    def badbatch(data_sources, solution_strs, ground_truths, extra_infos):
        return [1.0]
""")


@pytest.fixture()
def plugfile(tmp_path):
    p = tmp_path / "plugs.py"
    p.write_text(PLUGINS)
    return str(p)


def test_plugin_good_sync_async_and_batched(plugfile):
    out = scorer(RewardTerm(f"{plugfile}:good")).score([0, 0], [S1, S0])
    assert out["score"].tolist() == [0.5, 0.0]
    assert out["terms"][f"{plugfile}:good/n_gts"].tolist() == [2, 2]
    assert scorer(RewardTerm(f"{plugfile}:agood")).score([0], [S0])["score"].tolist() == [2.0]
    b = scorer(RewardTerm(f"{plugfile}:batch", batched=True)).score([0, 1], [S0, S1])
    assert b["score"].tolist() == [len(S0), len(S1)]


@pytest.mark.parametrize("fn, kind, kw", [
    ("boom", "raised", {}),
    ("hang", "timeout", {"timeout_s": 0.3}),
    ("ahang", "timeout", {"timeout_s": 0.3}),
    ("nan", "nonfinite", {}),
    ("noscore", "bad_return", {}),
    ("badbatch", "bad_return", {"batched": True}),
])
def test_plugin_failures_fail_the_step(plugfile, fn, kind, kw):
    with pytest.raises(PluginError) as e:
        scorer(RewardTerm(f"{plugfile}:{fn}", **kw)).score([0, 1], [S0, S1])
    assert e.value.kind == kind and e.value.plugin == f"{plugfile}:{fn}"
    assert e.value.sample_id in (0, 1) and f"sample {e.value.sample_id}" in str(e.value)


@pytest.mark.parametrize("fn, kind, kw, expect", [
    ("boom", "raised", {}, [1.0, -0.25]),
    ("hang", "timeout", {"timeout_s": 0.3}, [-0.25, -0.25]),
    ("nan", "nonfinite", {}, [-0.25, -0.25]),
    ("noscore", "bad_return", {}, [-0.25, -0.25]),
])
def test_plugin_failures_fallback_counted(plugfile, fn, kind, kw, expect):
    out = scorer(RewardTerm(f"{plugfile}:{fn}", on_error="fallback", fallback=-0.25, **kw)).score([0, 1], [S0, S1])
    assert out["score"].tolist() == expect
    n_fail = sum(1 for x in expect if x == -0.25)
    assert out["metrics"][f"reward/plugin/{plugfile}:{fn}/{kind}"] == n_fail


def test_blocking_plugin_times_out_every_sample_of_a_large_batch(plugfile):
    """64 blocking samples, max_concurrency 8: the batch falls back within about one timeout (the queued
    samples used to never start, hanging the batch for good), and the blocked threads do not stall the
    next batch on the same scorer."""
    import threading

    sc = scorer(RewardTerm(f"{plugfile}:block", timeout_s=0.5, max_concurrency=8, on_error="fallback",
                           fallback=-0.5))
    out, t0 = {}, time.monotonic()
    t = threading.Thread(target=lambda: out.update(first=sc.score([1] * 64, [S0] * 64), t1=time.monotonic(),
                                                   second=sc.score([0] * 6, [S0] * 6)), daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "the plug-in call hung"
    assert out["first"]["score"].tolist() == [-0.5] * 64
    assert out["first"]["metrics"][f"reward/plugin/{plugfile}:block/timeout"] == 64
    assert out["t1"] - t0 < 3 * 0.5  # about one timeout, not one per wave of 8
    assert out["second"]["score"].tolist() == [1.0] * 6  # 8 threads still blocked; the next batch runs


def test_blocked_plugin_threads_do_not_hold_up_exit(plugfile):
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import sys; from tests.test_reward import scorer, S0; from reward.scorer import RewardTerm; "
            "sc = scorer(RewardTerm(sys.argv[1] + ':block', timeout_s=0.2, on_error='fallback')); "
            "print(sc.score([1] * 3, [S0] * 3)['score'].tolist())")
    proc = subprocess.run([sys.executable, "-c", code, plugfile], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "[0.0, 0.0, 0.0]" in proc.stdout, proc.stderr[-2000:]


def test_plugin_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        Plugin(str(tmp_path / "missing.py"))
    with pytest.raises(ImportError, match="cannot import"):
        Plugin("no_such_module_xyz:fn")
    (tmp_path / "p.py").write_text("x = 1\n")
    with pytest.raises(AttributeError, match="no function 'compute_score'"):
        Plugin(str(tmp_path / "p.py"))


def test_example_plugin():
    from tests.conftest import ROOT

    out = scorer(RewardTerm("future_sim"), RewardTerm(str(ROOT / "examples/first_level_reward.py"), weight=0.2)
                 ).score([0], [S0])
    # S0 = <a_0><b_0> shares the first token <a_0> with item 2 of the GTS
    assert out["score"][0] == pytest.approx(R2 + 0.5 + 0.2)


def test_ground_truth_from_examples():
    from feedback.split import make_split, training_examples
    from tests.test_split import ROWS, build

    split = make_split(build(ROWS))
    ex = training_examples(split)
    gt = build_ground_truth(ex, split, swing_n=5)
    assert len(gt) == len(ex)
    for i in range(len(ex)):
        assert set(ex["future_neg"].iat[i]) <= set(gt.gts(i).tolist())
        assert gt.fps(i).tolist() == sorted(ex["future_pos"].iat[i])
        own = set(ex["ctx_items"].iat[i][ex["ctx_fb"].iat[i] == -1].tolist())
        extra = set(gt.gts(i).tolist()) - set(ex["future_neg"].iat[i].tolist())
        assert not extra & own  # Swing neighbours never repeat the example's own context negatives
    g2 = GroundTruth.from_frame(gt.to_frame())
    assert np.array_equal(g2.gts_items, gt.gts_items) and np.array_equal(g2.fps_indptr, gt.fps_indptr)


@pytest.mark.parametrize("weighting", ["swing_score", "inverse_pop"])
def test_ground_truth_in_user_chunks_with_one_swing_matrix_equals_the_whole(weighting):
    """The data path at catalogue scale builds examples and their ground truth a chunk of users at a time,
    sharing one Swing matrix (`chunked_ground_truth`, what `conrec data split` writes): the chunks,
    concatenated in order, are the whole-split result."""
    from feedback.loaders import load
    from feedback.split import make_split, training_examples
    from reward.ground_truth import chunked_ground_truth

    split = make_split(load("synthetic:users=60,items=80,days=20,seed=3"))
    ex = training_examples(split, max_context=10)
    whole = build_ground_truth(ex, split, swing_n=7, future_swing_n=3, weighting=weighting, transition_n=4,
                               category_n=3, user_knn_n=3)
    parts = list(chunked_ground_truth(split, 10, 7, swing_n=7, future_swing_n=3, weighting=weighting,
                                      transition_n=4, category_n=3, user_knn_n=3))
    assert len(parts) >= 5 and sum(len(e) for e, _ in parts) == len(ex)
    assert [int(u) for e, _ in parts for u in e["uidx"]] == ex["uidx"].tolist()
    got = [g.gts(i).tolist() for _, g in parts for i in range(len(g))]
    assert got == [whole.gts(i).tolist() for i in range(len(whole))]
    assert [g.fps(i).tolist() for _, g in parts for i in range(len(g))] == \
        [whole.fps(i).tolist() for i in range(len(whole))]
    assert np.array_equal(np.concatenate([g.gts_weights for _, g in parts]), whole.gts_weights)


def test_weighted_gts_by_hand():
    """A weighted GTS pays weight · level reward of its best item (hit, rank_hit) and weight · cosine
    (future_sim). Sample 0: GTS {1: weight 1, 2: weight 0.3}."""
    gt = GroundTruth.from_lists([[1, 2], [3]], [[3], []], [1, 3], gts_weights=[[1.0, 0.3], [1.0]])
    sc = RewardScorer(RewardConfig(terms=[RewardTerm("hit")]), gt, INDEX)
    out = sc.score([0, 0, 0, 0], [S0, S1, S2, S3])
    # item0 (0,0): one level with item2 (0,1) → 0.1 · 0.3; item1 exact → 1; item2 exact → 0.3; item3 → 0
    assert out["score"].tolist() == pytest.approx([0.03, 1.0, 0.3, 0.0])
    assert out["terms"]["hit/matched_levels"].tolist() == [1, 2, 2, 0]
    fs = RewardScorer(RewardConfig(terms=[RewardTerm("future_sim", params={"gamma": 0.0})]), gt, INDEX)
    # item0 (1,0) vs item1 (0,1): cos 0; vs item2 (1,1): 1/√2, weighted 0.3
    assert fs.score([0], [S0])["score"][0] == pytest.approx(0.3 * R2)
    g2 = GroundTruth.from_frame(gt.to_frame())
    assert np.array_equal(g2.gts_weights, gt.gts_weights)
    with pytest.raises(ValueError, match="one weight per GTS item"):
        GroundTruth.from_lists([[1, 2]], [[]], [1], gts_weights=[[1.0]])


def test_ground_truth_future_neighbours_and_swing_score_weights_by_hand():
    """Swing rows by hand: item 0 ~ {2: 0.8, 3: 0.4}, item 1 ~ {3: 0.5, 4: 0.2}. One example with context
    negative 0 and future negative 1."""
    import pandas as pd
    import scipy.sparse as sp

    S = sp.csr_matrix(([0.8, 0.4, 0.5, 0.2], ([0, 0, 1, 1], [2, 3, 3, 4])), shape=(5, 5))
    ex = pd.DataFrame({"ctx_items": [np.array([0])], "ctx_fb": [np.array([-1])], "future_neg": [np.array([1])],
                       "future_pos": [np.array([], dtype=int)], "next_negative": [1]})
    split = type("S", (), {"n_items": 5})()
    flat = build_ground_truth(ex, split, swing_n=2, similarity=S)
    assert flat.gts(0).tolist() == [1, 2, 3] and flat.gts_weights is None
    # the context's neighbours 2, 3 scaled by their best score 0.8: 1, 0.5
    w = build_ground_truth(ex, split, swing_n=2, similarity=S, weighting="swing_score")
    assert w.gts(0).tolist() == [1, 2, 3] and w.weights(0).tolist() == pytest.approx([1.0, 1.0, 0.5])
    # the future negative's neighbours 3, 4 scaled by 0.5: 1, 0.4; item 3 keeps its larger weight
    f = build_ground_truth(ex, split, swing_n=2, similarity=S, future_swing_n=2, weighting="swing_score")
    assert f.gts(0).tolist() == [1, 2, 3, 4] and f.weights(0).tolist() == pytest.approx([1.0, 1.0, 1.0, 0.4])
    assert build_ground_truth(ex, split, swing_n=0, similarity=S, future_swing_n=1).gts(0).tolist() == [1, 3]
    with pytest.raises(ValueError, match="GTS weighting 'rank' is unknown"):
        build_ground_truth(ex, split, similarity=S, weighting="rank")


def test_inverse_popularity_weights_by_hand():
    """Training negatives per item [0, 3, 1, 15, 1]: the median over items with any is 2, so an item weighs
    min(1, √(3 / (c + 1))): 1, √(3/4), 1, √(3/16), 1. The example of the test above has GTS {1, 2, 3}."""
    import pandas as pd
    import scipy.sparse as sp

    from reward.ground_truth import popularity_weights

    counts = np.array([0, 3, 1, 15, 1])
    assert popularity_weights(counts).tolist() == pytest.approx([1.0, 0.75 ** 0.5, 1.0, 0.1875 ** 0.5, 1.0])
    S = sp.csr_matrix(([0.8, 0.4, 0.5, 0.2], ([0, 0, 1, 1], [2, 3, 3, 4])), shape=(5, 5))
    ex = pd.DataFrame({"ctx_items": [np.array([0])], "ctx_fb": [np.array([-1])], "future_neg": [np.array([1])],
                       "future_pos": [np.array([], dtype=int)], "next_negative": [1]})
    split = type("S", (), {"n_items": 5, "train_negative_counts": lambda self: counts})()
    gt = build_ground_truth(ex, split, swing_n=2, similarity=S, weighting="inverse_pop")
    assert gt.gts(0).tolist() == [1, 2, 3]
    assert gt.weights(0).tolist() == pytest.approx([0.75 ** 0.5, 1.0, 0.1875 ** 0.5])
    # a full hit on the popular item 3 pays its weight
    hit = RewardScorer(RewardConfig(terms=[RewardTerm("hit")]), gt, INDEX).score([0], [S3])["score"]
    assert hit[0] == pytest.approx(0.1875 ** 0.5)


def test_transition_scores_by_hand():
    """Negatives (user: item@day), horizon 1 day. u0: 0@0, 1@0.5, 2@3; u1: 0@0, 2@0.5; u2: 1@0. Pairs within the
    horizon: u0 0→1, u1 0→2 (u0's 1→2 is 2.5 days apart). Items 0 and 1 each have 2 users with a negative:
    P(1 | 0) = P(2 | 0) = 1/2, and nothing else."""
    import pandas as pd

    from feedback.swing import user_item_matrix

    day = 86_400
    train = pd.DataFrame({"uidx": [0, 0, 0, 1, 1, 2], "iidx": [0, 1, 2, 0, 2, 1],
                          "timestamp": [0, day // 2, 3 * day, 0, day // 2, 0], "fb": [-1] * 6})

    class Split:
        n_items = 4
        config = type("C", (), {"horizon_days": 1.0})()

        def negative_matrix(self):
            return user_item_matrix(train["uidx"].to_numpy(), train["iidx"].to_numpy(), 3, 4)

    sp_ = Split()
    sp_.train = train
    from reward.ground_truth import transition_scores

    T = transition_scores(sp_).toarray()
    want = np.zeros((4, 4))
    want[0, 1] = want[0, 2] = 0.5
    np.testing.assert_allclose(T, want)
    ex = pd.DataFrame({"ctx_items": [np.array([0])], "ctx_fb": [np.array([-1])], "future_neg": [np.array([3])],
                       "future_pos": [np.array([], dtype=int)], "next_negative": [3]})
    import scipy.sparse as sp

    gt = build_ground_truth(ex, sp_, swing_n=0, similarity=sp.csr_matrix((4, 4)), transition_n=1)
    assert gt.gts(0).tolist() == [1, 3]  # the tie 1 / 2 goes to the lower item index
