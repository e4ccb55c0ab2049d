"""The pool estimators against brute force over every ordered k-subset of small pools, and Monte Carlo.

The reference rules below are written out independently of the library: a random k-subset in random order is
voted on exactly as `select` would vote on a pool in that order (first of ties wins), so the estimators'
"ties broken uniformly" claim is checked too.
"""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

from tts.strategies.estimators import (
    expected_best_of_k,
    expected_majority_at_k,
    expected_weighted_best_of_k,
    majority_at_k_resampled,
    pass_at_k,
    weighted_best_of_k_resampled,
)


# ------------------------------------------------------------------ reference rules on one ordered subset
def ref_best(order, scores, correct):
    best = max(range(len(order)), key=lambda p: (scores[order[p]], -p))
    return float(correct[order[best]])


def ref_majority(order, groups, correct):
    votes, first = {}, {}
    for pos, i in enumerate(order):
        if groups[i] is not None:
            votes[groups[i]] = votes.get(groups[i], 0) + 1
            first.setdefault(groups[i], pos)
    if not votes:
        return 0.0
    winner = min(votes, key=lambda g: (-votes[g], first[g]))
    return float(correct[order[first[winner]]])


def ref_weighted(order, groups, scores, correct):
    totals, first, best = {}, {}, {}
    for pos, i in enumerate(order):
        g = groups[i]
        if g is None:
            continue
        totals[g] = totals.get(g, 0.0) + scores[i]
        first.setdefault(g, pos)
        if g not in best or scores[i] > scores[best[g]]:
            best[g] = i
    if not totals:
        return 0.0
    winner = min(totals, key=lambda g: (-totals[g], first[g]))
    return float(correct[best[winner]])


def brute(n, k, rule):
    values = [rule(order) for order in itertools.permutations(range(n), k)]
    return sum(values) / len(values)


def random_pool(rng, n):
    groups = [rng.choice([None, 0, 1, 1, 2, 3]) for _ in range(n)]
    scores = [rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]) for _ in range(n)]  # dyadic: float sums tie exactly
    correct = [g == 1 for g in groups] if rng.random() < 0.7 else [rng.random() < 0.5 for _ in range(n)]
    return groups, scores, correct


# ------------------------------------------------------------------------------------------ pass@k
@pytest.mark.parametrize("n", [1, 3, 6])
def test_pass_at_k_matches_enumeration_of_subsets(n):
    for c in range(n + 1):
        correct = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(range(n), k))
            expected = sum(any(correct[i] for i in s) for s in subsets) / len(subsets)
            assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_large_pool_and_edges():
    assert pass_at_k(1000, 0, 500) == 0.0
    assert pass_at_k(1000, 1000, 1) == 1.0
    assert pass_at_k(1000, 10, 1) == pytest.approx(0.01)
    assert pass_at_k(200, 1, 100) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="k: invalid value 0"):
        pass_at_k(5, 1, 0)
    with pytest.raises(ValueError, match="c=6"):
        pass_at_k(5, 6, 1)


# -------------------------------------------------------------------------------------- best-of-k
def test_expected_best_of_k_matches_brute_force_with_ties():
    rng = random.Random(0)
    for _ in range(60):
        n = rng.randint(1, 6)
        _, scores, correct = random_pool(rng, n)
        for k in range(1, n + 1):
            want = brute(n, k, lambda o, s=scores, c=correct: ref_best(o, s, c))
            assert expected_best_of_k(scores, correct, k) == pytest.approx(want, abs=1e-12)


def test_expected_best_of_k_monte_carlo_on_a_larger_pool():
    rng = np.random.default_rng(1)
    n, k = 40, 7
    scores = rng.random(n).round(2)  # some ties
    correct = rng.random(n) < scores  # correlated with the score, as a useful verifier is
    draws = np.array([rng.choice(n, size=k, replace=False) for _ in range(20000)])
    picked = [d[np.flatnonzero(scores[d] == scores[d].max())] for d in draws]
    mc = np.mean([correct[p].mean() for p in picked])
    exact = expected_best_of_k(scores.tolist(), correct.tolist(), k)
    assert exact == pytest.approx(mc, abs=0.015)
    assert exact > correct.mean()  # the verifier helps: best-of-7 beats a random sample


def test_expected_best_of_k_endpoints_and_errors():
    scores, correct = [0.1, 0.9, 0.5], [False, True, False]
    assert expected_best_of_k(scores, correct, 3) == 1.0
    assert expected_best_of_k(scores, correct, 1) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="different lengths"):
        expected_best_of_k(scores, [True], 1)
    with pytest.raises(ValueError, match="NaN"):
        expected_best_of_k([float("nan"), 0.1, 0.2], correct, 1)
    with pytest.raises(ValueError, match=r"k: invalid value 4; must be an integer in \[1, n=3\]"):
        expected_best_of_k(scores, correct, 4)


# ------------------------------------------------------------------------------------- majority@k
def test_expected_majority_at_k_matches_brute_force():
    rng = random.Random(2)
    for _ in range(80):
        n = rng.randint(1, 6)
        groups, _, correct = random_pool(rng, n)
        for k in range(1, n + 1):
            want = brute(n, k, lambda o, g=groups, c=correct: ref_majority(o, g, c))
            assert expected_majority_at_k(groups, correct, k) == pytest.approx(want, abs=1e-9)


def test_majority_resampled_interval_covers_exact():
    rng = random.Random(3)
    groups = [rng.choice([None, 0, 1, 1, 2, 3, 4, 5]) for _ in range(48)]
    correct = [g == 1 for g in groups]
    for k in (1, 4, 16, 47):
        exact = expected_majority_at_k(groups, correct, k)
        est = majority_at_k_resampled(groups, correct, k, samples=3000, seed=k)
        assert est.method == "resampled" and est.samples == 3000
        assert est.low - 1e-9 <= exact <= est.high + 1e-9
        assert est.high - est.low < 0.08
    again = majority_at_k_resampled(groups, correct, 4, samples=3000, seed=4)
    assert again == majority_at_k_resampled(groups, correct, 4, samples=3000, seed=4)  # seeded


def test_majority_at_k_is_fast_and_exact_on_a_wide_pool():
    groups = list(range(256))  # 256 distinct answers: every vote is a 256-way tie broken uniformly
    correct = [i % 8 == 0 for i in range(256)]
    assert expected_majority_at_k(groups, correct, 128) == pytest.approx(32 / 256, abs=1e-9)
    assert expected_majority_at_k([None] * 5, [False] * 5, 3) == 0.0  # nobody answered


# --------------------------------------------------------------------------------- weighted best-of-k
def test_expected_weighted_best_of_k_matches_brute_force():
    rng = random.Random(4)
    for _ in range(50):
        n = rng.randint(1, 6)
        groups, scores, correct = random_pool(rng, n)
        for k in range(1, n + 1):
            want = brute(n, k, lambda o, g=groups, s=scores, c=correct: ref_weighted(o, g, s, c))
            est = expected_weighted_best_of_k(groups, scores, correct, k)
            assert est.method == "exact"
            assert est.value == pytest.approx(want, abs=1e-9)


def test_weighted_resampled_interval_covers_exact_and_large_pools_fall_back():
    rng = random.Random(5)
    groups = [rng.choice([None, 0, 1, 1, 2]) for _ in range(14)]
    scores = [rng.random() for _ in range(14)]
    correct = [g == 1 for g in groups]
    exact = expected_weighted_best_of_k(groups, scores, correct, 5)
    assert exact.method == "exact" and math.comb(14, 5) <= 20_000
    est = weighted_best_of_k_resampled(groups, scores, correct, 5, samples=3000, seed=0)
    assert est.low <= exact.value <= est.high
    big = expected_weighted_best_of_k(groups * 4, scores * 4, correct * 4, 20, samples=200)
    assert big.method == "resampled" and 0.0 <= big.low <= big.value <= big.high <= 1.0
