"""How per-step PRM scores become one solution score: last / min / prod / mean.

Why one function: best-of-N, weighted best-of-N, beam search, DVTS and the offline estimators must rank
candidates the same way, so every caller goes through `aggregate`. An empty step list scores 0.0 (a candidate
with no steps has nothing the verifier vouched for).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

AGGREGATIONS = ("last", "min", "prod", "mean")


def aggregate(scores: Sequence[float], how: str) -> float:
    """Aggregate per-step scores with `how` in AGGREGATIONS."""
    if how not in AGGREGATIONS:
        raise ValueError(f"aggregation: unknown value {how!r}; allowed: {', '.join(AGGREGATIONS)}")
    if not scores:
        return 0.0
    if how == "last":
        return float(scores[-1])
    if how == "min":
        return float(min(scores))
    if how == "prod":
        return float(math.prod(scores))
    return float(sum(scores) / len(scores))
