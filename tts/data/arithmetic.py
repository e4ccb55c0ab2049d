"""The built-in problem set: procedurally generated arithmetic with exact answers and a difficulty knob (level).

Why it exists: it needs no download, its answers are exact integers, and every claim a solution step makes can be
re-computed (tts.engines.rule_prm), so a sweep with the embedded SmolLM2-135M policy shows real test-time
scaling on a laptop. The levels were chosen from measured pass rates of that (very weak) model with the two-shot
prompt in conf/policy/smollm2_135m.yaml: L1-L3 are one-step sums (sampling alone has something to find), L4-L6
are two- and three-step chains (step-level search has something to verify).

| level | form | example | SmolLM2-135M pass@1 / pass@8 (measured, FIELD_NOTES) |
|---|---|---|---|
| 1 | a + b, one digit each | 7 + 5 | 0.86 / 1.00 |
| 2 | a + b, 2-digit + 1-digit | 47 + 8 | 0.55 / 0.83 |
| 3 | a + b, 2-digit each | 56 + 26 | 0.30 / 0.50 |
| 4 | a + b - c, one digit each | 6 + 3 - 4 | 0.39 / 0.50 |
| 5 | a + b + c, one digit each | 7 + 5 + 3 | 0.08 / 0.33 |
| 6 | a + b + c + d, one digit each | 3 + 9 + 2 + 6 | 0.01 / 0.08 |

A sample (seed 0): `Problem(id="arith/L5/0000", question="5 + 6 + 9", answer="20", dataset="arithmetic",
level=5, metadata={"expression": "5 + 6 + 9", "operands": [5, 6, 9], "ops": ["+", "+"]})`. The question is
the bare expression; the policy's prompt template wraps it ("Compute {question}").

Every intermediate value (left to right) is non-negative. Generation is deterministic for (level, seed) and
independent across levels, so adding a level never changes another level's problems.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tts.data.errors import DataSetError
from tts.data.problem import Problem, generator_counts

if TYPE_CHECKING:
    from tts.schemas import DatasetConfig

DATASET = "arithmetic"
DEFAULT_PER_LEVEL = 10


@dataclass(frozen=True)
class LevelSpec:
    """One difficulty level: the digits of each operand and the operators between them ("+" or "-")."""

    digits: tuple[int, ...]
    ops: tuple[str, ...]
    description: str


LEVELS: dict[int, LevelSpec] = {
    1: LevelSpec((1, 1), ("+",), "a + b, one digit each"),
    2: LevelSpec((2, 1), ("+",), "a + b, 2-digit + 1-digit"),
    3: LevelSpec((2, 2), ("+",), "a + b, 2-digit each"),
    4: LevelSpec((1, 1, 1), ("+", "-"), "a + b - c, one digit each"),
    5: LevelSpec((1, 1, 1), ("+", "+"), "a + b + c, one digit each"),
    6: LevelSpec((1, 1, 1, 1), ("+", "+", "+"), "a + b + c + d, one digit each"),
}


def evaluate(operands: list[int], ops: list[str]) -> int:
    """Left-to-right value of operands joined by "+"/"-" operators."""
    value = operands[0]
    for op, x in zip(ops, operands[1:], strict=True):
        value = value + x if op == "+" else value - x
    return value


def format_expression(operands: list[int], ops: list[str]) -> str:
    """ "7 + 5 + 3": operands and operators separated by single spaces."""
    parts = [str(operands[0])]
    for op, x in zip(ops, operands[1:], strict=True):
        parts += [op, str(x)]
    return " ".join(parts)


def _draw(rng: random.Random, spec: LevelSpec) -> list[int]:
    """Operands with the level's digit counts; a subtrahend never exceeds the running value."""
    operands = [rng.randint(1 if d == 1 else 10 ** (d - 1), 10**d - 1) for d in spec.digits[:1]]
    value = operands[0]
    for op, d in zip(spec.ops, spec.digits[1:], strict=True):
        low, high = (1 if d == 1 else 10 ** (d - 1)), 10**d - 1
        if op == "-":
            high = min(high, value)
        x = rng.randint(low, max(low, high))
        operands.append(x)
        value = value + x if op == "+" else value - x
    return operands


def generate(levels: list[int], per_level: int, seed: int = 0) -> list[Problem]:
    """`per_level` problems for each level in `levels`, deterministic for `seed`; distinct within a level while
    the level has enough distinct expressions."""
    if per_level <= 0:
        raise DataSetError("dataset.per_level", f"invalid value {per_level!r}", "give a positive integer")
    problems: list[Problem] = []
    for level in levels:
        if level not in LEVELS:
            raise DataSetError(
                "dataset.levels", f"unknown arithmetic level {level!r}", f"choose from {sorted(LEVELS)}"
            )
        spec = LEVELS[level]
        rng = random.Random(seed * 1_000_003 + level)
        seen: set[tuple[int, ...]] = set()
        for index in range(per_level):
            operands = _draw(rng, spec)
            for _ in range(50):  # prefer a new expression; small levels may run out of them
                if tuple(operands) not in seen:
                    break
                operands = _draw(rng, spec)
            seen.add(tuple(operands))
            ops = list(spec.ops)
            expression = format_expression(operands, ops)
            problems.append(
                Problem(
                    id=f"arith/L{level}/{index:04d}",
                    question=expression,
                    answer=str(evaluate(operands, ops)),
                    dataset=DATASET,
                    level=level,
                    metadata={"expression": expression, "operands": operands, "ops": ops},
                )
            )
    return problems


def load(cfg: DatasetConfig) -> list[Problem]:
    """The DATASETS loader: levels (default all), per_level (default 10) capped by limit, seed."""
    levels, per_level = generator_counts(cfg, LEVELS, DEFAULT_PER_LEVEL)
    return generate(levels, per_level, cfg.seed)
