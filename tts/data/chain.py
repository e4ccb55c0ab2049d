"""Chain arithmetic: the zoo's task family, a difficulty ladder of multi-step integer problems.

Why it exists: the trained zoo policies (tts.zoo) need a world with a difficulty ladder where every step can be
checked exactly. A problem is a chain of 2-digit operands joined by + and -, evaluated left to right (the usual
precedence: the only "*" ever appears as the first operation, where both readings agree); each level adds one
operation, and level 6 starts with a one-digit x two-digit product (3-digit running values). The reference
solution writes one operation per step, steps separated by the step delimiter "\\n\\n", then a final
`\\boxed{}` step, the format the step-search strategies, the rule PRM and the grader already read:

    question: "47+38-19"
    solution: "47+38=85\\n\\n85-19=66\\n\\n\\\\boxed{66}"

The text is compact (no spaces, no words: one token per character makes every character a training step; the
rule PRM and the grader read it as they read "47 + 38 = 85.").

| level | form | steps (with the answer) |
|---|---|---|
| 1 | a +- b | 2 |
| 2 | a +- b +- c | 3 |
| 3 | 4 operands | 4 |
| 4 | 5 operands | 5 |
| 5 | 6 operands | 6 |
| 6 | d * a +- b +- c +- e (d one digit) | 6 |

Every running value is non-negative. A split rule keeps test and training problems apart: a question is a test
question when the first byte of its SHA-1 is below 32 (1/8 of all questions); `split="train"` draws only the
others. Generation is deterministic for (level, split, seed) and independent across levels.

`check_steps(problem, steps)` is the exact step checker that labels PRM training data: a step is good when it
is the reference step at that position and every earlier step was good (everything after the first error is bad).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tts.data.problem import Problem, generator_counts

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tts.schemas import DatasetConfig

DATASET = "chain"
DEFAULT_PER_LEVEL = 50
STEP_DELIMITER = "\n\n"
TEST_FRACTION_BYTE = 32  # first SHA-1 byte < 32: a test question (1/8)


@dataclass(frozen=True)
class ChainLevel:
    """One level: how many +/- operands follow the first, and whether it starts with a one-digit product."""

    additions: int
    leading_product: bool
    description: str


LEVELS: dict[int, ChainLevel] = {
    1: ChainLevel(1, False, "a +- b"),
    2: ChainLevel(2, False, "a +- b +- c"),
    3: ChainLevel(3, False, "4 operands, + and -"),
    4: ChainLevel(4, False, "5 operands, + and -"),
    5: ChainLevel(5, False, "6 operands, + and -"),
    6: ChainLevel(4, True, "d * a, then 4 more operands"),
}


def apply(value: int, op: str, x: int) -> int:
    return value + x if op == "+" else value - x if op == "-" else value * x


def draw(rng: random.Random, spec: ChainLevel) -> tuple[list[int], list[str]]:
    """Operands and operators for one problem of level `spec` (running values stay non-negative)."""
    if spec.leading_product:
        operands, ops = [rng.randint(2, 9), rng.randint(10, 99)], ["*"]
    else:
        operands, ops = [rng.randint(10, 99)], []
    value = operands[0] * (operands[1] if spec.leading_product else 1)
    for _ in range(spec.additions):
        op = "+" if value < 10 else rng.choice("+-")
        x = rng.randint(10, min(99, value)) if op == "-" else rng.randint(10, 99)
        operands.append(x)
        ops.append(op)
        value = apply(value, op, x)
    return operands, ops


def expression(operands: Sequence[int], ops: Sequence[str]) -> str:
    parts = [str(operands[0])]
    for op, x in zip(ops, operands[1:], strict=True):
        parts += [op, str(x)]
    return "".join(parts)


def solution_steps(operands: Sequence[int], ops: Sequence[str]) -> list[str]:
    """The reference steps: one operation per step, then the boxed answer."""
    steps, value = [], operands[0]
    for op, x in zip(ops, operands[1:], strict=True):
        new = apply(value, op, x)
        steps.append(f"{value}{op}{x}={new}")
        value = new
    steps.append(f"\\boxed{{{value}}}")
    return steps


def _value(operands: Sequence[int], ops: Sequence[str]) -> int:
    value = operands[0]
    for op, x in zip(ops, operands[1:], strict=True):
        value = apply(value, op, x)
    return value


def solution(problem: Problem) -> str:
    """The reference solution text of a chain problem (steps joined by the step delimiter)."""
    return STEP_DELIMITER.join(problem.metadata["steps"])


def is_test_question(question: str) -> bool:
    return hashlib.sha1(question.encode()).digest()[0] < TEST_FRACTION_BYTE


def generate(
    levels: Sequence[int], per_level: int, seed: int = 0, split: str = "test", distinct: bool = True
) -> list[Problem]:
    """`per_level` distinct problems of each level in `levels` from `split` ("test" or "train"). With
    `distinct=False` questions may repeat (training streams: level 1 has only ~10,600 train-split questions)."""
    if per_level <= 0:
        raise ValueError(f"per_level: invalid value {per_level!r}; must be a positive integer")
    if split not in ("test", "train"):
        raise ValueError(f"dataset.split: invalid value {split!r}; allowed: test, train")
    want_test = split == "test"
    problems: list[Problem] = []
    for level in levels:
        if level not in LEVELS:
            raise ValueError(f"dataset.levels: unknown chain level {level!r}; allowed: {sorted(LEVELS)}")
        rng = random.Random(f"chain/{split}/{seed}/{level}")
        seen: set[str] = set()
        drawn = 0
        while drawn < per_level:
            operands, ops = draw(rng, LEVELS[level])
            question = expression(operands, ops)
            if (distinct and question in seen) or is_test_question(question) != want_test:
                continue
            seen.add(question)
            drawn += 1
            steps = solution_steps(operands, ops)
            problems.append(
                Problem(
                    id=f"chain/{split}/L{level}/{drawn - 1:04d}",
                    question=question,
                    answer=str(_value(operands, ops)),
                    dataset=DATASET,
                    level=level,
                    metadata={"operands": operands, "ops": ops, "steps": steps},
                )
            )
    return problems


def _normal(step: str) -> str:
    return " ".join(step.split())


def check_steps(problem: Problem, steps: Sequence[str]) -> list[bool]:
    """Exact step labels: step i is good iff steps 0..i all equal the reference steps (whitespace-normalised)."""
    reference = problem.metadata["steps"]
    labels, ok = [], True
    for i, step in enumerate(steps):
        ok = ok and i < len(reference) and _normal(step) == _normal(reference[i])
        labels.append(ok)
    return labels


def load(cfg: DatasetConfig) -> list[Problem]:
    """The DATASETS loader: levels (default all), per_level (default 50) capped by limit, seed, split."""
    levels, per_level = generator_counts(cfg, LEVELS, DEFAULT_PER_LEVEL)
    return generate(levels, per_level, cfg.seed, cfg.split)
