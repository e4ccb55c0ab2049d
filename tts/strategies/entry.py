"""What a strategy registers: one `StrategyEntry` carrying its schema, its run function, its traits and, for
pool-based strategies, its selection rule and expected-accuracy estimator.

Why one object: the runtime (how to plan and batch a cell), the config validation (which fields, which values)
and the results writer (which hyperparameters) all read the entry, never the strategy's name. Adding a strategy
is one module that defines an entry (its schema is registered in Hydra's ConfigStore as `strategy=<name>`, so no
YAML is needed; see docs/add_a_strategy.md); nothing else in the code base names it.

The runtime calls the functions with every schema field (`StrategyConfig.params()`, `**fields` below) as a
keyword; the entry checks their signatures when it is made, so a mismatch fails at registration with one line
(`RegistrationError`), not inside a Ray worker:

    run(problems, policy, prm, *, n, sampling, seed, **fields) -> list[StrategyResult]
        the whole strategy against the engine protocols (tts.engines.protocols), no Ray.
    select(pool, n, aggregation, **fields) -> StrategyResult                       (pool_based only)
        the answer from the FIRST n samples of a shared pool (tts.strategies.pool).
    estimate(pool, k, aggregation, correct, *, seed, **fields) -> Estimate          (pool_based only)
        expected accuracy at budget k over random k-subsets of the pool.
    budget(config, n, max_tokens, step_max_tokens) -> (generations, tokens)
        an upper bound of one problem's cost at budget n, for `tts sweep --dry-run`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection
from dataclasses import dataclass, fields
from typing import Any

from tts.schemas import StrategyConfig


class RegistrationError(ValueError):
    """A strategy entry that cannot be registered (its functions do not take its schema's fields)."""


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
        own = schema_fields(self.schema)
        _check_call(self, "run", self.run, 3, {"n", "sampling", "seed", *own}, own)
        if self.traits.pool_based:
            _check_call(self, "select", self.select, 3, set(own), own)
            _check_call(self, "estimate", self.estimate, 4, {"seed", *own}, own)
        _check_call(self, "budget", self.budget, 4, set(), own)


def schema_fields(schema: type[StrategyConfig]) -> tuple[str, ...]:
    """The fields the runtime passes as keywords (`StrategyConfig.params()`: all but name and temperature)."""
    return tuple(f.name for f in fields(schema) if f.name not in ("name", "temperature"))


def _check_call(
    entry: StrategyEntry,
    role: str,
    fn: Callable[..., Any] | None,
    positional: int,
    keywords: Collection[str],
    own: Collection[str],
) -> None:
    """Raise RegistrationError (one line: entry, function, field) unless `fn(*positional args, **keywords)` binds,
    i.e. the runtime's call of `role` cannot fail with a TypeError for its arguments' names."""
    if fn is None:
        return
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or C callable: nothing to read
        return
    params = list(sig.parameters.values())
    kinds = inspect.Parameter
    slots = [p for p in params if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)]
    star_args = any(p.kind is kinds.VAR_POSITIONAL for p in params)
    star_kwargs = any(p.kind is kinds.VAR_KEYWORD for p in params)
    label = f"strategy {entry.name!r}: {role} {getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', fn)}()"
    if len(slots) < positional and not star_args:
        raise RegistrationError(
            f"{label} takes {len(slots)} positional arguments; the runtime passes {positional}"
        )
    taken = {p.name for p in slots[:positional]}
    named = {
        p.name for p in params[len(taken) :] if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)
    }
    extra = sorted(k for k in keywords if k in taken or (k not in named and not star_kwargs))
    if extra:
        what = "schema field" if all(k in own for k in extra) else "keyword"
        raise RegistrationError(
            f"{label} does not take the {what}{'s' if len(extra) > 1 else ''} {', '.join(extra)} that the runtime "
            f"passes ({entry.schema.__name__}'s fields: {', '.join(own) or 'none'}); add "
            f"{'them as keyword parameters' if len(extra) > 1 else 'it as a keyword parameter'} or **fields"
        )
    missing = sorted(
        p.name
        for p in params[len(taken) :]
        if p.default is p.empty
        and p.kind is not kinds.VAR_POSITIONAL
        and p.kind is not kinds.VAR_KEYWORD
        and p.name not in keywords
    )
    if missing:
        raise RegistrationError(
            f"{label} requires {', '.join(missing)}, which the runtime does not pass (not a field of "
            f"{entry.schema.__name__}); give {'them defaults' if len(missing) > 1 else 'it a default'} or add "
            f"{'them' if len(missing) > 1 else 'it'} to the schema"
        )
