"""Every strategy against the fakes: selection logic, lockstep engine calls, budgets, token accounting; and
the fakes themselves (determinism, stop strings, n, max_tokens, picklable for Ray workers)."""

from __future__ import annotations

import pickle
from dataclasses import replace

import pytest

from tts.data.problem import Problem
from tts.engines.protocols import Conversation, GenerationRequest, PolicyEngine, PRMScorer, ScoreRequest
from tts.grading import grade
from tts.strategies import STRATEGIES
from tts.strategies.base import SamplingSettings
from tts.testing.fake_engines import FakePolicy, FakePRM

SAMPLING = SamplingSettings(temperature=0.8, max_tokens=64, step_max_tokens=16, aggregation="min")
PROBLEMS = [
    Problem(id="one-op", question="3 + 4", answer="7", dataset="t"),
    Problem(id="two-op", question="5 * 2 + 1", answer="11", dataset="t"),
    Problem(id="three-op", question="1 + 2 + 3 + 4", answer="10", dataset="t"),
    Problem(id="four-op", question="9 - 3 + 8 * 2 - 5", answer="23", dataset="t"),
]
SEARCH = ("beam_search", "dvts", "lookahead")


def run(name, policy, prm, n=8, problems=PROBLEMS, sampling=SAMPLING, **params):
    if name in SEARCH:
        params = {"beam_width": 2, "max_steps": 8, **params}
    if STRATEGIES.get(name).traits.thinking:  # planted markers: the fake writes "=" in every step
        sampling = replace(sampling, thinking_start="<think>\n", thinking_end="=")
    return STRATEGIES.get(name).run(problems, policy, prm, n=n, sampling=sampling, seed=0, **params)


def accuracy(results, problems=PROBLEMS):
    return sum(grade(p, r.text).correct for p, r in zip(problems, results, strict=True)) / len(problems)


# ------------------------------------------------------------------------------------------- fakes
def test_fakes_implement_the_protocols_and_pickle():
    policy, prm = FakePolicy(seed=1), FakePRM()
    assert isinstance(policy, PolicyEngine) and isinstance(prm, PRMScorer)
    clone = pickle.loads(pickle.dumps(policy))
    req = GenerationRequest(prompt=policy.render(Conversation("2 + 2 + 2")), n=3)
    assert clone.generate([req]) == policy.generate([req])


def test_fake_policy_is_deterministic_and_honours_stop_n_and_max_tokens():
    policy = FakePolicy(seed=1, error_rate=0.0)
    prompt = policy.render(Conversation("5 * 2 + 1"))
    [full] = policy.generate([GenerationRequest(prompt=prompt, n=2)])
    assert [c.text for c in full.completions] == [
        "5 * 2 = 10.\n\n10 + 1 = 11.\n\nThe answer is \\boxed{11}."
    ] * 2
    assert full.completions[0].finish_reason == "eos" and full.completions[0].tokens_out == 14
    [step] = policy.generate([GenerationRequest(prompt=prompt, stop=("\n\n",))])
    assert step.completions[0].text == "5 * 2 = 10." and step.completions[0].finish_reason == "stop_string"
    [nxt] = policy.generate([GenerationRequest(prompt=prompt + "5 * 2 = 10.\n\n", stop=("\n\n",))])
    assert nxt.completions[0].text == "10 + 1 = 11."  # continues from the partial solution
    [cut] = policy.generate([GenerationRequest(prompt=prompt, max_tokens=3)])
    assert cut.completions[0].text == "5 * 2" and cut.completions[0].finish_reason == "length"
    assert (policy.calls, policy.requests, policy.completions) == (4, 4, 5)


def test_fake_policy_errors_vary_by_sample_but_not_at_temperature_zero():
    policy = FakePolicy(seed=2, error_rate=0.5)
    prompt = policy.render(Conversation("1 + 2 + 3 + 4"))
    [hot] = policy.generate([GenerationRequest(prompt=prompt, n=16, temperature=1.0)])
    [cold] = policy.generate([GenerationRequest(prompt=prompt, n=4, temperature=0.0)])
    assert len({c.text for c in hot.completions}) > 4
    assert len({c.text for c in cold.completions}) == 1
    other = FakePolicy(seed=3, error_rate=0.5).generate([GenerationRequest(prompt=prompt, n=16)])[0]
    assert [c.text for c in other.completions] != [c.text for c in hot.completions]


def test_fake_prm_checks_claims():
    prm = FakePRM()
    [good, bad] = prm.score(
        [
            ScoreRequest("3 + 4 + 1", ("3 + 4 = 7.", "7 + 1 = 8.", "The answer is \\boxed{8}.")),
            ScoreRequest("3 + 4 + 1", ("3 + 4 = 6.", "6 + 1 = 7.", "The answer is \\boxed{7}.")),
        ]
    )
    assert min(good.scores) > 0.85 and bad.scores[0] < 0.15 and bad.scores[1] > 0.85 and bad.scores[2] < 0.15
    assert good.tokens == 5 + 14 and (prm.calls, prm.requests, prm.tokens) == (1, 2, good.tokens + bad.tokens)


# ------------------------------------------------------------------------------ every strategy, shared
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_returns_one_accounted_result_per_problem(name):
    policy, prm = FakePolicy(seed=4, error_rate=0.3), FakePRM()
    results = run(name, policy, prm)
    assert [r.problem_id for r in results] == [p.id for p in PROBLEMS]
    assert sum(r.tokens_in for r in results) == policy.prompt_tokens
    assert sum(r.prm_tokens for r in results) == prm.tokens
    assert (
        sum(r.tokens_out for r in results) == policy.tokens_out
    )  # pruned beams and rollouts are charged too
    assert all(r.tokens_cached == 0 and r.candidates for r in results)
    if name == "lookahead":
        assert all(r.generations > 8 for r in results)  # rollouts are charged
    else:
        assert all(r.generations == 8 for r in results)
    if name in SEARCH:  # candidates are the finished beams, best first; the answer is the first one's
        assert all(r.answer == r.candidates[0].answer for r in results)
        assert all(
            0 <= c.score <= 1 and len(c.step_scores) == len(c.steps) for r in results for c in r.candidates
        )
        assert all(r.candidates[0].score == max(c.score for c in r.candidates) for r in results)
    else:
        assert all(len(r.candidates) == 8 for r in results)


def test_verifier_strategies_beat_majority_with_a_checking_prm():
    def acc(name):
        return accuracy(run(name, FakePolicy(seed=7, error_rate=0.35), FakePRM(), n=8))

    assert acc("best_of_n") >= acc("majority_vote")
    assert acc("beam_search") == acc("dvts") == 1.0  # a step checker prunes every wrong step
    assert acc("lookahead") >= acc("majority_vote")  # ranked by greedy rollouts, which err too


# ----------------------------------------------------------------------------------------- lockstep
@pytest.mark.parametrize("name", ["beam_search", "dvts"])
def test_search_is_lockstep_one_generate_and_one_score_call_per_step(name):
    policy, prm = FakePolicy(seed=0, error_rate=0.0, record=True), FakePRM()
    results = run(name, policy, prm)
    steps = max(r.extra["steps"] for r in results)
    assert steps == 5  # the four-op problem: four claims and the answer
    assert policy.calls == steps and prm.calls == steps
    first = policy.history[0]
    assert len(first) == len(PROBLEMS) and all(r.n == 8 for r in first)  # N first steps, one request each
    assert [r.extra["steps"] for r in results] == [2, 3, 4, 5]  # each problem stops when it is done
    assert accuracy(results) == 1.0


def test_lookahead_rolls_out_greedily_in_lockstep():
    policy, prm = FakePolicy(seed=0, error_rate=0.2, record=True), FakePRM()
    results = run("lookahead", policy, prm, lookahead=2)
    steps = max(r.extra["steps"] for r in results)
    assert prm.calls == steps
    assert steps < policy.calls <= steps * 3
    temps = [{r.temperature for r in call} for call in policy.history]
    assert temps[0] == {0.8} and temps[1] == {0.0} and temps[2] == {0.0}  # step, then two rollout steps
    assert all(r.n == 1 for call in policy.history for r in call if r.temperature == 0.0)


def test_lookahead_zero_is_beam_search():
    a = run("lookahead", FakePolicy(seed=9, error_rate=0.4), FakePRM(), lookahead=0)
    b = run("beam_search", FakePolicy(seed=9, error_rate=0.4), FakePRM())
    assert [(r.text, r.tokens_in, r.tokens_out, r.prm_tokens) for r in a] == [
        (r.text, r.tokens_in, r.tokens_out, r.prm_tokens) for r in b
    ]


# --------------------------------------------------------------------------------- search semantics
def test_beam_search_keeps_top_n_over_m_and_expands_each_into_m():
    policy = FakePolicy(seed=1, error_rate=0.5, record=True)
    run("beam_search", policy, FakePRM(), n=8, problems=PROBLEMS[3:], beam_width=2)
    second = policy.history[1]
    assert sum(r.n for r in second) == 8 and len(second) <= 4  # N/M = 4 kept beams, M = 2 children each
    assert all(r.n % 2 == 0 for r in second)


def test_dvts_keeps_one_beam_per_subtree():
    policy = FakePolicy(seed=1, error_rate=0.5, record=True)
    [result] = run("dvts", policy, FakePRM(), n=8, problems=PROBLEMS[3:], beam_width=2)
    assert len(result.candidates) == 8  # N/M subtrees, each with its M last leaves (search-and-learn's)
    [best] = run(
        "dvts",
        FakePolicy(seed=1, error_rate=0.5),
        FakePRM(),
        n=8,
        problems=PROBLEMS[3:],
        beam_width=2,
        final_leaves="best",
    )
    assert len(best.candidates) == 4  # one final beam per subtree
    assert {c.text for c in best.candidates} <= {c.text for c in result.candidates}
    assert best.answer == result.answer  # argmax: the best leaf is a subtree's best either way
    # each live subtree asks M = 2 children (subtrees on the same prefix share one request)
    assert all(sum(r.n for r in call) <= 8 and all(r.n % 2 == 0 for r in call) for call in policy.history[1:])


def test_the_last_step_is_sampled_to_eos_not_cut_at_the_step_budget():
    [result] = run("beam_search", FakePolicy(seed=0), FakePRM(), problems=PROBLEMS[3:], max_steps=2)
    assert result.extra["steps"] == 2 and result.extra["finished"] > 0
    assert not result.truncated and result.answer is not None
    assert all(c.finish_reason == "eos" and len(c.steps) > 2 for c in result.candidates)


def test_final_selection_votes_over_the_final_beams():
    policy = FakePolicy(seed=1, error_rate=0.4)
    argmax = run("beam_search", policy, FakePRM(mode="hash"), n=8, final_selection="argmax")
    for rule in ("majority", "weighted"):
        voted = run("beam_search", policy, FakePRM(mode="hash"), n=8, final_selection=rule)
        for a, v in zip(argmax, voted, strict=True):
            assert [c.text for c in a.candidates] == [c.text for c in v.candidates]  # same final beams kept
            answers = [c.answer for c in v.candidates]
            if rule == "majority" and v.answer is not None:
                assert answers.count(v.answer) == max(answers.count(x) for x in answers if x is not None)
            assert v.extra["final_selection"] == rule and v.answer == v.candidates[v.extra["chosen"]].answer
    assert all(r.extra["chosen"] == 0 for r in argmax)


def test_max_tokens_finishes_beams_as_length():
    tight = replace(SAMPLING, max_tokens=6, step_max_tokens=4)
    [result] = run(
        "beam_search", FakePolicy(seed=0, error_rate=0.0), FakePRM(), problems=PROBLEMS[3:], sampling=tight
    )
    assert result.truncated and all(
        c.tokens_out <= 6 and c.finish_reason == "length" for c in result.candidates
    )


def test_search_argument_errors_name_the_argument():
    with pytest.raises(
        ValueError, match="n: invalid value 6; tree search needs N to be a multiple of beam_width=4"
    ):
        run("beam_search", FakePolicy(), FakePRM(), n=6, beam_width=4)
    with pytest.raises(ValueError, match="lookahead: invalid value -1"):
        run("lookahead", FakePolicy(), FakePRM(), lookahead=-1)
    with pytest.raises(ValueError, match="max_steps: invalid value 0"):
        run("dvts", FakePolicy(), FakePRM(), max_steps=0)
    with pytest.raises(TypeError):
        run("majority_vote", FakePolicy(), FakePRM(), beam_width=2)
    assert run("beam_search", FakePolicy(), FakePRM(), problems=[]) == []
