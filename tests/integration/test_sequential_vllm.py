"""sequential_revision through the real vLLM engines (the tiny random Qwen2 policy and PRM of tests/fixtures).

Mechanics only (the tiny model writes noise): the conversation vLLM is given carries exactly the last k attempts
of the chain, P x L generations are spent and recorded, one generate call per round, and the token accounting
is what the engine reported, including the prefix cache serving the previous round's prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from tts.data.problem import Problem
from tts.engines.protocols import Generation, GenerationRequest, ScoreRequest, StepScores
from tts.strategies.base import SamplingSettings
from tts.strategies.sequential_revision import INSTRUCTION, run

pytestmark = pytest.mark.integration

SAMPLING = SamplingSettings(temperature=1.0, max_tokens=24, aggregation="min")
PROBLEMS = [
    Problem(id="s1", question="Compute 3 + 4", answer="7", dataset="t"),
    # long enough to fill whole KV blocks, so the prefix cache has something to serve
    Problem(
        id="s2", question="Compute " + " + ".join(str(k) for k in range(1, 120)), answer="7140", dataset="t"
    ),
]


@dataclass
class Recorded:
    """Forwards to the real engine and keeps what crossed the protocol (not a fake)."""

    inner: object
    calls: list[list[GenerationRequest]] = field(default_factory=list)
    outputs: list[list[Generation]] = field(default_factory=list)
    scored: list[StepScores] = field(default_factory=list)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        out = self.inner.generate(requests)
        self.calls.append(list(requests))
        self.outputs.append(out)
        return out

    def score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        out = self.inner.score(requests)
        self.scored += out
        return out


@pytest.mark.parametrize("parallel,history", [(1, 4), (2, 1)])
def test_revisions_on_vllm_carry_the_last_k_attempts_and_spend_p_times_l(
    tiny_policy_engine, tiny_prm_engine, parallel, history
):
    policy, prm = Recorded(tiny_policy_engine), Recorded(tiny_prm_engine)
    n = 4
    results = run(PROBLEMS, policy, prm, n=n, sampling=SAMPLING, seed=0, parallel=parallel, history=history)
    rounds = n // parallel
    assert len(policy.calls) == rounds  # one generate call per round, all chains of both problems
    completions = sum(len(g.completions) for out in policy.outputs for g in out)
    assert completions == n * len(PROBLEMS)  # P x L generations per problem, no more
    for i, result in enumerate(results):
        assert result.generations == n == len(result.candidates)
        chains: dict[int, list[str]] = {}
        for c, (k, _) in zip(result.candidates, result.extra["chains"], strict=True):
            chains.setdefault(k, []).append(c.text)
        for r in range(1, rounds):
            for k, request in enumerate(policy.calls[r][i * parallel : (i + 1) * parallel]):
                kept = chains[k][max(0, r - history) : r]
                turns = request.prompt.history
                assert [m.content for m in turns[0::2]] == kept and all(
                    m.role == "assistant" for m in turns[0::2]
                )
                assert [m.content for m in turns[1::2]] == [INSTRUCTION] * len(kept)
                rendered = tiny_policy_engine.render(request.prompt)
                assert rendered.count(INSTRUCTION) == len(kept)
                assert all(text in rendered for text in kept)
    # accounting: what the engine reported, per problem, nothing else
    for i, result in enumerate(results):
        mine = [out[j] for out in policy.outputs for j in _rows(out, i, parallel, len(PROBLEMS))]
        assert result.tokens_in == sum(g.prompt_tokens for g in mine)
        assert result.tokens_cached == sum(g.cached_prompt_tokens for g in mine)
        assert result.tokens_out == sum(c.tokens_out for g in mine for c in g.completions)
        assert result.tokens_out == sum(c.tokens_out for c in result.candidates)
    assert sum(r.prm_tokens for r in results) == sum(s.computed_tokens for s in prm.scored)
    if history >= rounds - 1:  # every round's prompt extends the last one: the prefix cache serves it
        later = [out[j] for out in policy.outputs[1:] for j in _rows(out, 1, parallel, len(PROBLEMS))]
        assert all(g.cached_prompt_tokens > 0 for g in later)


def _rows(out: list[Generation], problem: int, parallel: int, problems: int) -> range:
    """The generations of `problem` in one round: one request per problem in round 1, P afterwards."""
    per = len(out) // problems
    return range(problem * per, (problem + 1) * per)
