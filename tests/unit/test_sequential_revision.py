"""sequential_revision: P chains of L = N / P attempts, each attempt seeing the last k of its chain; lockstep
rounds; exact accounting; the three final selections; config rejects."""

from __future__ import annotations

import pytest

from tts.data.problem import Problem
from tts.engines.protocols import Conversation, Message
from tts.schemas import ConfigError
from tts.strategies import STRATEGIES
from tts.strategies.base import SamplingSettings
from tts.strategies.sequential_revision import (
    INSTRUCTION,
    SequentialRevisionConfig,
    revision_history,
    run,
    sequential_ratio,
)
from tts.strategies.voting import answer_groups, weighted_choice
from tts.testing.fake_engines import FakePolicy, FakePRM

SAMPLING = SamplingSettings(temperature=0.8, max_tokens=64)


@pytest.fixture(scope="module")
def problems():
    questions = ["3 + 4", "5 * 2 + 1", "9 - 3 + 8 * 2 - 5", "7 - 2 - 1"]
    return [Problem(id=f"p{i}", question=q, answer="0", dataset="t") for i, q in enumerate(questions)]


def _run(problems, policy, prm, **kw):
    kw.setdefault("n", 8)
    return run(problems, policy, prm, sampling=SAMPLING, seed=0, **kw)


def test_history_is_the_last_k_attempts_each_followed_by_the_instruction() -> None:
    assert revision_history([], 4, "fix") == ()
    assert revision_history(["a", "b", "c"], 0, "fix") == ()
    assert revision_history(["a", "b", "c"], 2, "fix") == (
        Message("assistant", "b"),
        Message("user", "fix"),
        Message("assistant", "c"),
        Message("user", "fix"),
    )


@pytest.mark.parametrize("parallel,history", [(1, 4), (2, 2), (4, 1), (8, 4), (2, 0)])
def test_each_attempt_sees_exactly_the_last_k_attempts_of_its_own_chain(problems, parallel, history) -> None:
    policy = FakePolicy(seed=3, record=True)
    results = _run(problems, policy, FakePRM(), parallel=parallel, history=history)
    rounds = 8 // parallel
    assert policy.calls == rounds  # one generate call per round for every chain of every problem
    first = policy.history[0]
    assert [r.n for r in first] == [parallel] * len(problems)  # the chains share their first prompt
    assert all(r.prompt == Conversation(p.question) for r, p in zip(first, problems, strict=True))
    for i, (problem, result) in enumerate(zip(problems, results, strict=True)):
        chains: dict[int, list[str]] = {}
        for c, (k, j) in zip(result.candidates, result.extra["chains"], strict=True):
            assert len(chains.setdefault(k, [])) == j  # attempts listed in order within each chain
            chains[k].append(c.text)
        assert sorted(chains) == list(range(parallel)) and all(len(a) == rounds for a in chains.values())
        for r in range(1, rounds):
            asked = policy.history[r][i * parallel : (i + 1) * parallel]
            for k, request in enumerate(asked):
                assert request.n == 1 and request.prompt.question == problem.question
                kept = chains[k][max(0, r - history) : r] if history else []
                expected = tuple(
                    m for a in kept for m in (Message("assistant", a), Message("user", INSTRUCTION))
                )
                assert request.prompt.history == expected


def test_budget_is_p_times_l_and_accounting_is_a_hand_count(problems) -> None:
    policy, prm = FakePolicy(seed=1, prefix_cache=True), FakePRM()
    results = _run(problems, policy, prm, parallel=2, history=4)
    assert [r.generations for r in results] == [8] * len(problems)
    assert all(len(r.candidates) == 8 for r in results)
    assert sum(r.tokens_in for r in results) == policy.prompt_tokens
    assert (
        sum(r.tokens_cached for r in results) == policy.cached_prompt_tokens > 0
    )  # rounds extend the prompt
    assert sum(r.tokens_out for r in results) == policy.tokens_out
    assert sum(r.prm_tokens for r in results) == prm.tokens
    assert prm.calls == 4  # one PRM call per round, for the new attempts


def test_majority_reads_no_scores_and_weighted_is_the_shared_vote(problems) -> None:
    prm = FakePRM()
    majority = _run(problems, FakePolicy(seed=2), prm, parallel=4, final_selection="majority")
    assert prm.calls == 0 and all(r.prm_tokens == 0 for r in majority)
    weighted = _run(problems, FakePolicy(seed=2), FakePRM(), parallel=4, final_selection="weighted")
    for r in weighted:
        groups = answer_groups([c.answer for c in r.candidates])
        assert r.extra["chosen"] == weighted_choice(groups, [c.score for c in r.candidates])
        assert r.answer == r.candidates[r.extra["chosen"]].answer
    argmax = _run(problems, FakePolicy(seed=2), FakePRM(), parallel=4, final_selection="argmax")
    for r in argmax:
        assert r.candidates[r.extra["chosen"]].score == max(c.score for c in r.candidates)


def test_revisions_differ_from_the_attempt_they_revise(problems) -> None:
    results = _run(problems, FakePolicy(seed=5, error_rate=0.5), FakePRM(), parallel=1)
    assert any(len({c.text for c in r.candidates}) > 1 for r in results)


def test_ratio() -> None:
    assert (
        sequential_ratio(16, 1) == 16 and sequential_ratio(16, 4) == 1 and sequential_ratio(16, 16) == 1 / 16
    )


@pytest.mark.parametrize(
    "kw,field",
    [
        ({"parallel": 3}, "strategy.parallel"),
        ({"parallel": 0}, "strategy.parallel"),
        ({"history": -1}, "strategy.history"),
        ({"instruction": " "}, "strategy.instruction"),
        ({"final_selection": "best"}, "strategy.final_selection"),
        (
            {"selection_scope": "chain"},
            "strategy.selection_scope: invalid value 'chain'; allowed: hierarchical",
        ),
    ],
)
def test_config_rejects_name_the_field(kw, field) -> None:
    with pytest.raises(ConfigError, match=field):
        SequentialRevisionConfig(**kw).check(8)


def test_entry_is_sequential_and_needs_a_verifier_only_to_rank() -> None:
    entry = STRATEGIES.get("sequential_revision")
    assert entry.traits.sequential and not entry.traits.pool_based and not entry.traits.tree
    assert SequentialRevisionConfig().verifier_needed()
    assert not SequentialRevisionConfig(final_selection="majority").verifier_needed()


def test_sampling_knobs_reach_every_request(problems) -> None:
    policy = FakePolicy(seed=0, record=True)
    sampling = SamplingSettings(temperature=0.6, top_p=0.95, top_k=20, min_p=0.05, max_tokens=32)
    run(problems, policy, FakePRM(), n=4, sampling=sampling, seed=0, parallel=2)
    asked = [r for call in policy.history for r in call]
    assert {(r.temperature, r.top_p, r.top_k, r.min_p, r.max_tokens) for r in asked} == {
        (0.6, 0.95, 20, 0.05, 32)
    }
