"""The `none` PRM: every step scores 1.0, at no cost.

Why it exists: majority vote and pure sampling sweeps need no verifier, but every strategy takes a PRMScorer;
with this one the pool and the results keep their usual shape (step scores, PRM tokens = 0, PRM FLOPs = 0)
instead of special-casing "no PRM" everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tts.engines.protocols import ScoreRequest, StepScores

if TYPE_CHECKING:
    from tts.schemas import EngineConfig, PRMConfig


class NonePRM:
    """PRMScorer that vouches for every step (score 1.0), reads nothing (0 tokens) and has no parameters."""

    param_count = 0

    def score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        return [StepScores(tuple(1.0 for _ in r.steps), tokens=0) for r in requests]


def build(prm_cfg: PRMConfig, engine_cfg: EngineConfig, policy: Any = None) -> NonePRM:
    """The PRM_KINDS builder for kind "none"."""
    return NonePRM()
