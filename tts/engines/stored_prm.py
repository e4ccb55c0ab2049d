"""The `stored` PRM kind: scores that come with imported sample pools (tts.runtime.pools_io), never computed here.

Why: a pool imported from elsewhere (search-and-learn's published completions) carries its verifier's step scores;
its cells name this kind so that the driver, finding the stored pool, derives them without any scorer. Asking it
to score (a pool that is not stored) is an error that says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tts.engines.protocols import ScoreRequest, StepScores


class StoredScoresPRM:
    """A PRMScorer that refuses: its scores are in the imported pool."""

    param_count = 0

    def score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        raise RuntimeError(
            "prm.kind stored: these scores come with an imported pool (tts pools import); this cell's pool is "
            "not stored in the folder, so nothing can score it"
        )


def build(prm_cfg: Any, engine_cfg: Any = None, policy: Any = None) -> StoredScoresPRM:
    return StoredScoresPRM()
