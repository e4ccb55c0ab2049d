"""REBASE, reward-balanced search (Wu et al. 2024, "Inference Scaling Laws: An Empirical Analysis of
Compute-Optimal Inference for Problem-Solving with Language Models"): a tree whose width budget is shared out
among the frontier nodes in proportion to their PRM reward, so good nodes get many children and poor ones few or
none, without beam search's fixed top-k cut.

Step 1 samples N first steps from the prompt. After every step, the children that finished (EOS, a stated final
answer, max_tokens) are completed solutions and leave the budget: the width budget of the next step is
B = N - completed (the reference's `remaining_width -= 1` per leaf). The unfinished children form the frontier;
node j gets W_j = B * softmax(reward / softmax_temperature)_j children, rounded as `allocation` says:

  reference           as thu-wyz/inference_scaling's `Tree.select_softmax` (rebase.py): nodes in descending
                      reward (Python's stable sort then reverse: among equal rewards the later node first), each
                      takes ceil(B_left * e_j / S_left) of what is left, then B_left -= its width and
                      S_left -= e_j (e_j = exp(reward_j / T)), so the best nodes round up and the tail gets what
                      remains (`reference_widths`; [.9, .8, .7, .6], B = 8, T = 0.2 gives [4, 3, 1, 0]). The
                      default.
  largest_remainder   floor every W_j, then one more each to the largest fractional parts (ties to the higher
                      reward, then the earlier node): the rounding closest to the softmax ([4, 2, 1, 1] above),
                      this module's rule before it followed the reference (`allocate_widths`).

Both sum to B exactly; a node with width 0 is dropped. The reference computes in torch float32, where
S_left -= e_j can leave S_left a hair below the last e_j, so its ceil overshoots (four equal rewards, B = 8:
widths 2, 2, 3, 2 = 9) or divides 0 by 0: here the exps are float64, shifted by the best reward, and a width
never exceeds what is left (the exact-arithmetic result of the reference's rule).

reward (`reward`): `last`, the PRM's score of the node's newest step, as the reference's `TreeNode` takes
`state.scores()[-1]` (the default); `aggregate`, aggregate(step scores, aggregation), this module's reward
before. Stopping as the reference's `reward_guided_search`: when the budget is spent (N solutions completed),
when the frontier is empty, or after max_steps steps (default 25, the reference's hard-coded depth limit); the
last step is sampled like any other (the reference completes nothing at the limit; `complete_at_limit: true`
samples it to EOS, this module's rule before), and the nodes still unfinished then are not answers unless
nothing completed (the reference returns no answer at all then). The
answer comes from the completed solutions by `final_selection` (argmax by default; the paper also votes with
`weighted`). The allocation is deterministic: `seed` changes nothing here, sampling randomness is the engine's.
All nodes of all problems advance in lockstep: one generate call and one PRM call per step
(tts.strategies.tree).

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
ALLOCATIONS = ("reference", "largest_remainder")
REWARDS = ("last", "aggregate")
MAX_DEPTH = 25  # the reference's reward_guided_search: `if depth >= 25: break`


@dataclass
class RebaseConfig(StepSearchConfig):
    name: str = NAME
    max_steps: int = MAX_DEPTH  # the reference's depth limit; its last step is sampled like any other
    softmax_temperature: float = (
        0.2  # T_b, the balance temperature (the reference's hype-parameters/rebase.yaml: 0.2)
    )
    allocation: str = "reference"  # reference (ceil, best first) | largest_remainder (ALLOCATIONS)
    reward: str = "last"  # last (the newest step's PRM score, the reference's) | aggregate (REWARDS)
    complete_at_limit: bool = (
        False  # true: step max_steps is sampled to EOS, every node completes (rule before)
    )

    def check(self, n: int) -> None:
        super().check(n)
        t = self.softmax_temperature
        if isinstance(t, bool) or not isinstance(t, int | float) or not t > 0 or not math.isfinite(t):
            raise ConfigError(f"strategy.softmax_temperature: invalid value {t!r}; must be a number > 0")
        if self.allocation not in ALLOCATIONS:
            raise ConfigError(
                f"strategy.allocation: invalid value {self.allocation!r}; allowed: {', '.join(ALLOCATIONS)}"
            )
        if self.reward not in REWARDS:
            raise ConfigError(
                f"strategy.reward: invalid value {self.reward!r}; allowed: {', '.join(REWARDS)}"
            )
        if not isinstance(self.complete_at_limit, bool):
            raise ConfigError(
                f"strategy.complete_at_limit: invalid value {self.complete_at_limit!r}; must be true or false"
            )


def reference_widths(rewards: Sequence[float], budget: int, temperature: float) -> list[int]:
    """Children per frontier node as thu-wyz/inference_scaling's `Tree.select_softmax` (rebase.py) gives them:
    nodes in descending reward (stable sort then reverse: the later of equal rewards first), each taking
    ceil(left * e_j / S) of the `left` budget, then left -= width and S -= e_j. Exact arithmetic (float64, exps
    shifted by the best reward, a width capped at what is left) where the reference's float32 can overshoot."""
    if not rewards or budget <= 0:
        return [0] * len(rewards)
    order = sorted(range(len(rewards)), key=lambda j: rewards[j])
    order.reverse()
    top = max(rewards)
    exps = [math.exp((r - top) / temperature) for r in rewards]
    total = math.fsum(exps)
    widths = [0] * len(rewards)
    left = budget
    for j in order:
        if left <= 0:
            break
        quota = left * exps[j] / total if total > 0 else left
        widths[j] = min(left, math.ceil(quota))
        left -= widths[j]
        total -= exps[j]
    return widths


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


def node_reward(beam: Beam, reward: str) -> float:
    """A frontier node's reward: its newest step's PRM score (`last`, the reference's `state.scores()[-1]`;
    0 for a node without steps) or its ranking score, aggregate(step scores) (`aggregate`)."""
    if reward == "last":
        return beam.step_scores[-1] if beam.step_scores else 0.0
    return beam.rank


class _Balance:
    """The advance rule: completed children leave the budget, the frontier shares the rest by reward."""

    def __init__(
        self, n: int, temperature: float, allocation: str = "reference", reward: str = "last"
    ) -> None:
        self.n, self.temperature, self.reward = n, temperature, reward
        self.allocate = reference_widths if allocation == "reference" else allocate_widths
        self.widths: dict[int, list[list[int]]] = {}  # per problem, the frontier's widths after each step

    def __call__(self, group: Group, children: list[Beam]) -> None:
        group.finished.extend(c for c in children if c.finished)
        frontier = [c for c in children if not c.finished]
        budget = self.n - len(group.finished)
        widths = self.allocate([node_reward(c, self.reward) for c in frontier], budget, self.temperature)
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
    max_steps: int = MAX_DEPTH,
    final_selection: str = "argmax",
    softmax_temperature: float = 0.2,
    allocation: str = "reference",
    reward: str = "last",
    complete_at_limit: bool = False,
) -> list[StrategyResult]:
    """REBASE with a width budget of N = n per problem. `seed` is accepted for the strategy signature; the
    allocation is deterministic and sampling randomness is the engine's."""
    config = RebaseConfig(
        max_steps=max_steps,
        final_selection=final_selection,
        softmax_temperature=softmax_temperature,
        allocation=allocation,
        reward=reward,
        complete_at_limit=complete_at_limit,
    )
    rule = _Balance(n, softmax_temperature, allocation, reward)
    results = one_tree_search(
        problems,
        policy,
        prm,
        n=n,
        config=config,
        advance=rule,
        sampling=sampling,
        last_to_eos=complete_at_limit,
    )
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
