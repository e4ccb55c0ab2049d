"""Adaptive majority vote (Adaptive-Consistency, Aggarwal et al. 2023, "Let's Sample Step by Step"): draw
samples one at a time, stop as soon as a stopping rule says the majority is settled, N being the cap; answer
with the majority of the samples drawn (answers grouped as majority vote groups them; ties: the class seen
first). Needs no verifier. Budget unit: `generations` counts the samples drawn before stopping (<= N).

Stopping rules (checked after each sample once `min_samples` are drawn; v1 >= v2 >= ... the vote counts of the
answer classes seen, samples without an answer never vote):
  beta       P(p1 > p2) >= confidence, p1 / (p1 + p2) ~ Beta(v1 + 1, v2 + 1) (uniform prior; v2 = 0 when one
             class is seen): the paper's Beta criterion. Exact: P = P(Binomial(v1 + v2 + 1, 1/2) <= v1).
  dirichlet  P(p1 > pj for every other seen class j) >= confidence, p ~ Dirichlet(v + 1) over the seen
             classes: the paper's Dirichlet criterion. With fewer than 3 classes it is the Beta criterion (as
             in the paper's code). Exact in rationals: with independent G_j ~ Gamma(v_j + 1), P = P(G_1 > G_j
             for all j) = integral of f_1(x) prod_j F_j(x), and integer-shape Gamma CDFs are 1 - e^-x * poly(x),
             so the product expands into terms x^p e^{-rx} integrated in closed form. (The paper's code keeps
             the 5 largest classes and integrates by Monte Carlo; this uses every class, exactly.)
  margin     v1 - v2 >= margin.
Example: unanimous answers stop after 4 samples under beta at confidence 0.95 (1 - 2^-5 >= 0.95 > 1 - 2^-4),
after `margin` samples under margin. `min_samples` (default 1: the rule alone decides, as in the paper) is a
floor on the samples drawn before any rule may stop.

From a shared pool (trait pool_based): the pool's samples are i.i.d. draws in sampling order, so `select` reads
them in pool order (one order, fixed by the pool's seed; budgets nest as for every pool strategy) and stops at
T <= n. `estimate` gives the expected accuracy AND the expected generations and generated tokens over uniformly
random orders of n samples drawn from the pool. Exact by a recursion over answer-class states (the members of
a class are exchangeable, so a class's first-drawn member is graded correct with the class's fraction) when
the states reached are at most EXACT_STATES; otherwise Monte Carlo over `samples` seeded random orders, with
the standard error of the accuracy <= 0.5 / sqrt(samples) (0.011 at 2000) and a 95% interval, and that of the
generations <= (n - min_samples) / (2 sqrt(samples)). The runtime writes the expected generations and tokens
into the cell's rows (`Estimate.generations` / `.tokens_out`), so the tables compare it at what it spent.
The prompt is charged once, as for every pool strategy (a sequential run's repeated prompt is prefix-cached).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from statistics import NormalDist

from tts.data.problem import Problem
from tts.engines.protocols import PolicyEngine, PRMScorer
from tts.registry import did_you_mean
from tts.schemas import ConfigError, StrategyConfig
from tts.strategies.base import SamplingSettings, StrategyResult
from tts.strategies.entry import StrategyEntry, Traits
from tts.strategies.estimators import Estimate
from tts.strategies.pool import PoolRule, ProblemPool, build_pool, check_correct
from tts.strategies.pool import select as pool_select
from tts.strategies.voting import answer_groups, majority_choice

NAME = "adaptive_majority"
RULES = ("beta", "dirichlet", "margin")
ZERO = Fraction(0)
EXACT_STATES = 20_000  # answer-class states of the exact recursion; beyond this, Monte Carlo


@dataclass
class AdaptiveMajorityConfig(StrategyConfig):
    name: str = NAME
    rule: str = "beta"  # beta | dirichlet | margin
    confidence: float = 0.95  # beta / dirichlet: stop when P(the leader is the majority) >= confidence
    margin: int = 2  # margin: stop when leader - runner-up >= margin
    min_samples: int = 1  # draw at least this many before any rule may stop

    def check(self, n: int) -> None:
        super().check(n)
        if self.rule not in RULES:
            raise ConfigError(
                f"strategy.rule: invalid value {self.rule!r}; allowed: {', '.join(RULES)}"
                + did_you_mean(self.rule, RULES)
            )
        c = self.confidence
        if isinstance(c, bool) or not isinstance(c, int | float) or not 0.5 < c < 1:
            raise ConfigError(
                f"strategy.confidence: invalid value {c!r}; must be in (0.5, 1), e.g. 0.95 (the paper's)"
            )
        if isinstance(self.margin, bool) or not isinstance(self.margin, int) or self.margin < 1:
            raise ConfigError(
                f"strategy.margin: invalid value {self.margin!r}; must be an integer >= 1, e.g. 2"
            )
        m = self.min_samples
        if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= n:
            raise ConfigError(
                f"strategy.min_samples: invalid value {m!r}; must be an integer in [1, n={n}] "
                "(lower it, or raise n)"
            )


@dataclass(frozen=True)
class Stopping:
    """The stopping rule's settings, as plain values (what `select` and `estimate` take as keywords)."""

    rule: str = "beta"
    confidence: float = 0.95
    margin: int = 2
    min_samples: int = 1

    def fires(self, drawn: int, votes: tuple[int, ...]) -> bool:
        """Whether to stop after `drawn` samples with these class vote counts (sorted, largest first)."""
        return drawn >= self.min_samples and _fires(votes, self.rule, float(self.confidence), self.margin)


OPTIONS = ("rule", "confidence", "margin", "min_samples")


def _stopping(params: dict[str, object]) -> Stopping:
    unknown = sorted(set(params) - set(OPTIONS))
    if unknown:
        raise TypeError(f"{NAME}: unexpected options {unknown}; it takes {', '.join(OPTIONS)}")
    return Stopping(**params)  # type: ignore[arg-type]


def beta_leader_probability(v1: int, v2: int) -> Fraction:
    """P(X > 1/2), X ~ Beta(v1 + 1, v2 + 1): P(Binomial(v1 + v2 + 1, 1/2) <= v1), exactly."""
    trials = v1 + v2 + 1
    return Fraction(sum(math.comb(trials, j) for j in range(v1 + 1)), 2**trials)


def dirichlet_leader_probability(votes: Sequence[int]) -> Fraction:
    """P(p_0 > p_j for every j >= 1), p ~ Dirichlet(votes + 1), exactly (see the module docstring)."""
    a = votes[0] + 1
    # prod_j (1 - e^{-x} Q_j(x)), Q_j(x) = sum_{k < a_j} x^k / k!: polys[r] = coefficients of e^{-rx} x^p
    polys: list[list[Fraction]] = [[Fraction(1)]]
    for v in votes[1:]:
        q = [Fraction(1, math.factorial(k)) for k in range(v + 1)]
        new = [list(p) for p in polys] + [[]]
        for r, p in enumerate(polys):
            prod = [Fraction(0)] * (len(p) + len(q) - 1)
            for i, x in enumerate(p):
                for k, y in enumerate(q):
                    prod[i + k] += x * y
            target = new[r + 1]
            target.extend([Fraction(0)] * (len(prod) - len(target)))
            for i, x in enumerate(prod):
                target[i] -= x
        polys = new
    # integral of x^{a-1} e^{-x} / (a-1)! * c x^p e^{-rx} dx = c (a-1+p)! / ((a-1)! (1+r)^{a+p})
    total = Fraction(0)
    for r, p in enumerate(polys):
        for power, c in enumerate(p):
            if c:
                fall = math.factorial(a - 1 + power) // math.factorial(a - 1)
                total += c * Fraction(fall, (1 + r) ** (a + power))
    return total


@lru_cache(maxsize=65536)
def _fires(votes: tuple[int, ...], rule: str, confidence: float, margin: int) -> bool:
    if not votes:
        return False
    lead, second = votes[0], votes[1] if len(votes) > 1 else 0
    if rule == "margin":
        return lead - second >= margin
    if lead == second:  # a tie: P(leader is the majority) <= 1/2 < confidence
        return False
    if rule == "dirichlet" and len(votes) >= 3:
        return dirichlet_leader_probability(votes) >= confidence
    return beta_leader_probability(lead, second) >= confidence


def stop_time(groups: Sequence[int | None], n: int, stopping: Stopping) -> int:
    """Samples drawn before stopping when they arrive in this order (answer-class labels, None = no answer)."""
    counts: dict[int, int] = {}
    for t, g in enumerate(groups[:n], 1):
        if g is not None:
            counts[g] = counts.get(g, 0) + 1
        if stopping.fires(t, tuple(sorted(counts.values(), reverse=True))):
            return t
    return n


# Majority vote over the samples drawn (the first T of the pool).
RULE = PoolRule(
    choose=lambda groups, scores: majority_choice(groups),
    fallback=lambda scores: 0,
    uses_scores=False,
    uses_groups=True,
)


def select(pool: ProblemPool, n: int, aggregation: str, **params: object) -> StrategyResult:
    """Draw the pool's samples in pool order until the rule stops (at most n); majority of those drawn.
    Accounting: the T samples drawn, as `pool.select` charges a budget of T."""
    stopping = _stopping(dict(params))
    t = stop_time(answer_groups(pool.answers), n, stopping)
    result = pool_select(pool, RULE, t, aggregation)
    result.extra.update(stopped_at=t, cap=n)
    return result


class _TooManyStates(Exception):
    pass


def _exact(
    pool: ProblemPool, n: int, correct: Sequence[bool], stopping: Stopping, max_states: int
) -> tuple[float, float, float]:
    """(accuracy, generations, tokens) expected over uniformly random orders, by recursion over class states:
    (samples drawn per class, the order classes first appeared in). Raises _TooManyStates past max_states."""
    labels = answer_groups(pool.answers)
    classes = sorted({g for g in labels if g is not None})
    members = [[i for i, g in enumerate(labels) if g == c] for c in classes]
    members.append([i for i, g in enumerate(labels) if g is None])  # the abstainers, last
    size = [len(m) for m in members]
    right = [Fraction(sum(bool(correct[i]) for i in m), len(m)) if m else ZERO for m in members]
    tokens = [Fraction(sum(pool.candidates[i].tokens_out for i in m), len(m)) if m else ZERO for m in members]
    abstain = len(members) - 1
    total = pool.n_max
    memo: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[Fraction, Fraction, Fraction]] = {}

    def value(counts: tuple[int, ...], seen: tuple[int, ...]) -> tuple[Fraction, Fraction, Fraction]:
        key = (counts, seen)
        if key in memo:
            return memo[key]
        drawn = sum(counts)
        votes = tuple(sorted((counts[c] for c in seen), reverse=True))
        if drawn == n or stopping.fires(drawn, votes):
            spent = sum((k * tok for k, tok in zip(counts, tokens, strict=True)), ZERO)
            top = max(votes, default=0)
            winner = next((c for c in seen if counts[c] == top), None)
            out = (right[winner] if winner is not None else ZERO, Fraction(drawn), spent)
        else:
            acc = gens = toks = ZERO
            for c in range(len(size)):
                left = size[c] - counts[c]
                if not left:
                    continue
                p = Fraction(left, total - drawn)
                nxt = counts[:c] + (counts[c] + 1,) + counts[c + 1 :]
                first = c != abstain and counts[c] == 0
                a, g, k = value(nxt, seen + (c,) if first else seen)
                acc, gens, toks = acc + p * a, gens + p * g, toks + p * k
            out = (acc, gens, toks)
        memo[key] = out
        if len(memo) > max_states:
            raise _TooManyStates
        return out

    acc, gens, toks = value((0,) * len(size), ())
    return float(acc), float(gens), float(toks)


def _monte_carlo(
    pool: ProblemPool, n: int, correct: Sequence[bool], stopping: Stopping, samples: int, seed: int
) -> tuple[Estimate, float, float]:
    """Seeded random orders: (accuracy estimate with a 95% interval, mean generations, mean tokens)."""
    if samples < 2:
        raise ValueError(f"samples: invalid value {samples!r}; need at least 2 random orders for an interval")
    labels = answer_groups(pool.answers)
    right = {
        g: sum(bool(c) for c, h in zip(correct, labels, strict=True) if h == g) / labels.count(g)
        for g in set(labels)
        if g is not None
    }
    rng = random.Random(f"{seed}:{pool.problem_id}:{n}")
    accs, gens, toks = [], [], []
    for _ in range(samples):
        order = rng.sample(range(pool.n_max), n)
        groups = [labels[i] for i in order]
        t = stop_time(groups, n, stopping)
        chosen = majority_choice(groups[:t])
        accs.append(right[groups[chosen]] if chosen is not None else 0.0)
        gens.append(t)
        toks.append(sum(pool.candidates[i].tokens_out for i in order[:t]))
    mean = math.fsum(accs) / samples
    sd = math.sqrt(max(math.fsum((x - mean) ** 2 for x in accs) / (samples - 1), 0.0))
    half = NormalDist().inv_cdf(0.975) * sd / math.sqrt(samples)
    est = Estimate(mean, max(mean - half, 0.0), min(mean + half, 1.0), "resampled", samples)
    return est, math.fsum(gens) / samples, math.fsum(toks) / samples


def estimate(
    pool: ProblemPool,
    k: int,
    aggregation: str,
    correct: Sequence[bool],
    *,
    seed: int = 0,
    samples: int = 2000,
    max_states: int = EXACT_STATES,
    **params: object,
) -> Estimate:
    """Expected accuracy, generations and generated tokens at cap k over uniformly random orders of k samples
    drawn from the pool: exact when the recursion needs at most `max_states` states, else Monte Carlo."""
    check_correct(pool, k, correct)
    stopping = _stopping(dict(params))
    try:
        acc, gens, toks = _exact(pool, k, correct, stopping, max_states)
        est = Estimate(acc, acc, acc, "exact")
    except _TooManyStates:
        est, gens, toks = _monte_carlo(pool, k, correct, stopping, samples, seed)
    if pool.greedy:  # one completion repeated: sampled and charged once, whatever the stop
        gens, toks = 1.0, float(pool.candidates[0].tokens_out)
    return Estimate(est.value, est.low, est.high, est.method, est.samples, generations=gens, tokens_out=toks)


def run(
    problems: Sequence[Problem],
    policy: PolicyEngine,
    prm: PRMScorer,
    *,
    n: int,
    sampling: SamplingSettings,
    seed: int,
    **params: object,
) -> list[StrategyResult]:
    """Stand-alone: a pool of n samples (one generate call), read in order until the rule stops. Samples past
    the stop are generated but not charged: generations counts what a one-at-a-time run would draw."""
    stopping = _stopping(dict(params))
    pools = build_pool(problems, policy, prm, n_max=n, sampling=sampling, seed=seed, score=False)
    fields = {k: getattr(stopping, k) for k in OPTIONS}
    return [select(p, n, sampling.aggregation, **fields) for p in pools]


ENTRY = StrategyEntry(
    name=NAME,
    schema=AdaptiveMajorityConfig,
    run=run,
    traits=Traits(pool_based=True),
    select=select,
    estimate=estimate,
)
