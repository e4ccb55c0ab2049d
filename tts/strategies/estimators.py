"""Estimators of accuracy at budget k from ONE pool of n >= k samples per problem.

Why: a sweep samples N_max completions per (policy, problem, seed) once and reports every N <= N_max. Taking the
first k samples gives one draw; these estimators give the expectation over all k-subsets of the pool, which
has far lower variance for the same compute. "A random k-subset" below is uniform over the C(n, k) subsets,
taken in uniformly random order, and voted on exactly as `tts.strategies.pool.select` votes (it breaks ties by
sample order): a tie between equal best scores, or between answer classes with equal votes, is then a uniform
choice; a tie between classes of equal total weight goes to each with probability proportional to its members.

pass_at_k(n, c, k)                       Chen et al. 2021 ("Evaluating LLMs trained on code", eq. 1), unbiased:
    pass@k = 1 - C(n - c, k) / C(n, k)     n samples, c correct: P(a random k-subset holds a correct one).

expected_best_of_k(scores, correct, k)   exact; the order statistic of a random k-subset (best-of-N with a
    verifier, Cobbe et al. 2021; Snell et al. 2024). Sort the n scores ascending; the item with i items below it
    is the subset's maximum with probability C(i, k - 1) / C(n, k). A tie group of g items with L items below is
    the maximum with probability [C(L + g, k) - C(L, k)] / C(n, k) (the sum of its members' probabilities),
    shared evenly among its members (ties averaged):
        E = sum over tie groups G of  [C(L_G + g_G, k) - C(L_G, k)] / C(n, k) * (correct in G) / g_G

expected_majority_at_k(groups, correct, k)   exact; majority vote / self-consistency (Wang et al. 2023).
    The class counts of a random k-subset are multivariate hypergeometric. P(class a wins) =
    sum over m of P(X_a = m, every other class <= m) weighting a t-way tie at m by 1 / (1 + t); samples without an
    answer never vote (an all-abstain subset is wrong). It is computed by conditioning independent
    Binomial(s_h, k/n) counts on their total being k (the multivariate hypergeometric is exactly that), with a
    dynamic programme over (items drawn, classes tied at m); classes of equal size share one win probability.
        E = sum over classes a of  c_a * P(a wins),   c_a = fraction of class a's samples graded correct.

majority_at_k_resampled / weighted_best_of_k_resampled   seeded resampling (Snell et al. 2024 and
    search-and-learn subsample the pool the same way): B random k-subsets; each contributes the conditional
    expectation of correctness given its ties; the 95% interval is mean +/- z * sd / sqrt(B) (normal
    approximation), clipped to [0, 1].

expected_weighted_best_of_k(groups, scores, correct, k)   weighted best-of-N (Li et al. 2023, "DiVeRSe";
    Snell et al. 2024): the class with the largest sum of verifier scores wins and its best-scored member is
    graded. Exact by enumerating the C(n, k) subsets when there are at most `max_subsets`, otherwise resampled.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from statistics import NormalDist

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """An expected accuracy with its interval. method: "exact" (low == high == value) or "resampled".

    generations / tokens_out: the expected samples drawn and tokens generated over the same random draws, for a
    strategy whose spend depends on the draw (adaptive stopping); None when the spend at budget k is what
    `select` charges (the runtime then writes select's figures)."""

    value: float
    low: float
    high: float
    method: str
    samples: int = 0
    generations: float | None = None
    tokens_out: float | None = None


def _check_k(n: int, k: int) -> None:
    if not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"k: invalid value {k!r}; must be an integer in [1, n={n}] (the pool size)")


def _check_lengths(**seqs: Sequence[object]) -> int:
    lengths = {name: len(s) for name, s in seqs.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"pool: sequences of different lengths {lengths}; give one value per sample")
    return next(iter(lengths.values()))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al.'s unbiased pass@k: 1 - C(n - c, k) / C(n, k)."""
    if n < 1 or not 0 <= c <= n:
        raise ValueError(f"pass_at_k: invalid n={n!r}, c={c!r}; need n >= 1 and 0 <= c <= n")
    _check_k(n, k)
    if n - c < k:
        return 1.0
    return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


def expected_best_of_k(scores: Sequence[float], correct: Sequence[bool], k: int) -> float:
    """Exact expected correctness of the top-scored sample of a random k-subset (ties averaged)."""
    n = _check_lengths(scores=scores, correct=correct)
    _check_k(n, k)
    if any(math.isnan(s) for s in scores):
        raise ValueError("scores: contains NaN; every sample needs a finite verifier score")
    order = sorted(range(n), key=lambda i: scores[i])
    total = Fraction(0)
    below = 0
    for _, members in itertools.groupby(order, key=lambda i: scores[i]):
        group = list(members)
        g = len(group)
        p_max = Fraction(math.comb(below + g, k) - math.comb(below, k), math.comb(n, k))
        total += p_max * Fraction(sum(bool(correct[i]) for i in group), g)
        below += g
    return float(total)


def _binom_pmf(size: int, p: float, upto: int) -> np.ndarray:
    """P(Binomial(size, p) = j) for j = 0..min(size, upto)."""
    j = np.arange(min(size, upto) + 1)
    lg = np.vectorize(math.lgamma)
    log_c = math.lgamma(size + 1) - lg(j + 1) - lg(size - j + 1)
    return np.exp(log_c + j * math.log(p) + (size - j) * math.log1p(-p))


def expected_majority_at_k(groups: Sequence[int | None], correct: Sequence[bool], k: int) -> float:
    """Exact expected majority@k over random k-subsets. groups: an answer-class label per sample (None = no
    answer), e.g. from `tts.strategies.voting.answer_groups`."""
    n = _check_lengths(groups=groups, correct=correct)
    _check_k(n, k)
    if k == n:
        return _majority_value(range(n), groups, correct)
    sizes = Counter(g for g in groups if g is not None)
    correct_in = Counter(g for g, ok in zip(groups, correct, strict=True) if g is not None and ok)
    abstain = n - sum(sizes.values())
    size_count = Counter(sizes.values())  # class size -> number of classes of that size
    p = k / n
    norm = float(_binom_pmf(n, p, k)[k])
    total = 0.0
    for s in size_count:
        others = size_count.copy()
        others[s] -= 1
        p_win = 0.0
        for m in range(1, min(s, k) + 1):
            p_win += float(_binom_pmf(s, p, m)[m]) * _others_at_most(others, abstain, m, k - m, p)
        class_correct = sum(correct_in[g] / s for g, size in sizes.items() if size == s)
        total += class_correct * p_win
    return min(max(total / norm, 0.0), 1.0)


def _others_at_most(others: Counter[int], abstain: int, m: int, rest: int, p: float) -> float:
    """Sum over draws of `rest` items from the other classes (each <= m) and the abstainers of the binomial
    weights, each tie at m with t classes weighted 1 / (1 + t)."""
    free = abstain + sum(size * c for size, c in others.items() if size < m)
    big = [size for size, c in sorted(others.items()) if size >= m for _ in range(c)]
    dp = np.zeros((rest + 1, len(big) + 1))
    pmf = _binom_pmf(free, p, rest)
    dp[: len(pmf), 0] = pmf
    for size in big:
        w = _binom_pmf(size, p, m)
        new = np.zeros_like(dp)
        for j in range(min(m, rest + 1)):
            new[j:, :] += w[j] * dp[: rest + 1 - j, :]
        if m <= rest:
            new[m:, 1:] += w[m] * dp[: rest + 1 - m, :-1]
        dp = new
    ties = np.arange(len(big) + 1)
    return float(np.sum(dp[rest, :] / (1 + ties)))


def _majority_value(
    subset: Sequence[int] | range, groups: Sequence[int | None], correct: Sequence[bool]
) -> float:
    """Expected correctness of a majority vote on `subset`, ties between classes broken uniformly."""
    votes: Counter[int] = Counter()
    right: Counter[int] = Counter()
    for i in subset:
        if groups[i] is not None:
            votes[groups[i]] += 1
            right[groups[i]] += bool(correct[i])
    if not votes:
        return 0.0
    top = max(votes.values())
    tied = [g for g, v in votes.items() if v == top]
    return sum(right[g] / votes[g] for g in tied) / len(tied)


def _weighted_value(
    subset: Sequence[int], groups: Sequence[int | None], scores: Sequence[float], correct: Sequence[bool]
) -> float:
    """Expected correctness of a weighted vote on `subset` in random order: the winning class's best-scored
    member is graded. A tie between classes goes to the class whose first member comes first, i.e. to each tied
    class with probability proportional to its members in the subset; a tie between members is uniform."""
    totals: dict[int, float] = {}
    members: dict[int, list[int]] = {}
    for i in sorted(subset):  # the order select() sums in, so float totals tie exactly as there
        if groups[i] is not None:
            totals[groups[i]] = totals.get(groups[i], 0.0) + scores[i]
            members.setdefault(groups[i], []).append(i)
    if not totals:
        return 0.0
    top = max(totals.values())
    tied = [g for g, t in totals.items() if t == top]
    value = 0.0
    for g in tied:
        best = max(scores[i] for i in members[g])
        picks = [i for i in members[g] if scores[i] == best]
        value += len(members[g]) * sum(bool(correct[i]) for i in picks) / len(picks)
    return value / sum(len(members[g]) for g in tied)


def _resample(
    value: Callable[[list[int]], float], n: int, k: int, samples: int, seed: int, confidence: float
) -> Estimate:
    if samples < 2:
        raise ValueError(f"samples: invalid value {samples!r}; need at least 2 resamples for an interval")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: invalid value {confidence!r}; must be in (0, 1), e.g. 0.95")
    rng = random.Random(seed)
    values = np.array([value(rng.sample(range(n), k)) for _ in range(samples)])
    mean = float(values.mean())
    half = NormalDist().inv_cdf((1 + confidence) / 2) * float(values.std(ddof=1)) / math.sqrt(samples)
    return Estimate(mean, max(mean - half, 0.0), min(mean + half, 1.0), "resampled", samples)


def majority_at_k_resampled(
    groups: Sequence[int | None],
    correct: Sequence[bool],
    k: int,
    *,
    samples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Estimate:
    """majority@k by seeded resampling of k-subsets, with a normal-approximation confidence interval."""
    n = _check_lengths(groups=groups, correct=correct)
    _check_k(n, k)
    return _resample(lambda idx: _majority_value(idx, groups, correct), n, k, samples, seed, confidence)


def weighted_best_of_k_resampled(
    groups: Sequence[int | None],
    scores: Sequence[float],
    correct: Sequence[bool],
    k: int,
    *,
    samples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Estimate:
    """Weighted best-of-k by seeded resampling of k-subsets, with a normal-approximation confidence interval."""
    n = _check_lengths(groups=groups, scores=scores, correct=correct)
    _check_k(n, k)
    return _resample(
        lambda idx: _weighted_value(idx, groups, scores, correct), n, k, samples, seed, confidence
    )


def expected_weighted_best_of_k(
    groups: Sequence[int | None],
    scores: Sequence[float],
    correct: Sequence[bool],
    k: int,
    *,
    max_subsets: int = 20_000,
    samples: int = 2000,
    seed: int = 0,
) -> Estimate:
    """Weighted best-of-k: exact over all k-subsets when C(n, k) <= max_subsets, else resampled."""
    n = _check_lengths(groups=groups, scores=scores, correct=correct)
    _check_k(n, k)
    subsets = math.comb(n, k)
    if subsets > max_subsets:
        return weighted_best_of_k_resampled(groups, scores, correct, k, samples=samples, seed=seed)
    total = math.fsum(
        _weighted_value(c, groups, scores, correct) for c in itertools.combinations(range(n), k)
    )
    value = total / subsets
    return Estimate(value, value, value, "exact")
