"""REBASE against its reference, thu-wyz/inference_scaling (Wu et al. 2024, "Inference Scaling Laws"), rebase.py:
`Tree.select_softmax` (the width allocation), `Tree.select_and_expand` (completed leaves leave the budget),
`Tree.insert` / `TreeNode` (a node's reward is `state.scores()[-1]`, its newest step's PRM score) and
`reward_guided_search` (`if depth >= 25: break`, no forced completion at the limit), with
hype-parameters/rebase.yaml (softmax_temperature 0.2, width 16).

The reference's allocation, read from `select_softmax`: sort the nodes by weight (Python's stable `sorted`, then
`.reverse()`: descending, the later of equal weights first); e_j = exp(w_j / T), S = sum e; for each node in
that order: num = ceil(width * e_j / S); width -= num; S -= e_j. The worked examples below are traced by hand
from those lines.
"""

from __future__ import annotations

import math

from tts.data.problem import Problem
from tts.strategies.base import SamplingSettings
from tts.strategies.rebase import MAX_DEPTH, RebaseConfig, _Balance, allocate_widths, reference_widths
from tts.strategies.rebase import run as rebase
from tts.strategies.tree import Beam, Group
from tts.testing.fake_engines import FakePolicy, PlantedPRM

SAMPLING = SamplingSettings(temperature=0.8, max_tokens=64, step_max_tokens=16, aggregation="min")
THREE_STEPS = Problem(
    id="two-op", question="5 * 2 + 1", answer="11", dataset="t"
)  # 2 claims, then the answer


def test_case_1_four_nodes_budget_8():
    """rewards [.9, .8, .7, .6], B = 8, T = 0.2. e = exp(4.5), exp(4), exp(3.5), exp(3) = 90.017, 54.598,
    33.115, 20.086; S = 197.816 (already in descending order).
      node 0: ceil(8 x 90.017 / 197.816 = 3.640) = 4; width 4, S = 107.799
      node 1: ceil(4 x 54.598 / 107.799 = 2.026) = 3; width 1, S = 53.201
      node 2: ceil(1 x 33.115 / 53.201 = 0.622) = 1; width 0, S = 20.086
      node 3: ceil(0) = 0
    -> [4, 3, 1, 0]. This module's rule before (largest remainder of the quotas 3.640, 2.208, 1.339, 0.812:
    floors 3, 2, 1, 0, the two missing units to .812 and .640) gave [4, 2, 1, 1]."""
    assert reference_widths([0.9, 0.8, 0.7, 0.6], 8, 0.2) == [4, 3, 1, 0]
    assert allocate_widths([0.9, 0.8, 0.7, 0.6], 8, 0.2) == [4, 2, 1, 1]


def test_case_2_unsorted_nodes_budget_6():
    """rewards [.4, .8, .75] (not in order), B = 6, T = 0.2. Sorted descending: node 1 (.8), node 2 (.75),
    node 0 (.4); e = exp(4), exp(3.75), exp(2) = 54.598, 42.521, 7.389; S = 104.508.
      node 1: ceil(6 x 54.598 / 104.508 = 3.135) = 4; width 2, S = 49.910
      node 2: ceil(2 x 42.521 / 49.910 = 1.704) = 2; width 0, S = 7.389
      node 0: ceil(0) = 0
    -> [0, 4, 2] in the input order. Largest remainder (quotas 0.424, 3.135, 2.441) gave [0, 3, 3]."""
    assert reference_widths([0.4, 0.8, 0.75], 6, 0.2) == [0, 4, 2]
    assert allocate_widths([0.4, 0.8, 0.75], 6, 0.2) == [0, 3, 3]


def test_equal_rewards_go_later_node_first_and_exact_arithmetic_sums_to_the_budget():
    """Ties: `sorted` keeps equal weights in input order and `.reverse()` flips them, so the LAST of equal nodes
    is served first. [.5, .5, .5], B = 4 in exact arithmetic: node 2 ceil(4/3) = 2, node 1 ceil(2/2) = 1,
    node 0 ceil(1/1) = 1 -> [1, 1, 2]. The reference itself computes in torch float32, where after
    S -= e_j the last ratio can come out a hair above 1 (four equal rewards, B = 8: 2, 2, 3, 2 = 9 children
    for a budget of 8): a deliberate difference, widths here always sum to B."""
    assert reference_widths([0.5, 0.5, 0.5], 4, 0.2) == [1, 1, 2]
    assert reference_widths([0.5] * 4, 8, 0.2) == [2, 2, 2, 2]
    for rewards, budget, t in [
        ([0.99, 0.01], 5, 0.05),
        ([0.3] * 7, 11, 1.0),
        ([0.2, 0.9, 0.9, 0.1], 13, 0.5),
    ]:
        widths = reference_widths(rewards, budget, t)
        assert sum(widths) == budget and min(widths) >= 0
    assert reference_widths([0.7, 0.2], 0, 0.2) == [0, 0] and reference_widths([], 3, 0.2) == []


def test_a_node_reward_is_its_newest_step_score():
    """`Tree.insert`: `score = state.scores()[-1]`. Node a's steps score [.2, .9], node b's [.8, .5]: by the
    newest step a leads (.9 > .5) and gets ceil(4 x e^4.5 / (e^4.5 + e^2.5)) = ceil(3.52) = 4 of B = 4; by
    min-aggregation (this module's reward before, `reward: aggregate`) b would (.5 > .2)."""
    a = Beam(0, "a", step_scores=(0.2, 0.9), rank=0.2)  # rank: aggregate "min" of the step scores
    b = Beam(0, "b", step_scores=(0.8, 0.5), rank=0.5)
    for reward, widths in (("last", [4, 0]), ("aggregate", [0, 4])):
        rule = _Balance(4, 0.2, "reference", reward)
        group = Group(problem=0, width=4, keep=4, cap=4, active=[Beam(problem=0)])
        rule(group, [a, b])
        assert rule.widths[0] == [widths] and group.widths == [4]


def test_completed_leaves_leave_the_budget():
    """`select_and_expand`: each leaf at the new depth does `remaining_width -= 1`, the rest is shared: 16
    children, 3 of them leaves, leave 13 to allocate over the other 13 by their rewards."""
    rule = _Balance(16, 0.2)
    group = Group(problem=0, width=16, keep=16, cap=16, active=[Beam(problem=0)])
    children = [
        Beam(0, f"c{i}", finish_reason="eos" if i < 3 else None, step_scores=(0.1 + 0.05 * i,))
        for i in range(16)
    ]
    rule(group, children)
    assert len(group.finished) == 3 and sum(group.widths) == 13
    assert rule.widths[0][0] == reference_widths([0.1 + 0.05 * i for i in range(3, 16)], 13, 0.2)


def test_the_depth_limit_is_25_and_its_step_completes_nothing():
    """`reward_guided_search` breaks after depth 25; the nodes then unfinished are not leaves, and nothing is
    sampled to the end at the limit (the step is the usual one, stopped at the delimiter). With the limit at 1
    on a three-step problem: one step, every request stopped at "\\n\\n", nothing completed."""
    assert RebaseConfig().max_steps == MAX_DEPTH == 25
    policy = FakePolicy(error_rate=0.0, record=True)
    [result] = rebase([THREE_STEPS], policy, PlantedPRM([0.9]), n=4, sampling=SAMPLING, seed=0, max_steps=1)
    assert len(policy.history) == 1 and all(r.stop == ("\n\n",) for r in policy.history[0])
    assert result.extra["finished"] == 0 and result.extra["steps"] == 1
    assert all(c.finish_reason == "length" and len(c.steps) == 1 for c in result.candidates)
    policy = FakePolicy(error_rate=0.0, record=True)  # complete_at_limit: the rule before, step 1 to EOS
    [result] = rebase(
        [THREE_STEPS],
        policy,
        PlantedPRM([0.9]),
        n=4,
        sampling=SAMPLING,
        seed=0,
        max_steps=1,
        complete_at_limit=True,
    )
    assert all(r.stop == () for r in policy.history[0]) and result.extra["finished"] == 4


def test_a_whole_search_spends_the_budget_as_the_reference_allocates():
    """A whole REBASE run (N = 4, planted scores .9, .2, .6, .1 for the first-step nodes): the first allocation
    is the reference's [4, 0, 0, 0] (e^4.5 / (e^4.5 + e^3 + e^1 + e^0.5) x 4 = 3.15 -> 4, the rest nothing),
    every later one gives the whole budget to what is left, and the 4 completed solutions spend it."""
    policy = FakePolicy(error_rate=0.0, record=True)
    [result] = rebase([THREE_STEPS], policy, PlantedPRM([0.9, 0.2, 0.6, 0.1]), n=4, sampling=SAMPLING, seed=0)
    assert result.extra["widths"][0] == [4, 0, 0, 0]
    assert result.extra["finished"] == 4 and result.extra["widths"][-1] == []
    assert math.isclose(sum(r.n for r in policy.history[1]), 4)
