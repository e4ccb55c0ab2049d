"""budget_forcing on the fakes: the cap at B thinking tokens, exactly W extensions, lockstep rounds, token
accounting against a hand count, the opening of the thinking, majority over chains, budget, preset, rejects.

Planted markers: the fake writes "a op b = c." steps, so thinking_end="=" ends every thinking round after the
three words "a op b" (the fake's tokens are words); the continuation after "Wait" starts the same step again."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.fixtures.paths import SHARED
from tts.config import ConfigError, validate
from tts.data.problem import Problem
from tts.grid import compose, expand
from tts.runtime.plan import Problems, estimate_cost
from tts.strategies import STRATEGIES
from tts.strategies.base import SamplingSettings
from tts.strategies.budget_forcing import BudgetForcingConfig, run
from tts.testing.fake_engines import FakePolicy, FakePRM, count_tokens

SAMPLING = SamplingSettings(temperature=0.8, thinking_start="<think>\n", thinking_end="=")
ONE = [Problem(id="a", question="3 + 4 - 2", answer="5", dataset="t")]
PROBLEMS = [
    Problem(id="one-op", question="3 + 4", answer="7", dataset="t"),
    Problem(id="two-op", question="5 * 2 + 1", answer="11", dataset="t"),
    Problem(id="four-op", question="9 - 3 + 8 * 2 - 5", answer="23", dataset="t"),
]


def _run(problems, policy, n=2, sampling=SAMPLING, **kw):
    return run(problems, policy, FakePRM(), n=n, sampling=sampling, seed=0, **kw)


def test_extends_exactly_w_times_then_answers_hand_count() -> None:
    policy = FakePolicy(error_rate=0.0, record=True)
    (r,) = _run(ONE, policy, thinking_tokens=100, extensions=2)
    partials = [[(q.prompt.partial, q.n, q.max_tokens, q.stop) for q in call] for call in policy.history]
    assert partials == [  # one request for both chains (same state), the budget left, the marker as stop
        [("<think>\n", 2, 100, ("=",))],
        [("<think>\n3 + 4 Wait", 2, 97, ("=",))],
        [("<think>\n3 + 4 Wait 3 + 4 Wait", 2, 94, ("=",))],
        [("<think>\n3 + 4 Wait 3 + 4 Wait 3 + 4 =", 2, 1024, ())],  # end marker, then the answer
    ]
    assert r.extra["extensions"] == [2, 2] and r.extra["forced"] == [False, False]
    assert r.extra["thinking_tokens"] == [9, 9] and r.extra["answer_tokens"] == [14, 14]
    # prompts: "Question: 3 + 4 - 2 Solution: <think>" is 8 words, each round adds "3 + 4 Wait" (the last "3 + 4 =")
    assert r.tokens_in == 8 + 12 + 16 + 20 == policy.prompt_tokens
    assert r.tokens_out == 2 * (9 + 14) == policy.tokens_out
    assert r.generations == 2 and len(r.candidates) == 2
    assert r.answer == "5" and r.text.count("Wait") == 2
    assert all(c.tokens_out == 23 for c in r.candidates)


@pytest.mark.parametrize("w", [0, 1, 3])
def test_extension_count_is_w_when_the_model_keeps_ending(w: int) -> None:
    policy = FakePolicy(error_rate=0.0)
    (r,) = _run(ONE, policy, n=1, thinking_tokens=1000, extensions=w)
    assert r.extra["extensions"] == [w] and r.extra["thinking_tokens"] == [3 * (w + 1)]
    assert policy.calls == w + 2 and r.text.count("Wait") == w


def test_the_cap_forces_the_end_marker_at_b_tokens() -> None:
    """forced_answer_prefix "" writes the marker alone after a forced end (the rule before s1's)."""
    policy = FakePolicy(error_rate=0.0, record=True)
    (r,) = _run(ONE, policy, thinking_tokens=2, forced_answer_prefix="")
    assert [q.prompt.partial for call in policy.history for q in call] == ["<think>\n", "<think>\n3 +="]
    assert r.extra["forced"] == [True, True] and r.extra["thinking_tokens"] == [2, 2]
    assert r.tokens_out == 2 * (2 + 14) and r.tokens_in == 8 + 10


def test_a_forced_end_writes_final_answer_as_s1_and_a_natural_end_does_not() -> None:
    """s1 (vllm_causallms.py): cut by the cap, the thinking gets "\\n" (it does not end with one), the marker
    and "\\nFinal Answer:"; ended on its own, the marker alone. 13 words in the forced answer's prompt."""
    policy = FakePolicy(error_rate=0.0, record=True)
    (r,) = _run(ONE, policy, thinking_tokens=2)
    assert [q.prompt.partial for call in policy.history for q in call] == [
        "<think>\n",
        "<think>\n3 +\n=\nFinal Answer:",
    ]
    assert r.text.startswith("<think>\n3 +\n=\nFinal Answer:") and r.tokens_in == 8 + 13
    policy = FakePolicy(error_rate=0.0, record=True)
    (r,) = _run(ONE, policy, thinking_tokens=100)
    assert policy.history[-1][0].prompt.partial == "<think>\n3 + 4 =" and r.extra["forced"] == [False, False]


def test_the_cap_comes_before_the_remaining_extensions() -> None:
    """B = 7: two rounds of 3 tokens end at the marker (two extensions), the third is cut at 1 token."""
    policy = FakePolicy(error_rate=0.0, record=True)
    (r,) = _run(ONE, policy, thinking_tokens=7, extensions=5)
    assert [q.max_tokens for call in policy.history for q in call] == [7, 4, 1, 1024]
    assert r.extra["extensions"] == [2, 2] and r.extra["forced"] == [True, True]
    assert r.extra["thinking_tokens"] == [7, 7]


def test_lockstep_one_generate_call_per_round_for_every_chain_of_every_problem() -> None:
    policy = FakePolicy(seed=2, error_rate=0.3, record=True)
    results = _run(PROBLEMS, policy, n=3, thinking_tokens=100, extensions=2)
    assert policy.calls == 2 + 2  # W thinking rounds after the first, then the answers
    for call in policy.history:
        assert {q.prompt.question for q in call} == {p.question for p in PROBLEMS}
        assert sum(q.n for q in call) == 3 * len(PROBLEMS)
    assert [len(q) for q in policy.history[:1]] == [len(PROBLEMS)]  # round 1: one request per problem, n = 3
    assert sum(r.tokens_in for r in results) == policy.prompt_tokens
    assert sum(r.tokens_out for r in results) == policy.tokens_out
    assert all(r.extra["extensions"] == [2, 2, 2] for r in results)


def test_majority_over_chains_and_prefix_cache_counted() -> None:
    policy = FakePolicy(seed=5, error_rate=0.4, prefix_cache=True)
    results = _run(PROBLEMS, policy, n=5, thinking_tokens=100, extensions=1)
    for r in results:
        counts = Counter(c.answer for c in r.candidates if c.answer is not None)
        assert counts[r.answer] == max(counts.values())
        assert r.candidates[r.extra["chosen"]].answer == r.answer
    assert sum(r.tokens_cached for r in results) == policy.cached_prompt_tokens > 0


def test_no_opening_when_the_template_opens_the_thinking() -> None:
    """R1 distills: thinking_start is null, so the partial turn starts with the thinking itself."""
    policy = FakePolicy(error_rate=0.0, record=True)
    sampling = SamplingSettings(temperature=0.8, thinking_end="=")
    (r,) = _run(ONE, policy, sampling=sampling, thinking_tokens=100, extensions=1)
    assert [q.prompt.partial for call in policy.history for q in call] == [
        "",
        "3 + 4 Wait",
        "3 + 4 Wait 3 + 4 =",
    ]
    assert r.text.startswith("3 + 4 Wait")


def test_answer_prefix_is_written_after_the_marker() -> None:
    policy = FakePolicy(error_rate=0.0, record=True)
    _run(ONE, policy, thinking_tokens=2, answer_prefix="\nFinal Answer:", forced_answer_prefix="")
    assert policy.history[-1][0].prompt.partial == "<think>\n3 +=\nFinal Answer:"
    assert count_tokens(policy.render(policy.history[-1][0].prompt)) == 8 + 4


def test_run_without_an_end_marker_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"thinking_end"):
        _run(ONE, FakePolicy(), sampling=SamplingSettings())


def test_budget_is_n_chains_of_b_plus_answer_tokens() -> None:
    entry = STRATEGIES.get("budget_forcing")
    config = BudgetForcingConfig(thinking_tokens=100, answer_max_tokens=10)
    assert entry.budget(config, 4, 999, 9) == (4, 440)
    assert entry.traits.thinking and not entry.traits.pool_based


THINKING = ["strategy=budget_forcing", "policy=qwen3_1_7b_thinking", "prm=none"]


@pytest.mark.parametrize(
    ("overrides", "field", "hint"),
    [
        (["strategy.thinking_tokens=0"], "strategy.thinking_tokens", "positive integer"),
        (["strategy.answer_max_tokens=-3"], "strategy.answer_max_tokens", "positive integer"),
        (["strategy.extensions=-1"], "strategy.extensions", ">= 0"),
        (["strategy.extensions=2", "strategy.wait_text="], "strategy.wait_text", "Wait"),
        (["policy=zoo_policy_m"], "policy.thinking_end", "thinking policy"),
        (["policy.top_k=0"], "policy.top_k", "positive integer"),
        (["policy.min_p=1.5"], "policy.min_p", "[0, 1]"),
        (["policy.thinking_end="], "policy.thinking_end", "null"),
    ],
)
def test_config_rejects_name_field_value_and_fix(overrides: list[str], field: str, hint: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate(compose([*THINKING, *overrides]))
    msg = str(err.value)
    assert msg.startswith(f"{field}:") and hint in msg, msg


def test_thinking_policies_carry_their_markers_and_sampling() -> None:
    qwen = validate(compose(THINKING)).policy
    assert (qwen.thinking_start, qwen.thinking_end, qwen.top_k, qwen.min_p) == (
        "<think>\n",
        "</think>",
        20,
        0.0,
    )
    assert (qwen.temperature, qwen.top_p, qwen.max_tokens) == (0.6, 0.95, 32768)
    r1 = validate(compose([*THINKING, "policy=deepseek_r1_distill_qwen_7b"])).policy
    assert (r1.thinking_start, r1.thinking_end, r1.system_prompt, r1.top_k) == (None, "</think>", None, None)
    assert "\\boxed{}" in r1.prompt_template


def test_the_s1_preset_expands_and_its_dry_run_costs_come_from_the_budget(capsys, tmp_path) -> None:
    """Offline: MATH-500 from the local copy (the preset's aime24 axis would read the hub)."""
    from tts.cli import print_dry_run

    local = ["dataset=math500", f"dataset.path={SHARED / 'data' / 'math500.jsonl'}", "dataset.limit=3"]
    grid = expand(["+sweep=s1_budget_forcing", *local, f"results_dir={tmp_path}"])
    cells = list(grid.cells)
    assert len(cells) == 4 * (6 + 4 + 5)  # policies x (capped + extended + parallel majority)
    assert {c.config.engine.max_model_len for c in cells} == {40960}
    problems = Problems()
    problems.load(cells)
    for cell, cost in zip(cells, estimate_cost(cells, problems.for_cell), strict=True):
        s = cell.config.strategy
        if s.name == "budget_forcing":
            assert cost.tokens == cost.problems * (s.thinking_tokens + s.answer_max_tokens)
            assert s.thinking_tokens + s.answer_max_tokens < cell.config.engine.max_model_len
    print_dry_run(grid)
    assert "60 cells" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["budget_forcing", "majority_vote", "beam_search"])
def test_top_k_and_min_p_reach_every_request(name: str) -> None:
    policy = FakePolicy(error_rate=0.0, record=True)
    sampling = SamplingSettings(temperature=0.6, top_k=20, min_p=0.05, thinking_end="=", step_max_tokens=16)
    params = {"beam_width": 2, "max_steps": 4} if name == "beam_search" else {}
    STRATEGIES.get(name).run(ONE, policy, FakePRM(), n=2, sampling=sampling, seed=0, **params)
    requests = [q for call in policy.history for q in call]
    assert requests and all((q.top_k, q.min_p) == (20, 0.05) for q in requests)


def test_vllm_sampling_params_get_top_k_and_min_p_only_when_set() -> None:
    pytest.importorskip("vllm")
    from types import SimpleNamespace

    from tts.engines.protocols import GenerationRequest
    from tts.engines.vllm_policy import VLLMPolicy

    engine = SimpleNamespace(logprobs=False)
    plain = VLLMPolicy.sampling_params(engine, GenerationRequest("x", temperature=0.6))
    knobs = VLLMPolicy.sampling_params(engine, GenerationRequest("x", temperature=0.6, top_k=20, min_p=0.05))
    default = type(plain)()
    assert (plain.top_k, plain.min_p) == (default.top_k, default.min_p)  # the version's own "off"
    assert (knobs.top_k, knobs.min_p) == (20, 0.05)
