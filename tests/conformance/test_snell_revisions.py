"""Sequential revisions' answer selection against Snell et al. (2024), "Scaling LLM Test-Time Compute Optimally
can be More Effective than Scaling Model Parameters" (arXiv:2408.03314), section 6 (refining the proposal
distribution with revisions): with P parallel chains of revisions, the answer is selected hierarchically, first
within each revision chain, then across the chains, with the same verifier-based rule (best-of-N weighted), not
by one vote over every attempt. Reference code: Snell et al. released none, so the example is traced by hand
from that description, with the project's own rules (tts.strategies.voting.final_choice: `weighted` sums the
verifier scores of each answer and returns the best-scored attempt of the winning answer).
"""

from __future__ import annotations

import pytest

from tts.data.problem import Problem
from tts.strategies.base import SamplingSettings
from tts.strategies.sequential_revision import SequentialRevisionConfig, hierarchical_choice
from tts.strategies.sequential_revision import run as revise
from tts.strategies.voting import final_choice
from tts.testing.fake_engines import FakePolicy, FakePRM

# Chain 1: (5, .9), (7, .5), (7, .5); chain 2: (9, .7), (5, .6). (answer, verifier score) per attempt.
ANSWERS = ["5", "7", "7", "9", "5"]
SCORES = [0.9, 0.5, 0.5, 0.7, 0.6]
CHAINS = [0, 0, 0, 1, 1]


def test_the_revision_example_flat_gives_5_hierarchical_gives_9():
    """Flat (one weighted vote over all five attempts): 5 gets .9 + .6 = 1.5, 7 gets 1.0, 9 gets .7: 5.
    Hierarchical: chain 1 votes 7 (.5 + .5 = 1.0 against .9), represented by its attempt (7, .5); chain 2
    votes 9 (.7 against .6), attempt (9, .7); across the chains 9 (.7) beats 7 (.5): 9."""
    flat = final_choice(ANSWERS, SCORES, "weighted")
    assert ANSWERS[flat] == "5" and flat == 0
    chosen = hierarchical_choice(ANSWERS, SCORES, CHAINS, "weighted")
    assert ANSWERS[chosen] == "9" and chosen == 3


@pytest.mark.parametrize(
    ("rule", "hierarchical", "flat"),
    [
        ("argmax", "5", "5"),
        ("majority", "7", "5"),
    ],  # majority: 7 in chain 1, 9 in chain 2 (tie: first), then 7
)
def test_the_hierarchy_applies_the_same_rule_at_both_levels(rule, hierarchical, flat):
    assert ANSWERS[hierarchical_choice(ANSWERS, SCORES, CHAINS, rule)] == hierarchical
    assert ANSWERS[final_choice(ANSWERS, SCORES, rule)] == flat


def test_one_chain_is_the_flat_vote_and_one_attempt_per_chain_too():
    """P = 1: the across-chain step has one pick; L = 1: the within-chain steps are trivial. Both equal flat."""
    for rule in ("weighted", "argmax", "majority"):
        assert hierarchical_choice(ANSWERS, SCORES, [0] * 5, rule) == final_choice(ANSWERS, SCORES, rule)
        assert hierarchical_choice(ANSWERS, SCORES, list(range(5)), rule) == final_choice(
            ANSWERS, SCORES, rule
        )


def test_the_strategy_selects_hierarchically_by_default_and_flat_on_request():
    """A whole run (4 chains of 2 revisions, a noisy policy, hash scores): the strategy's answer is the
    hierarchical pick over its own candidates (listed chain by chain), and with selection_scope: flat the flat
    pick; on these problems the two differ at least once."""
    assert SequentialRevisionConfig().selection_scope == "hierarchical"
    problems = [Problem(id=f"p{i}", question=f"{i} + {i + 3} - 2", answer="", dataset="t") for i in range(12)]
    sampling = SamplingSettings(temperature=0.8, max_tokens=64, aggregation="last")
    results = {}
    for scope in ("hierarchical", "flat"):
        results[scope] = revise(
            problems,
            FakePolicy(4, error_rate=0.5),
            FakePRM(4, mode="hash"),
            n=8,
            sampling=sampling,
            seed=0,
            parallel=4,
            selection_scope=scope,
        )
    differ = 0
    for h, f in zip(results["hierarchical"], results["flat"], strict=True):
        answers = [c.answer for c in h.candidates]
        scores = [c.score for c in h.candidates]
        chains = [k for k, _ in h.extra["chains"]]
        assert chains == [0, 0, 1, 1, 2, 2, 3, 3] and h.extra["selection_scope"] == "hierarchical"
        assert h.extra["chosen"] == hierarchical_choice(answers, scores, chains, "weighted")
        assert [c.text for c in f.candidates] == [c.text for c in h.candidates]  # the same attempts
        assert f.extra["chosen"] == final_choice(answers, scores, "weighted")
        assert h.answer == answers[h.extra["chosen"]] and f.answer == answers[f.extra["chosen"]]
        differ += h.answer != f.answer
    assert differ >= 1
