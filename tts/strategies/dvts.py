"""Diverse verifier tree search (DVTS; Beeching et al. 2024, HF search-and-learn): N/M independent subtrees
per problem, each a greedy search that follows its single best-scored child.

Step 1 samples N first steps from the prompt, M for each subtree; every later step expands each subtree's kept
beam into M children, scores them with the PRM and keeps the best one. A subtree ends when its best child is
finished (EOS, a stated final answer, max_tokens) or at max_steps. Because subtrees never compete with each
other, DVTS keeps N/M diverse solutions where beam search tends to collapse onto one prefix. The answer is the
best finished subtree beam by aggregated score. All subtrees of all problems advance in lockstep: one generate
call and one PRM call per step (tts.strategies.tree). With `lookahead` k > 0 each child is ranked by a greedy
k-step rollout, as in lookahead search (Snell et al. 2024); k = 0 (the default) is plain DVTS.

Budget: generations = N (step-level samples / mean steps per subtree), about N (k + 1) with lookahead.
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
    keep_best,
    search,
    tree_budget,
)

NAME = "dvts"


@dataclass
class DVTSConfig(TreeSearchConfig):
    name: str = NAME
    lookahead: int = 0  # k: steps rolled out (at temperature 0) to rank a child; 0 = its own prefix

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
    lookahead: int = 0,
) -> list[StrategyResult]:
    """DVTS with N = n and M = beam_width: n / beam_width subtrees of width beam_width."""
    check_search_args(n, beam_width, max_steps, lookahead)
    return search(
        problems,
        policy,
        prm,
        groups_per_problem=n // beam_width,
        width=beam_width,
        keep=1,
        cap=1,
        advance=keep_best,
        sampling=sampling,
        max_steps=max_steps,
        final_selection=final_selection,
        lookahead=lookahead,
        n=n,
    )


ENTRY = StrategyEntry(
    name=NAME,
    schema=DVTSConfig,
    run=run,
    traits=Traits(needs_verifier=True, tree=True),
    budget=tree_budget,
)
