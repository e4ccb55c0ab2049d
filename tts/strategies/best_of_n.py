"""Best-of-N with a verifier (Cobbe et al. 2021; Snell et al. 2024): sample N solutions, answer with the one
whose aggregated PRM score is highest (ties: the first sampled).

A pool strategy: one pool of N samples (tts.strategies.pool) and a selection rule. A sweep shares one pool of
N_max samples across every N and every pool-based strategy; this module holds the rule, the
expected-accuracy estimator and the stand-alone run of one cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tts.data.problem import Problem
from tts.engines.protocols import PolicyEngine, PRMScorer
from tts.schemas import StrategyConfig
from tts.strategies.base import SamplingSettings, StrategyResult
from tts.strategies.entry import StrategyEntry, Traits
from tts.strategies.estimators import Estimate, expected_best_of_k
from tts.strategies.pool import PoolRule, ProblemPool, check_correct, run_pool_strategy, select
from tts.strategies.voting import best_choice

NAME = "best_of_n"


@dataclass
class BestOfNConfig(StrategyConfig):
    name: str = NAME


# Ranks every sample (answer or not) by its aggregated PRM score.
RULE = PoolRule(
    choose=lambda groups, scores: best_choice(scores),
    fallback=best_choice,
    uses_scores=True,
    uses_groups=False,
)


def estimate(
    pool: ProblemPool,
    k: int,
    aggregation: str,
    correct: Sequence[bool],
    *,
    seed: int = 0,
    samples: int = 2000,
) -> Estimate:
    """Exact expected best-of-k accuracy (order statistic of a random k-subset, ties averaged)."""
    check_correct(pool, k, correct)
    value = expected_best_of_k(pool.scores(aggregation), correct, k)
    return Estimate(value, value, value, "exact")


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
    """The strategy over N samples per problem; one generate call (and one PRM call) for all problems."""
    return run_pool_strategy(
        NAME, RULE, problems, policy, prm, n=n, sampling=sampling, seed=seed, params=params
    )


ENTRY = StrategyEntry(
    name=NAME,
    schema=BestOfNConfig,
    run=run,
    traits=Traits(pool_based=True, needs_verifier=True),
    select=lambda pool, n, aggregation: select(pool, RULE, n, aggregation),
    estimate=estimate,
)
