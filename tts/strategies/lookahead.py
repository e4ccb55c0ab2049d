"""Lookahead search (Snell et al. 2024): PRM beam search in which each candidate step is judged by rolling it
out k more steps greedily (temperature 0) and scoring the rollout, not the step itself.

The beam still advances by the sampled step only; the rollout is thrown away. With aggregation "last" (Snell's
setting) a candidate's ranking score is the PRM's score of the rollout's last step; other aggregations apply to
the rollout's step scores the same way. Lockstep per step: one generate call for the candidate steps, one per
rollout step (identical prefixes rolled out once), and one PRM call, for every beam of every problem. k = 0 is
exactly beam search.

Budget: generations = step-level samples / steps, about N (k + 1), as Snell et al. count lookahead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tts.data.problem import Problem
from tts.engines.protocols import PolicyEngine, PRMScorer
from tts.strategies.base import SamplingSettings, StrategyResult
from tts.strategies.entry import StrategyEntry, Traits
from tts.strategies.tree import (
    TreeSearchConfig,
    check_lookahead,
    check_search_args,
    keep_top,
    search,
    tree_budget,
)

NAME = "lookahead"


@dataclass
class LookaheadConfig(TreeSearchConfig):
    name: str = NAME
    lookahead: int = 2  # k: steps rolled out (at temperature 0) to score a candidate step

    def rollout_steps(self) -> int:
        return self.lookahead

    def check(self, n: int) -> None:
        super().check(n)
        check_lookahead(self.lookahead)


def run(
    problems: Sequence[Problem],
    policy: PolicyEngine,
    prm: PRMScorer,
    *,
    n: int,
    sampling: SamplingSettings,
    seed: int,
    beam_width: int = 4,
    max_steps: int = 40,
    final_selection: str = "argmax",
    lookahead: int = 2,
) -> list[StrategyResult]:
    """Beam search (N = n, M = beam_width) ranking each candidate by a greedy rollout of `lookahead` steps."""
    check_search_args(n, beam_width, max_steps, lookahead)
    return search(
        problems,
        policy,
        prm,
        groups_per_problem=1,
        width=n,
        keep=n // beam_width,
        cap=n,
        advance=keep_top,
        sampling=sampling,
        max_steps=max_steps,
        final_selection=final_selection,
        lookahead=lookahead,
        n=n,
    )


ENTRY = StrategyEntry(
    name=NAME,
    schema=LookaheadConfig,
    run=run,
    traits=Traits(needs_verifier=True, tree=True),
    budget=tree_budget,
)
