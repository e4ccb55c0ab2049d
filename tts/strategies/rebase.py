"""REBASE, reward-balanced search (Wu et al. 2024, "Inference Scaling Laws: An Empirical Analysis of
Compute-Optimal Inference for Problem-Solving with Language Models"): a tree whose width budget is shared out
among the frontier nodes in proportion to their PRM reward, so good nodes get many children and poor ones few or
none, without beam search's fixed top-k cut.

Step 1 samples N first steps from the prompt. After every step, the children that finished (EOS, a stated final
answer, max_tokens) are completed solutions and leave the budget: the width budget of the next step is
B = N - completed. The unfinished children form the frontier; node j gets

    W_j = B * softmax(reward / softmax_temperature)_j

children, rounded by largest remainder (`allocate_widths`: floor every W_j, then hand the missing units one each
to the largest fractional parts, ties to the higher reward, then to the earlier node), so the widths sum to B
exactly (the paper's plain rounding need not); a node with width 0 is dropped. reward = aggregate(step scores,
aggregation) of the node. The search stops when the budget is spent (N solutions completed), when the frontier
is empty, or at max_steps (whose step is sampled to EOS). The answer comes from the completed solutions by
`final_selection` (argmax by default; the paper votes with `weighted`). The allocation is deterministic:
`seed` changes nothing here, sampling randomness is the engine's. All nodes of all problems advance in lockstep:
one generate call and one PRM call per step (tts.strategies.tree).

Per problem `StrategyResult.extra["widths"]` lists the frontier's widths after each step (the last one empty or all
zero once the budget is spent); like every `extra` field it is not a result-row column.

Budget: generations = step-level samples / steps (at most N: completed solutions leave the budget).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tts.data.problem import Problem
from tts.engines.protocols import PolicyEngine, PRMScorer
from tts.schemas import ConfigError
from tts.strategies.base import SamplingSettings, StrategyResult
from tts.strategies.entry import StrategyEntry, Traits
from tts.strategies.tree import Beam, Group, StepSearchConfig, one_tree_search, tree_budget

NAME = "rebase"


@dataclass
class RebaseConfig(StepSearchConfig):
    name: str = NAME
    softmax_temperature: float = (
        0.2  # T_b, the balance temperature: lower concentrates the budget on the best
    )

    def check(self, n: int) -> None:
        super().check(n)
        t = self.softmax_temperature
        if isinstance(t, bool) or not isinstance(t, int | float) or not t > 0 or not math.isfinite(t):
            raise ConfigError(f"strategy.softmax_temperature: invalid value {t!r}; must be a number > 0")


def allocate_widths(rewards: Sequence[float], budget: int, temperature: float) -> list[int]:
    """Children per frontier node: budget * softmax(reward / temperature), rounded by largest remainder so the
    widths sum to `budget` (ties: the higher reward, then the earlier node)."""
    if not rewards or budget <= 0:
        return [0] * len(rewards)
    top = max(rewards)
    exps = [math.exp((r - top) / temperature) for r in rewards]
    total = sum(exps)
    quotas = [budget * e / total for e in exps]
    widths = [math.floor(q) for q in quotas]
    order = sorted(range(len(rewards)), key=lambda j: (-(quotas[j] - widths[j]), -rewards[j], j))
    for j in order[: budget - sum(widths)]:
        widths[j] += 1
    return widths


class _Balance:
    """The advance rule: completed children leave the budget, the frontier shares the rest by reward."""

    def __init__(self, n: int, temperature: float) -> None:
        self.n, self.temperature = n, temperature
        self.widths: dict[int, list[list[int]]] = {}  # per problem, the frontier's widths after each step

    def __call__(self, group: Group, children: list[Beam]) -> None:
        group.finished.extend(c for c in children if c.finished)
        frontier = [c for c in children if not c.finished]
        budget = self.n - len(group.finished)
        widths = allocate_widths([c.rank for c in frontier], budget, self.temperature)
        self.widths.setdefault(group.problem, []).append(widths)
        group.active = [c for c, w in zip(frontier, widths, strict=True) if w > 0]
        group.widths = [w for w in widths if w > 0]
        group.done = not group.active


def run(
    problems: Sequence[Problem],
    policy: PolicyEngine,
    prm: PRMScorer,
    *,
    n: int,
    sampling: SamplingSettings,
    seed: int,
    max_steps: int = 40,
    final_selection: str = "argmax",
    softmax_temperature: float = 0.2,
) -> list[StrategyResult]:
    """REBASE with a width budget of N = n per problem. `seed` is accepted for the strategy signature; the
    allocation is deterministic and sampling randomness is the engine's."""
    config = RebaseConfig(
        max_steps=max_steps, final_selection=final_selection, softmax_temperature=softmax_temperature
    )
    rule = _Balance(n, softmax_temperature)
    results = one_tree_search(problems, policy, prm, n=n, config=config, advance=rule, sampling=sampling)
    for i, result in enumerate(results):
        result.extra["widths"] = rule.widths.get(i, [])
    return results


ENTRY = StrategyEntry(
    name=NAME,
    schema=RebaseConfig,
    run=run,
    traits=Traits(needs_verifier=True, tree=True),
    budget=tree_budget,
)
