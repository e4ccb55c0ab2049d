"""What a strategy registers: one `StrategyEntry` carrying its schema, its run function, its traits and, for
pool-based strategies, its selection rule and expected-accuracy estimator.

Why one object: the runtime (how to plan and batch a cell), the config validation (which fields, which values)
and the results writer (which hyperparameters) all read the entry, never the strategy's name. Adding a strategy
is one module that defines an entry plus one YAML in `conf/strategy/` (see docs/add_a_strategy.md); nothing else
in the code base names it.

    run(problems, policy, prm, *, n, sampling, seed, **params) -> list[StrategyResult]
        the whole strategy against the engine protocols (tts.engines.protocols), no Ray.
    select(pool, n, aggregation) -> StrategyResult                       (pool_based only)
        the answer from the FIRST n samples of a shared pool (tts.strategies.pool).
    estimate(pool, k, aggregation, correct, *, seed, samples) -> Estimate   (pool_based only)
        expected accuracy at budget k over random k-subsets of the pool.
    budget(config, n, max_tokens, step_max_tokens) -> (generations, tokens)
        an upper bound of one problem's cost at budget n, for `tts sweep --dry-run`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tts.schemas import StrategyConfig


@dataclass(frozen=True)
class Traits:
    """What the runtime needs to know about a strategy, instead of its name.

    pool_based: every budget N <= N_max is derived from one shared pool of N_max samples (select + estimate).
    needs_verifier: it ranks by PRM scores, so `prm=none` is rejected and its pool is scored.
    tree: step-level search over partial solutions (N is a multiple of the beam width).
    sequential: later generations see earlier ones (conversations with history); a `parallel` schema field, when
      present, is the number of parallel chains (the analysis shows the sequential/parallel ratio from it).
    thinking: it controls a thinking model's thinking, so the policy must name its end marker
      (`policy.thinking_end`; a policy without one is rejected).
    """

    pool_based: bool = False
    needs_verifier: bool = False
    tree: bool = False
    sequential: bool = False
    thinking: bool = False


def whole_solution_budget(
    config: StrategyConfig, n: int, max_tokens: int, step_max_tokens: int
) -> tuple[int, int]:
    """n complete solutions of at most max_tokens each."""
    return n, n * max_tokens


@dataclass(frozen=True)
class StrategyEntry:
    name: str
    schema: type[StrategyConfig]
    run: Callable[..., list[Any]]
    traits: Traits = Traits()
    select: Callable[..., Any] | None = None
    estimate: Callable[..., Any] | None = None
    budget: Callable[[Any, int, int, int], tuple[int, int]] = whole_solution_budget
    doc: str = ""

    def __post_init__(self) -> None:
        if self.traits.pool_based and (self.select is None or self.estimate is None):
            raise ValueError(f"strategy {self.name!r}: a pool-based entry needs `select` and `estimate`")
        if not isinstance(self.schema, type) or not issubclass(self.schema, StrategyConfig):
            raise ValueError(f"strategy {self.name!r}: schema must be a tts.schemas.StrategyConfig subclass")
