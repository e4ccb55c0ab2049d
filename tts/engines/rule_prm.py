"""A rule-based process verifier for the built-in arithmetic set: exact per-step scores, no model.

Why: a formal domain allows exact process supervision, and the embedded SmolLM2-135M needs it. Its typical
error is a TRUE equation on the WRONG operand ("3 + 2 = 5." then "5 + 5 = 10." for 3 + 2 + 4), so checking that
each equation holds is not enough: the verifier keeps the problem's own state (the expression still to be
reduced) and accepts a claim only when it reduces a part of that state. With it, verifier-guided search reaches
pass@N where majority vote stays near pass@1.

How a step is scored (scores in [0, 1], one per step, `tokens=0`):
- every equation chain "a + b = c" / "3 + 2 + 4 = 5 + 4 = 9" in the step must be arithmetically true (else 0.0);
- one side of the chain must match a span of the current state that can be reduced without changing the
  expression's value (commuted operands of + and * are fine; "b + c" inside "a - b + c" is not), else 0.0;
  the state becomes the reduced expression. A claim that matches an earlier state only restates past work (0.5)
  unless it gets further than the current state (1.0);
- a final answer ("\\boxed{N}", "the answer is N") scores 1.0 when N equals the expression's value, else 0.0;
- a step with nothing checkable ("Let's add.") scores 0.5; a step's score is the minimum of its verdicts.
A question with no arithmetic expression in it (the PRM used outside its domain) still gets false equations
scored 0.0, and everything else 0.5.

    >>> score_steps("Compute 3 + 2 + 4", ["3 + 2 = 5.", "5 + 5 = 10.", "The answer is \\\\boxed{10}."])
    [1.0, 0.0, 0.0]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from tts.engines.protocols import ScoreRequest, StepScores
from tts.grading.extract import last_boxed

if TYPE_CHECKING:
    from tts.schemas import EngineConfig, PRMConfig

CORRECT, WRONG, UNCHECKED, RESTATED = 1.0, 0.0, 0.5, 0.5

_NUM = r"\d+(?:\.\d+)?"
_OP = r"[-+*]"
_SIDE = rf"{_NUM}(?:\s*{_OP}\s*{_NUM})*"
_CHAIN = re.compile(rf"(?<![\d.]){_SIDE}(?:\s*=\s*-?{_SIDE})+")
_EXPRESSION = re.compile(rf"(?<![\d.]){_NUM}(?:\s*{_OP}\s*{_NUM})+")
_TOKEN = re.compile(rf"{_NUM}|{_OP}")
_FINAL = re.compile(rf"answer\s+is\s*:?\s*\$?\s*(-?{_NUM})(?!\s*{_OP})", re.IGNORECASE)
_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{([^{}]*)\}")
_SYMBOLS = {"\\times": "*", "\\cdot": "*", "×": "*", "·": "*", "−": "-", "–": "-"}


@dataclass(frozen=True)
class Expr:
    """An expression as operands and the operators between them (+, -, *)."""

    operands: tuple[Fraction, ...]
    ops: tuple[str, ...]

    def value(self) -> Fraction:
        """The value with the usual precedence (* before + and -)."""
        terms, signs = [self.operands[0]], []
        for op, x in zip(self.ops, self.operands[1:], strict=True):
            if op == "*":
                terms[-1] *= x
            else:
                terms.append(x)
                signs.append(op)
        total = terms[0]
        for op, term in zip(signs, terms[1:], strict=True):
            total = total + term if op == "+" else total - term
        return total


def parse_expr(text: str) -> Expr:
    """ "3 + 2 * 4" -> Expr((3, 2, 4), ("+", "*")); a leading "-" negates the first operand."""
    tokens = _TOKEN.findall(text)
    negative = tokens[0] == "-"
    if negative:
        tokens = tokens[1:]
    operands = [Fraction(t) for t in tokens[0::2]]
    if negative:
        operands[0] = -operands[0]
    return Expr(tuple(operands), tuple(tokens[1::2]))


def _normalize(text: str) -> str:
    for symbol, plain in _SYMBOLS.items():
        text = text.replace(symbol, plain)
    return text


@lru_cache(maxsize=4096)
def parse_question(question: str) -> Expr | None:
    """The expression a question asks for ("Compute 7 + 5 + 3" -> 7 + 5 + 3): the last expression in the text
    that is not the left side of an equation; None when there is none."""
    text = _normalize(question)
    found = None
    for match in _EXPRESSION.finditer(text):
        if not text[match.end() :].lstrip().startswith("="):
            found = match
    return parse_expr(found.group(0)) if found else None


def _same(span: Expr, side: Expr) -> bool:
    if span == side:
        return True
    commutative = set(span.ops) == set(side.ops) and set(span.ops) in ({"+"}, {"*"})
    return commutative and sorted(span.operands) == sorted(side.operands)


def _reducible(state: Expr, i: int, k: int) -> bool:
    """Can operands i..i+k-1 of `state` be replaced by their value without changing the state's value?"""
    span_ops = state.ops[i : i + k - 1]
    if all(op == "*" for op in span_ops):
        return True
    before = state.ops[i - 1] if i > 0 else None
    after = state.ops[i + k - 1] if i + k - 1 < len(state.ops) else None
    return before in (None, "+") and after != "*"


def match_span(state: Expr, side: Expr) -> int | None:
    """The start of a reducible span of `state` that `side` writes out, or None."""
    k = len(side.operands)
    for i in range(len(state.operands) - k + 1):
        span = Expr(state.operands[i : i + k], state.ops[i : i + k - 1])
        if _same(span, side) and _reducible(state, i, k):
            return i
    return None


def _reduce(state: Expr, i: int, k: int, value: Fraction) -> Expr:
    return Expr(
        state.operands[:i] + (value,) + state.operands[i + k :],
        state.ops[:i] + state.ops[i + k - 1 :],
    )


def _apply(sides: list[Expr], value: Fraction, history: list[Expr]) -> float:
    """Score a true claim against the state history, appending the new state when it advances."""
    current = history[-1]
    for side in sides:
        i = match_span(current, side)
        if i is not None:
            history.append(_reduce(current, i, len(side.operands), value))
            return CORRECT
    for earlier in reversed(history[:-1]):
        for side in sides:
            i = match_span(earlier, side)
            if i is not None:
                reduced = _reduce(earlier, i, len(side.operands), value)
                if len(reduced.operands) < len(current.operands):
                    history.append(reduced)
                    return CORRECT
                return RESTATED
    return WRONG


def _final_answer(step: str) -> Fraction | str | None:
    """The step's final answer as a number, "" when it gives a non-numeric one, None when it gives none."""
    boxed = last_boxed(step)
    if boxed is not None:
        text = _normalize(boxed)
        if re.fullmatch(rf"\s*-?{_SIDE}\s*", text):
            return parse_expr(text).value()
        return ""
    match = _FINAL.search(step)
    return Fraction(match.group(1)) if match else None


def score_step(step: str, history: list[Expr]) -> float:
    """Score one step given the states so far (`history[-1]` is current; empty = question not parsed)."""
    text = _BOX.sub(r"\1", _normalize(step))
    verdicts: list[float] = []
    for match in _CHAIN.finditer(text):
        sides = [parse_expr(s) for s in match.group(0).split("=")]
        values = [s.value() for s in sides]
        if any(v != values[0] for v in values):
            verdicts.append(WRONG)
            continue
        compound = [s for s in sides if len(s.operands) >= 2]
        if compound:
            verdicts.append(_apply(compound, values[0], history) if history else UNCHECKED)
    answer = _final_answer(step)
    if answer is not None:
        if not history:
            verdicts.append(UNCHECKED)
        else:
            verdicts.append(CORRECT if answer != "" and answer == history[-1].value() else WRONG)
    return min(verdicts) if verdicts else UNCHECKED


def score_steps(question: str, steps: Sequence[str]) -> list[float]:
    """Per-step scores of one candidate solution of `question` (see the module docstring)."""
    start = parse_question(question)
    history = [start] if start is not None else []
    return [score_step(step, history) for step in steps]


class RuleArithmeticPRM:
    """PRMScorer over `score_steps`. No model: `param_count` is 0 and every score costs 0 tokens."""

    param_count = 0

    def score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        return [StepScores(tuple(score_steps(r.question, r.steps)), tokens=0) for r in requests]


def build(prm_cfg: PRMConfig, engine_cfg: EngineConfig, policy: Any = None) -> RuleArithmeticPRM:
    """The PRM_KINDS builder for kind "rule_arithmetic" (no options, no engine)."""
    return RuleArithmeticPRM()
