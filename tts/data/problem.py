"""The one record every problem set produces, math or code.

Why one record: the grid, the strategies, the grader and the results store all handle problems the same way
whatever their source (built-in generator, local JSONL/Parquet, the hub). Source-specific details that only a
grader needs (unit tests of a code problem, the expression behind an arithmetic problem) go in `metadata`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Problem:
    """One problem.

    id: stable across runs and machines (e.g. "math500/test/algebra/1072.json", "arith/L2/0007").
    question: the text shown to the policy (no prompt template applied).
    answer: the reference final answer as a string ("42", "\\frac{1}{2}"); for code, the canonical solution or "".
    dataset: the data set's registry name.
    level: the data set's own difficulty level (MATH 1-5, built-in arithmetic 1..L); None when it has none.
    kind: "math" (graded by answer equivalence) or "code" (graded by executing tests).
    metadata: grader- or source-specific extras, JSON-serialisable (code: "tests", "entry_point", "prompt").
    """

    id: str
    question: str
    answer: str
    dataset: str
    level: int | None = None
    kind: Literal["math", "code"] = "math"
    metadata: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def generator_counts(cfg: Any, all_levels: Iterable[int], default_per_level: int) -> tuple[list[int], int]:
    """(levels, problems per level) a generated set is asked for: `cfg.levels` (default: all of them) and
    `cfg.per_level` (default: the set's own) capped by `cfg.limit`. One rule for every built-in generator."""
    levels = list(cfg.levels) if cfg.levels else sorted(all_levels)
    per_level = cfg.per_level or default_per_level
    if cfg.limit is not None:
        per_level = min(per_level, cfg.limit)
    return levels, per_level
