"""StepScores accounting: a PRM is charged for the tokens it computed, not for prefixes its cache served."""

from __future__ import annotations

import pytest

from tts.data.problem import Problem
from tts.engines.protocols import ScoreRequest, StepScores
from tts.strategies import STRATEGIES
from tts.strategies.base import SamplingSettings
from tts.testing.fake_engines import FakePolicy, FakePRM

SAMPLING = SamplingSettings(temperature=0.8, max_tokens=64, step_max_tokens=16, aggregation="min")
PROBLEMS = [
    Problem(id="two-op", question="5 * 2 + 1", answer="11", dataset="t"),
    Problem(id="four-op", question="9 - 3 + 8 * 2 - 5", answer="23", dataset="t"),
]


def test_computed_tokens_leave_out_the_cached_ones() -> None:
    assert StepScores((0.5,), tokens=10, cached_tokens=4).computed_tokens == 6
    assert StepScores((0.5,), tokens=3, cached_tokens=5).computed_tokens == 0  # never negative


def test_fake_prm_prefix_cache_reports_the_longest_scored_prefix() -> None:
    prm = FakePRM(prefix_cache=True)
    first = prm.score([ScoreRequest("1 + 2 + 3", ("1 + 2 = 3.",))])[0]
    longer = prm.score([ScoreRequest("1 + 2 + 3", ("1 + 2 = 3.", "3 + 3 = 6."))])[0]
    assert first.cached_tokens == 0 and longer.cached_tokens == first.tokens < longer.tokens


@pytest.mark.parametrize("name", ["beam_search", "lookahead"])
def test_search_charges_the_prm_for_uncached_tokens_only(name: str) -> None:
    """Step search re-scores every beam's whole prefix at each step: with a prefix cache only the new step is
    computed, so the charged PRM tokens fall while the scores (and so the search) stay the same."""

    def go(cache: bool):
        prm = FakePRM(prefix_cache=cache)
        out = STRATEGIES.get(name).run(
            PROBLEMS,
            FakePolicy(seed=3, error_rate=0.3),
            prm,
            n=4,
            sampling=SAMPLING,
            seed=0,
            beam_width=2,
            max_steps=8,
        )
        return out, prm.tokens

    plain, read_plain = go(False)
    cached, read_cached = go(True)
    assert [r.text for r in plain] == [r.text for r in cached]
    assert read_plain == read_cached  # the PRM read the same tokens
    assert sum(r.prm_tokens for r in plain) == read_plain
    assert 0 < sum(r.prm_tokens for r in cached) < read_cached
