"""Every strategy through the real vLLM engines (tiny random Qwen2 policy + tiny Qwen2.5-Math-PRM-format PRM).

The tiny model writes noise, so these tests assert mechanics: one result per problem, lockstep engine calls,
scores in [0, 1] with one per step, finish reasons, and token accounting that adds up to what the engines
reported. Budgets are small (N = 4, short steps) to keep the wall time to seconds once the engines are up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from tts.data.problem import Problem
from tts.engines.protocols import Generation, GenerationRequest, ScoreRequest, StepScores
from tts.strategies import STRATEGIES
from tts.strategies.base import SamplingSettings
from tts.strategies.pool import build_pool
from tts.testing.pools import expected_correct, select

POOL_STRATEGIES = tuple(n for n, e in STRATEGIES.items() if e.traits.pool_based)

pytestmark = pytest.mark.integration

SAMPLING = SamplingSettings(temperature=1.0, max_tokens=40, step_max_tokens=10, aggregation="min")
PROBLEMS = [
    Problem(id="i1", question="Compute 3 + 4", answer="7", dataset="t"),
    Problem(id="i2", question="Compute 12 + 5 - 3", answer="14", dataset="t"),
]
FINISH = {"eos", "stop_string", "length"}


@dataclass
class Counted:
    """Counts what crosses the protocols: calls, prompt and generated tokens, PRM tokens (not a fake: it
    forwards to the real engine)."""

    inner: object
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    prm_tokens: int = 0  # computed: read minus prefix-cached (what FLOPs are charged on)
    prm_read: int = 0

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        self.calls += 1
        out = self.inner.generate(requests)
        assert [len(g.completions) for g in out] == [r.n for r in requests]
        self.tokens_in += sum(g.prompt_tokens for g in out)
        self.tokens_out += sum(c.tokens_out for g in out for c in g.completions)
        return out

    def score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        self.calls += 1
        out = self.inner.score(requests)
        assert [len(s.scores) for s in out] == [len(r.steps) for r in requests]
        self.prm_tokens += sum(s.computed_tokens for s in out)
        self.prm_read += sum(s.tokens for s in out)
        return out


@pytest.fixture
def engines(tiny_policy_engine, tiny_prm_engine):
    return Counted(tiny_policy_engine), Counted(tiny_prm_engine)


def check_candidates(results, n, scored=True):
    assert [r.problem_id for r in results] == [p.id for p in PROBLEMS]
    for r in results:
        assert r.candidates and len(r.candidates) <= n
        for c in r.candidates:
            assert c.finish_reason in FINISH
            assert len(c.step_scores) == (len(c.steps) if scored else 0)  # majority vote scores nothing
            assert all(0.0 <= s <= 1.0 for s in c.step_scores)
            assert c.tokens_out <= SAMPLING.max_tokens


def test_sample_pool_on_vllm_one_generate_one_score_and_nested_budgets(engines):
    policy, prm = engines
    pools = build_pool(PROBLEMS, policy, prm, n_max=4, sampling=SAMPLING, seed=0)
    assert (policy.calls, prm.calls) == (1, 1)
    assert sum(p.prompt_tokens for p in pools) == policy.tokens_in
    assert sum(c.tokens_out for p in pools for c in p.candidates) == policy.tokens_out
    assert sum(sum(p.prm_tokens) for p in pools) == prm.prm_tokens > 0
    for pool in pools:
        assert pool.n_max == 4 and {c.finish_reason for c in pool.candidates} <= FINISH
        for strategy in POOL_STRATEGIES:
            for n in (1, 2, 4):
                result = select(pool, strategy, n, "min")
                assert result.generations == n and len(result.candidates) == n
                assert result.text in {c.text for c in pool.candidates[:n]}
            correct = [c.answer == "7" for c in pool.candidates]
            est = expected_correct(pool, strategy, 2, "min", correct)
            assert 0.0 <= est.low <= est.value <= est.high <= 1.0


@pytest.mark.parametrize("name", sorted(POOL_STRATEGIES))
def test_pool_strategy_runs_on_vllm(engines, name):
    policy, prm = engines
    entry = STRATEGIES.get(name)
    results = entry.run(PROBLEMS, policy, prm, n=2, sampling=SAMPLING, seed=0)
    check_candidates(results, 2, scored=entry.traits.needs_verifier)  # votes score nothing
    assert policy.calls == 1 and prm.calls == int(entry.traits.needs_verifier)
    assert sum(r.tokens_in for r in results) == policy.tokens_in
    assert sum(r.tokens_out for r in results) == policy.tokens_out
    assert sum(r.prm_tokens for r in results) == prm.prm_tokens


SEARCH_PARAMS = {
    "beam_search": {"beam_width": 2, "max_steps": 3},
    "dvts": {"beam_width": 2, "max_steps": 3},
    "lookahead": {"beam_width": 2, "max_steps": 3, "lookahead": 1},
    "particle_filtering": {"max_steps": 3},
    "rebase": {"max_steps": 3},
}


@pytest.mark.parametrize("name", sorted(SEARCH_PARAMS))
def test_search_strategy_runs_on_vllm_in_lockstep(engines, name):
    policy, prm = engines
    params = SEARCH_PARAMS[name]
    results = STRATEGIES.get(name).run(PROBLEMS, policy, prm, n=4, sampling=SAMPLING, seed=0, **params)
    check_candidates(results, 4)
    steps = max(r.extra["steps"] for r in results)
    assert 1 <= steps <= 3
    assert prm.calls == steps  # one PRM call per step for every beam of both problems
    if name == "lookahead":
        assert steps <= policy.calls <= 2 * steps  # the step, then one rollout step
    else:
        assert policy.calls == steps  # one generate call per step for every beam of both problems
    assert sum(r.tokens_in for r in results) == policy.tokens_in
    assert sum(r.tokens_out for r in results) == policy.tokens_out
    assert sum(r.prm_tokens for r in results) == prm.prm_tokens <= prm.prm_read
    for r in results:
        assert r.tokens_in > 0 and r.tokens_out > 0 and r.generations >= 1
        assert r.candidates[0].score == max(c.score for c in r.candidates)
        assert r.truncated == (r.candidates[0].finish_reason == "length")
