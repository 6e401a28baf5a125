"""GRPO algorithm pieces (verl's) against hand-computed values."""

import math

import numpy as np
import pytest
import torch

from trainer.grpo_algo import (
    AlgoConfig,
    advantages,
    allowed_mask,
    confident_groups,
    constrained_logprobs,
    exact_kl,
    policy_objective,
)


def test_group_advantages():
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 1], [1, 1, 1], [1, 1, 1]])
    adv = advantages(np.array([1.0, 0, 0, 1, 2.0, 4.0]), mask, ["p"] * 4 + ["q"] * 2, AlgoConfig())
    # group p: rewards [1,0,0,1], mean 0.5, unbiased std 0.5774 → ±0.866; group q: [2,4] → ∓0.7071
    np.testing.assert_allclose(adv[:4, 0], [0.866, -0.866, -0.866, 0.866], atol=1e-3)
    np.testing.assert_allclose(adv[4:, 0], [-0.7071, 0.7071], atol=1e-3)
    assert (adv[0, 2] == 0) and (adv[2, 1:] == 0).all()  # padding carries no advantage
    assert torch.allclose(adv[1], adv[1, :1].expand(3))  # same advantage on every token of a rollout


def test_positive_advantages_by_hand():
    mask = torch.ones(6, 2)
    adv = advantages(np.array([1.0, 0, 0, 1, 2.0, 4.0]), mask, ["p"] * 4 + ["q"] * 2,
                     AlgoConfig(adv_estimator="grpo_positive"))
    # GRPO's advantages (test above) with the negative ones set to 0
    np.testing.assert_allclose(adv[:, 0], [0.866, 0, 0, 0.866, 0, 0.7071], atol=1e-3)
    assert torch.equal(adv[:, 0], adv[:, 1])


def test_tree_advantages_by_hand():
    # group p: 4 two-level codes + EOS (9); only [1, 2] is a hit. Values: root 0.25, [1] 0.5, [4] 0, leaves = r.
    # Unbiased std of [1, 0, 0, 0] = 0.5, completion length 3 → each V(child) − V(parent) is scaled by 3 / 0.5 = 6.
    comps = [[1, 2, 9], [1, 3, 9], [4, 5, 9], [4, 6, 9], [7, 9], [8, 9]]
    mask = torch.tensor([[1, 1, 1]] * 4 + [[1, 1, 0]] * 2)
    adv = advantages(np.array([1.0, 0, 0, 0, 2.0, 2.0]), mask, ["p"] * 4 + ["q"] * 2,
                     AlgoConfig(adv_estimator="tree_grpo"), comps)
    expected = [[1.5, 3, 0], [1.5, -3, 0], [-1.5, 0, 0], [-1.5, 0, 0], [0, 0, 0], [0, 0, 0]]
    np.testing.assert_allclose(adv.numpy(), expected, atol=1e-4)
    # a row's advantages sum to GRPO's, which puts (r − mean) / std on each of its 3 tokens
    grpo = advantages(np.array([1.0, 0, 0, 0, 2.0, 2.0]), mask, ["p"] * 4 + ["q"] * 2, AlgoConfig())
    np.testing.assert_allclose(adv[:4].sum(1).numpy(), grpo[:4].sum(1).numpy(), atol=1e-4)
    # the miss under the hit's first code is credited for that code (+1.5) and blamed for its second (−3);
    # GRPO blames both (−0.5 each)
    assert grpo[1, 0] < 0 < adv[1, 0]
    with pytest.raises(ValueError, match="needs the completions"):
        advantages(np.ones(6), mask, ["p"] * 4 + ["q"] * 2, AlgoConfig(adv_estimator="tree_grpo"))


def test_confident_groups_by_hand():
    # 4 groups of 3. g0: the most likely row (lp -0.1) has the best reward → confident.
    # g1: the best reward sits on the least likely row → uncertain at k=1, and at k=2 too.
    # g2: equal rewards → never gated (no advantage to remove). g3: best on the 2nd most likely row → k=2 only.
    r = np.array([1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 1, 0.5])
    lp = np.array([-0.1, -2, -3, -0.1, -2, -3, -0.1, -2, -3, -0.1, -2, -3])
    assert confident_groups(r, lp, 3, 1).tolist() == [True, False, False, False]
    assert confident_groups(r, lp, 3, 2).tolist() == [True, False, False, True]
    assert confident_groups(r, lp, 3, 0).tolist() == [False] * 4


def test_policy_objective_by_hand():
    old = torch.tensor([[-1.0, -2.0]])
    new = torch.tensor([[-0.5, -2.5]])
    ref = torch.tensor([[-1.0, -2.0]])
    adv = torch.tensor([[1.0, 1.0]])
    mask = torch.ones(1, 2)
    cfg = AlgoConfig(clip_ratio=0.2, kl_coef=0.1)
    loss, m = policy_objective(new, old, ref, adv, mask, cfg)
    r = [math.exp(0.5), math.exp(-0.5)]  # ratios 1.6487 (clipped to 1.2) and 0.6065
    pg = np.mean([max(-r[0], -1.2), max(-r[1], -0.8)])  # -1.2 and -0.6065
    kl = np.mean([math.exp(d) - d - 1 for d in (-0.5, 0.5)])  # low_var_kl with d = ref − new
    assert m["actor/pg_loss"] == pytest.approx(pg, rel=1e-5)
    assert m["actor/kl"] == pytest.approx(kl, rel=1e-4)
    assert float(loss) == pytest.approx(pg + 0.1 * kl, rel=1e-5)
    assert m["actor/pg_clipfrac"] == pytest.approx(0.5)


def test_exact_kl_by_hand():
    logits = torch.tensor([[[1.0, 2.0, 0.0, 5.0]]])
    ref_logits = torch.tensor([[[0.0, 0.0, 3.0, -1.0]]])
    allowed = torch.tensor([[[True, True, True, False]]])  # the 4th token is outside the trie: no weight in either
    t = torch.tensor([[1]])
    _, _, lp = constrained_logprobs(logits, t, allowed, full=True)
    _, _, ref = constrained_logprobs(ref_logits, t, allowed, full=True)
    z = math.exp(1) + math.exp(2) + 1
    zr = 2 + math.exp(3)
    p = [math.exp(1) / z, math.exp(2) / z, 1 / z]
    q = [1 / zr, 1 / zr, math.exp(3) / zr]
    want = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    assert float(exact_kl(lp, ref)) == pytest.approx(want, rel=1e-5)
    assert float(exact_kl(ref, ref)) == pytest.approx(0.0, abs=1e-7)
    forward = sum(qi * math.log(qi / pi) for pi, qi in zip(p, q))  # KL(π_ref ‖ π): weighted by the reference
    assert float(exact_kl(lp, ref, forward=True)) == pytest.approx(forward, rel=1e-5)
    # as the KL term of the objective: β × the mean over the response tokens, replacing the sampled estimate
    cfg = AlgoConfig(kl_estimator="full", kl_coef=0.5)
    tk = exact_kl(lp, ref)
    loss, m = policy_objective(lp.new_zeros(1, 1), lp.new_zeros(1, 1), lp.new_zeros(1, 1), torch.zeros(1, 1),
                               torch.ones(1, 1), cfg, token_kl=tk)
    assert m["actor/kl"] == pytest.approx(want, rel=1e-5) and float(loss) == pytest.approx(0.5 * want, rel=1e-5)
    with pytest.raises(ValueError, match="kl_estimator=full needs"):
        policy_objective(lp.new_zeros(1, 1), lp.new_zeros(1, 1), lp.new_zeros(1, 1), torch.zeros(1, 1),
                         torch.ones(1, 1), cfg)


def test_constrained_logprobs_by_hand():
    logits = torch.tensor([[[1.0, 2.0, 3.0, 0.0]]])
    allowed = torch.tensor([[[True, False, True, False]]])
    lp, ent = constrained_logprobs(logits, torch.tensor([[2]]), allowed, temperature=2.0)
    # softmax over {0.5, 1.5}: p(2) = e^1.5 / (e^0.5 + e^1.5)
    p2 = math.exp(1.5) / (math.exp(0.5) + math.exp(1.5))
    assert float(lp) == pytest.approx(math.log(p2), rel=1e-6)
    assert float(ent) == pytest.approx(-(p2 * math.log(p2) + (1 - p2) * math.log(1 - p2)), rel=1e-5)


def test_allowed_mask_follows_the_trie():
    from sid.tokens import SidTokenMap
    from sid.vocab import SidTrie

    class Map(SidTokenMap):  # tokens: <a_v> = 10 + v, <b_v> = 20 + v, eos = 1 (no tokenizer needed)
        def __init__(self):
            self.levels, self.eos = 2, 1
            self.ids = [np.array([10, 11]), np.array([20, 21, 22])]
            self.value_of = {10: (0, 0), 11: (0, 1), 20: (1, 0), 21: (1, 1), 22: (1, 2)}

    trie = SidTrie(np.array([[0, 0], [0, 2], [1, 1]]))
    m = allowed_mask([[11, 21, 1], [10, 22, 1]], trie, Map(), 30, 3)
    assert torch.nonzero(m[0, 0]).flatten().tolist() == [10, 11]
    assert torch.nonzero(m[0, 1]).flatten().tolist() == [21]  # under <a_1> only <b_1>
    assert torch.nonzero(m[1, 1]).flatten().tolist() == [20, 22]
    assert torch.nonzero(m[1, 2]).flatten().tolist() == [1]  # a full code: EOS only
