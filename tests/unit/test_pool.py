"""The sample pool: one generate and one PRM call, selection rules, nested budgets, accounting, and the
estimators agreeing with `select` over every ordering of a small pool."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from tts.data.problem import Problem
from tts.grading import extract_answer
from tts.strategies.base import Candidate, SamplingSettings
from tts.strategies.pool import ProblemPool, build_pool
from tts.testing.fake_engines import FakePolicy, FakePRM
from tts.testing.pools import expected_correct, run_pool_strategy, select

SAMPLING = SamplingSettings(temperature=0.8, max_tokens=64, aggregation="min")
PROBLEMS = [
    Problem(id="a", question="3 + 4 - 2", answer="5", dataset="t"),
    Problem(id="b", question="5 * 2 + 1", answer="11", dataset="t"),
    Problem(id="c", question="1 + 2 + 3 + 4", answer="10", dataset="t"),
]


def cand(answer, steps=(0.5,), tokens=10, finish="eos", text=None):
    return Candidate(
        text=text or f"work\n\nThe answer is \\boxed{{{answer}}}.",
        steps=("work", "answer"),
        step_scores=tuple(steps),
        score=steps[-1],
        answer=answer,
        finish_reason=finish,
        tokens_out=tokens,
    )


def pool_of(*cands, **kw):
    return ProblemPool(
        problem_id="p", candidates=tuple(cands), prompt_tokens=kw.pop("prompt_tokens", 7), **kw
    )


def test_build_pool_makes_one_generate_and_one_score_call():
    policy, prm = FakePolicy(seed=3), FakePRM()
    pools = build_pool(PROBLEMS, policy, prm, n_max=8, sampling=SAMPLING, seed=0)
    assert (policy.calls, policy.requests, prm.calls) == (1, 3, 1)
    assert [p.problem_id for p in pools] == ["a", "b", "c"]
    assert all(p.n_max == 8 for p in pools)
    c = pools[2].candidates[0]
    assert len(c.steps) == 4 and len(c.step_scores) == 4  # three claims and the answer, each scored
    assert c.answer is not None and c.finish_reason == "eos"
    assert sum(p.prompt_tokens for p in pools) == policy.prompt_tokens
    assert sum(sum(p.prm_tokens) for p in pools) == prm.tokens
    assert sum(x.tokens_out for p in pools for x in p.candidates) == policy.tokens_out


def test_build_pool_flags_fallback_answers_and_truncation():
    policy = FakePolicy(seed=0, unboxed_rate=1.0)
    [pool] = build_pool(PROBLEMS[:1], policy, FakePRM(), n_max=2, sampling=SAMPLING, seed=0)
    # unboxed final steps read "The answer is N.": an explicit marker (results schema 5), not the fallback
    assert pool.fallback == (False, False) and all(c.answer is not None for c in pool.candidates)
    cut = [replace(c, text=c.text.replace("The answer is", "so")) for c in pool.candidates]
    assert all(extract_answer(c.text).fallback for c in cut)
    short = replace(SAMPLING, max_tokens=5)
    [pool] = build_pool(PROBLEMS[:1], FakePolicy(), FakePRM(), n_max=2, sampling=short, seed=0)
    assert all(c.finish_reason == "length" and c.tokens_out == 5 for c in pool.candidates)
    assert select(pool, "best_of_n", 2, "min").truncated


def test_best_of_n_picks_the_top_score_under_the_requested_aggregation():
    pool = pool_of(cand("1", (0.9, 0.2)), cand("2", (0.5, 0.6)), cand("3", (0.1, 0.95)))
    assert select(pool, "best_of_n", 3, "min").answer == "2"
    assert select(pool, "best_of_n", 3, "last").answer == "3"
    assert select(pool, "best_of_n", 3, "mean").answer == "1"
    assert select(pool, "best_of_n", 2, "last").answer == "2"  # the third sample is outside n=2
    tie = pool_of(cand("7", (0.5,)), cand("8", (0.5,)))
    assert select(tie, "best_of_n", 2, "last").answer == "7"


def test_majority_vote_groups_equivalent_answers_and_breaks_ties_by_first_seen():
    pool = pool_of(cand("3"), cand("\\frac{1}{2}"), cand("0.5"), cand("3"), cand("0.50"))
    result = select(pool, "majority_vote", 5, "last")
    assert result.answer == "\\frac{1}{2}" and result.extra["votes"] == 3
    assert result.extra["distinct_answers"] == 2
    assert select(pool, "majority_vote", 4, "last").answer == "3"  # 2-2 tie: "3" was seen first
    none = pool_of(cand(None), cand(None))
    assert select(none, "majority_vote", 2, "last").answer is None


def test_weighted_best_of_n_sums_scores_per_answer():
    pool = pool_of(cand("4", (0.3,)), cand("9", (0.8,)), cand("4", (0.35,)), cand("4", (0.3,)))
    result = select(pool, "weighted_best_of_n", 4, "last")
    assert result.answer == "4" and result.extra["chosen"] == 2  # 0.95 beats 0.8; its best member's text
    assert select(pool, "weighted_best_of_n", 3, "last").answer == "9"  # first three: 0.65 < 0.8
    assert select(pool, "best_of_n", 4, "last").answer == "9"


def test_budgets_nest_and_accounting_scales_with_n():
    policy, prm = FakePolicy(seed=5, error_rate=0.5), FakePRM()
    [pool] = build_pool(PROBLEMS[2:], policy, prm, n_max=8, sampling=SAMPLING, seed=0)
    changed = replace(pool, candidates=pool.candidates[:4] + tuple(cand("999", (1.0,)) for _ in range(4)))
    for strategy in ("majority_vote", "best_of_n", "weighted_best_of_n"):
        for n in range(1, 5):
            a, b = select(pool, strategy, n, "min"), select(changed, strategy, n, "min")
            assert (a.answer, a.text, a.tokens_out) == (b.answer, b.text, b.tokens_out)
            assert a.generations == n and a.tokens_in == pool.prompt_tokens
            assert a.tokens_out == sum(c.tokens_out for c in pool.candidates[:n])
            assert len(a.candidates) == n
            want_prm = 0 if strategy == "majority_vote" else sum(pool.prm_tokens[:n])
            assert a.prm_tokens == want_prm


def test_select_rejects_bad_arguments():
    pool = pool_of(cand("1"))
    with pytest.raises(ValueError, match=r"n: invalid value 2; must be in \[1, 1\]"):
        select(pool, "best_of_n", 2, "last")
    with pytest.raises(ValueError, match="strategy: invalid value 'beam_search'"):
        select(pool, "beam_search", 1, "last")
    with pytest.raises(ValueError, match="aggregation"):
        select(pool, "best_of_n", 1, "median")
    with pytest.raises(ValueError, match="prm_tokens has 2 values for 1 samples"):
        pool_of(cand("1"), prm_tokens=(1, 2))
    with pytest.raises(TypeError, match="unexpected options"):
        run_pool_strategy(
            "best_of_n",
            PROBLEMS,
            FakePolicy(),
            FakePRM(),
            n=2,
            sampling=SAMPLING,
            seed=0,
            params={"beam_width": 2},
        )


@pytest.mark.parametrize("strategy", ["best_of_n", "majority_vote", "weighted_best_of_n"])
def test_expected_correct_equals_select_averaged_over_every_ordering(strategy):
    """The estimator is the mean of `select` over every ordered k-subset of the pool."""
    answers = ["4", "4", "5", None, "4.0", "6"]
    scores = [0.25, 0.5, 0.75, 1.0, 0.5, 0.75]
    correct = [a in ("4", "4.0") for a in answers]
    pool = pool_of(*(cand(a, (s,)) for a, s in zip(answers, scores, strict=True)))
    for k in range(1, len(answers) + 1):
        values = []
        for order in itertools.permutations(range(len(answers)), k):
            sub = pool_of(*(pool.candidates[i] for i in order))
            chosen = select(sub, strategy, k, "last").extra["chosen"]
            values.append(correct[order[chosen]])
        est = expected_correct(pool, strategy, k, "last", correct)
        assert est.method == "exact"
        assert est.value == pytest.approx(sum(values) / len(values), abs=1e-9)


def test_greedy_pool_is_sampled_scored_and_charged_once():
    greedy = replace(SAMPLING, temperature=0.0)
    policy, prm = FakePolicy(), FakePRM()
    pools = build_pool(PROBLEMS, policy, prm, n_max=8, sampling=greedy, seed=0)
    assert policy.completions == len(PROBLEMS)  # one sample per problem, not 8
    assert prm.requests == len(PROBLEMS)  # scored once
    for pool in pools:
        assert pool.greedy and pool.n_max == 8 and len({c.text for c in pool.candidates}) == 1
        for n in (1, 4, 8):
            r = select(pool, "best_of_n", n, "min")
            assert r.generations == 1 and r.tokens_out == pool.candidates[0].tokens_out
            assert r.prm_tokens == pool.prm_tokens[0]
