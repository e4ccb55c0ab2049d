"""Answer equivalence classes and the two voting rules (majority, PRM-weighted).

Why separate: `select` on a sample pool and the estimators over random subsets of it must vote the same way.
Answers are grouped with `tts.grading.answers_equivalent` (math-verify: "1/2" and "0.5" are one answer); each
class is labelled by the order of its first member, so the labels of the first n samples do not depend on the
samples after them (budgets nest). Ties between classes go to the class seen first, which over random subsets
in random order is a uniform choice among the tied classes: the estimators use exactly that.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from tts.grading import answers_equivalent


@lru_cache(maxsize=65536)
def _equivalent(a: str, b: str) -> bool:
    return answers_equivalent(a, b)


@lru_cache(maxsize=4096)
def _groups(answers: tuple[str | None, ...]) -> tuple[int | None, ...]:
    representatives: list[str] = []
    by_text: dict[str, int] = {}
    labels: list[int | None] = []
    for answer in answers:
        if answer is None or not answer.strip():
            labels.append(None)
            continue
        key = answer.strip()
        if key not in by_text:
            match = next((i for i, rep in enumerate(representatives) if _equivalent(rep, key)), None)
            if match is None:
                representatives.append(key)
                match = len(representatives) - 1
            by_text[key] = match
        labels.append(by_text[key])
    return tuple(labels)


def answer_groups(answers: Sequence[str | None]) -> tuple[int | None, ...]:
    """One label per answer: 0, 1, 2, ... by first appearance of its equivalence class; None for no answer."""
    return _groups(tuple(answers))


def majority_choice(groups: Sequence[int | None]) -> int | None:
    """Index of the first member of the class with the most members (ties: the class seen first); None when no
    sample has an answer."""
    counts: dict[int, int] = {}
    first: dict[int, int] = {}
    for i, g in enumerate(groups):
        if g is not None:
            counts[g] = counts.get(g, 0) + 1
            first.setdefault(g, i)
    if not counts:
        return None
    winner = min(counts, key=lambda g: (-counts[g], first[g]))
    return first[winner]


def weighted_choice(groups: Sequence[int | None], weights: Sequence[float]) -> int | None:
    """Index of the highest-weight member of the class with the largest total weight (Li et al. 2023's weighted
    vote; ties: the class seen first, then the member seen first); None when no sample has an answer."""
    if len(groups) != len(weights):
        raise ValueError(
            f"weights: {len(weights)} values for {len(groups)} groups; give one weight per sample"
        )
    totals: dict[int, float] = {}
    first: dict[int, int] = {}
    best: dict[int, int] = {}
    for i, (g, w) in enumerate(zip(groups, weights, strict=True)):
        if g is None:
            continue
        totals[g] = totals.get(g, 0.0) + w
        first.setdefault(g, i)
        if g not in best or w > weights[best[g]]:
            best[g] = i
    if not totals:
        return None
    winner = min(totals, key=lambda g: (-totals[g], first[g]))
    return best[winner]


def best_choice(weights: Sequence[float]) -> int:
    """Index of the highest weight (ties: the first). Best-of-N ranks every sample, answer or not."""
    if not weights:
        raise ValueError("weights: empty; best-of-N needs at least one sample")
    return max(range(len(weights)), key=lambda i: (weights[i], -i))


FINAL_SELECTIONS = ("argmax", "weighted", "majority")  # how a search or revision chain's answer is picked


def final_choice(answers: Sequence[str | None], scores: Sequence[float], selection: str) -> int:
    """Index of the answer `selection` (FINAL_SELECTIONS) picks among a cell's final candidates: the best score
    (argmax), the PRM-weighted vote, or the majority; a vote with no answer at all falls back to the best score.

    The one rule for tree search and sequential revision."""
    if selection not in FINAL_SELECTIONS:
        raise ValueError(
            f"final_selection: invalid value {selection!r}; choose one of {', '.join(FINAL_SELECTIONS)}"
        )
    if selection == "argmax":
        return best_choice(scores)
    groups = answer_groups(answers)
    chosen = majority_choice(groups) if selection == "majority" else weighted_choice(groups, scores)
    return best_choice(scores) if chosen is None else chosen
