"""Incremental PRM scoring on the real tiny vLLM PRM (tts.engines.vllm_prm): scores equal full rescoring.

Tree search re-scores each beam's whole prefix every step. The pooling PRM reads vLLM's prefix cache for it and
takes the cached steps' scores from what it computed before (tts.engines.step_memo). Checked here: on the same
beams, incremental and full scoring agree to 1e-4; the cache really serves tokens (whole 128-token KV blocks on
CPU, hence a question of a few hundred tokens); PRM tokens charged are exactly those computed; a cached step
with no remembered score is re-scored in full and charged for both reads; and a beam search through the real
tiny policy gets the scores full rescoring gives for every text it sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from tts.data.problem import Problem
from tts.engines.protocols import ScoreRequest, StepScores
from tts.strategies import STRATEGIES
from tts.strategies.base import SamplingSettings

pytestmark = pytest.mark.integration
pytest.importorskip("vllm")

LONG = "Compute " + " + ".join(str(i) for i in range(1, 120))  # several KV blocks of shared prefix
TREE = {  # step texts of a small tree: two first steps, each with two children, one grandchild each
    (): ("1 + 2 = 3.", "1 + 2 = 4."),
    (0,): ("3 + 3 = 6.", "3 + 3 = 7."),
    (1,): ("4 + 3 = 7.", "4 + 3 = 8."),
}


def _levels() -> list[list[ScoreRequest]]:
    """The beams of TREE level by level (as search scores them: each beam's whole prefix, every step)."""
    level1 = [ScoreRequest(LONG, (s,)) for s in TREE[()]]
    level2 = [ScoreRequest(LONG, (TREE[()][i], s)) for i in (0, 1) for s in TREE[(i,)]]
    level3 = [ScoreRequest(LONG, (*r.steps, "The answer is \\boxed{7}.")) for r in level2]
    return [level1, level2, level3]


def _full(prm, requests: Sequence[ScoreRequest]) -> list[StepScores]:
    prm.incremental = False
    try:
        return prm.score(requests)
    finally:
        prm.incremental = True


def test_incremental_equals_full_and_charges_only_computed_tokens(tiny_prm_engine):
    prm = tiny_prm_engine
    prm.memo.clear()
    incremental = [prm.score(level) for level in _levels()]
    full = [_full(prm, level) for level in _levels()]
    for inc_level, full_level in zip(incremental, full, strict=True):
        for inc, ref in zip(inc_level, full_level, strict=True):
            assert len(inc.scores) == len(ref.scores)
            assert list(inc.scores) == pytest.approx(list(ref.scores), abs=1e-4)
            assert inc.tokens == ref.tokens  # same text read; only what was computed differs
            assert ref.cached_tokens == 0  # full scoring never reads the cache
            assert 0 <= inc.cached_tokens < inc.tokens
            assert inc.computed_tokens == inc.tokens - inc.cached_tokens
    deeper = [s for level in incremental[1:] for s in level]
    assert all(s.cached_tokens >= 128 for s in deeper)  # the shared prefix came from the cache
    computed = sum(s.computed_tokens for level in incremental for s in level)
    read = sum(s.tokens for level in full for s in level)
    assert computed < read / 2


def test_cached_step_without_a_remembered_score_is_rescored_in_full(tiny_prm_engine):
    prm = tiny_prm_engine
    steps = tuple(f"{i} + 1 = {i + 1}." for i in range(1, 40))  # step tags well inside the cached blocks
    req = ScoreRequest("Compute 1 + 1 + 1", steps)
    (ref,) = _full(prm, [req])  # fills vLLM's prefix cache, not the memo
    prm.memo.clear()
    (got,) = prm.score([req])
    assert list(got.scores) == pytest.approx(list(ref.scores), abs=1e-4)
    assert got.tokens == 2 * ref.tokens  # read twice: once from the cache, once in full
    assert got.cached_tokens >= 128 and got.computed_tokens == got.tokens - got.cached_tokens
    (again,) = prm.score([req])  # now remembered: the cached prefix costs nothing
    assert list(again.scores) == pytest.approx(list(ref.scores), abs=1e-4)
    assert again.tokens == ref.tokens and again.cached_tokens >= 128


@dataclass
class Recording:
    """Forwards to the real PRM and keeps every request and its scores (not a fake)."""

    inner: object
    seen: list[tuple[ScoreRequest, StepScores]] = field(default_factory=list)

    def score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        out = self.inner.score(requests)
        self.seen.extend(zip(requests, out, strict=True))
        return out


def test_beam_search_scores_equal_full_rescoring_of_its_beams(tiny_policy_engine, tiny_prm_engine):
    prm = Recording(tiny_prm_engine)
    tiny_prm_engine.memo.clear()
    problems = [Problem(id="long", question=LONG, answer="7140", dataset="t")]
    sampling = SamplingSettings(temperature=1.0, max_tokens=40, step_max_tokens=8, aggregation="min")
    results = STRATEGIES.get("beam_search").run(
        problems, tiny_policy_engine, prm, n=4, sampling=sampling, seed=0, beam_width=2, max_steps=4
    )
    assert len(results) == 1 and len(prm.seen) >= 2
    requests = [r for r, _ in prm.seen]
    full = _full(tiny_prm_engine, requests)
    for (_, inc), ref in zip(prm.seen, full, strict=True):
        assert list(inc.scores) == pytest.approx(list(ref.scores), abs=1e-4)
    assert results[0].prm_tokens == sum(s.computed_tokens for _, s in prm.seen)
    assert sum(s.computed_tokens for _, s in prm.seen) < sum(s.tokens for s in full)
