"""Re-selecting a search or revision cell's answer from its stored final candidates, without regenerating.

Why: Liu et al. and Snell et al. report the same searches under several answer selections (PRM-max, PRM-
weighted vote, majority). A cell that has no sample pool (beam search, DVTS, lookahead, particle filtering,
REBASE, sequential revision) stores its final candidates in the `candidate_answers` / `candidate_scores` /
`candidate_correct` list columns (tts.results_schema), in the order the strategy ranked them. Picking from them
with the strategies' own rule (tts.strategies.voting.final_choice) gives exactly the answer the strategy would
have returned with that `final_selection`, so one search cell serves every selection. A sequential-revision cell
that selects hierarchically (`config.strategy.selection_scope` = hierarchical, Snell et al.: within each chain,
then across chains) stores its attempts chain by chain, L = n / parallel each, and is re-picked the same way
(tts.strategies.sequential_revision.hierarchical_choice). The scores are the
candidates' aggregated PRM scores under the cell's `prm.aggregation`; another aggregation needs the step
scores, which only pool cells store.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from tts.strategies.sequential_revision import hierarchical_choice
from tts.strategies.voting import FINAL_SELECTIONS, final_choice

CANDIDATE_COLUMNS = ("candidate_answers", "candidate_scores", "candidate_correct")
SCOPE, PARALLEL = "config.strategy.selection_scope", "config.strategy.parallel"


def reselected_correct(
    answers: Sequence[str | None],
    scores: Sequence[float],
    correct: Sequence[bool],
    selection: str,
    chain_length: int | None = None,
) -> bool:
    """Whether the candidate `selection` picks is correct (no candidate: not correct). `chain_length`: the
    candidates are chains of that many attempts each, picked hierarchically (None: all at once)."""
    if not len(answers):
        return False
    floats = [float(s) for s in scores]
    if chain_length:
        chains = [i // chain_length for i in range(len(answers))]
        return bool(correct[hierarchical_choice(list(answers), floats, chains, selection)])
    return bool(correct[final_choice(list(answers), floats, selection)])


def _chain_lengths(rows: pd.DataFrame) -> list[int | None]:
    """Per row: the attempts per chain when the row's cell selects hierarchically, else None."""
    if SCOPE not in rows.columns or PARALLEL not in rows.columns or "n" not in rows.columns:
        return [None] * len(rows)
    return [
        int(n) // int(p) if scope == "hierarchical" and p and n else None
        for scope, p, n in zip(rows[SCOPE], rows[PARALLEL], rows["n"], strict=True)
    ]


def reselect(rows: pd.DataFrame, selection: str) -> pd.Series:
    """Per row of a cell's results (e.g. `pd.read_parquet` of a cell file): 1.0 / 0.0 whether the answer that
    `selection` (argmax | weighted | majority) picks from its stored candidates is correct; NaN for rows
    without stored candidates (pool cells, whose samples are stored instead).

    Raises ValueError naming the column when the frame has no candidate columns, and the selection when it is
    not one of FINAL_SELECTIONS."""
    if selection not in FINAL_SELECTIONS:
        raise ValueError(
            f"selection: invalid value {selection!r}; choose one of {', '.join(FINAL_SELECTIONS)}"
        )
    missing = [c for c in CANDIDATE_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(
            f"{missing[0]}: column missing; re-selection needs the candidate_* columns that cells without a "
            "sample pool store (results schema >= 2)"
        )
    out = np.full(len(rows), np.nan)
    columns = (*(rows[c] for c in CANDIDATE_COLUMNS), _chain_lengths(rows))
    for i, (answers, scores, correct, length) in enumerate(zip(*columns, strict=True)):
        if answers is None or scores is None or correct is None:
            continue
        out[i] = float(reselected_correct(list(answers), list(scores), list(correct), selection, length))
    return pd.Series(out, index=rows.index, name=f"correct_{selection}")
