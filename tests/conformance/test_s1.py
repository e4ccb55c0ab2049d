"""Budget forcing against s1 (Muennighoff et al. 2025, simplescaling/s1): the harness that ran its evaluations,
eval/lm-evaluation-harness/lm_eval/models/vllm_causallms.py `VLLM._model_generate` (the "thinking" branch), the
README's "vLLM with budget forcing" example, and eval/commands.sh. What `_model_generate` does with a chain's
thinking, traced by hand:

    thinking_end_max = thinking_end + "\\nFinal Answer:"
    for i in range(thinking_n_ignore + 1):                  # "Wait" loop
        if finish_reason == "length" or last round: final
        else: strip the stop, append thinking_n_ignore_str ("Wait"), generate again
    if finish_reason == "length":                           # the cap cut the thinking
        text += ("" if text[-1] == "\\n" else "\\n") + thinking_end_max
    else:                                                   # it ended on its own
        text += thinking_end

A policy scripted per round stands in for vLLM (its thinking text is chosen to exercise the newline rule).
"""

from __future__ import annotations

from collections.abc import Sequence

from tts.data.problem import Problem
from tts.engines.protocols import Completion, Generation, GenerationRequest
from tts.grid import expand
from tts.strategies.base import SamplingSettings
from tts.strategies.budget_forcing import BudgetForcingConfig
from tts.strategies.budget_forcing import run as budget_forcing
from tts.testing.fake_engines import FakePRM

END = "</think>"
SAMPLING = SamplingSettings(temperature=0.0, thinking_start="<think>\n", thinking_end=END)
PROBLEM = [Problem(id="q", question="How many r in raspberry?", answer="3", dataset="t")]


class ScriptedPolicy:
    """Answers round r with script[r] (text, finish_reason) for every request; records the requests."""

    def __init__(self, script: Sequence[tuple[str, str]]) -> None:
        self.script, self.history = list(script), []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        self.history.append(list(requests))
        text, reason = self.script[len(self.history) - 1]
        completion = Completion(text=text, tokens_out=len(text.split()), finish_reason=reason)
        return [Generation((completion,) * r.n, prompt_tokens=1) for r in requests]


def forced(thinking: str, **params) -> tuple[str, object]:
    policy = ScriptedPolicy([(thinking, "length"), ("The answer is \\boxed{3}.", "eos")])
    [result] = budget_forcing(
        PROBLEM, policy, FakePRM(), n=1, sampling=SAMPLING, seed=0, thinking_tokens=4, **params
    )
    return policy.history[-1][0].prompt.partial, result


def test_a_thinking_cut_by_the_cap_gets_a_newline_the_marker_and_final_answer():
    """`finish_reason == "length"`, text not ending in "\\n": text + "\\n" + thinking_end + "\\nFinal Answer:"."""
    partial, result = forced("r, a, s, p")
    assert partial == "<think>\nr, a, s, p\n</think>\nFinal Answer:"
    assert result.extra["forced"] == [True] and result.answer == "3"
    assert result.text == partial + "The answer is \\boxed{3}."


def test_no_extra_newline_when_the_cut_thinking_ends_with_one():
    """`if (o.outputs[0].text[-1] == "\\n")`: requests[i] += cont + thinking_end_max_tok (no newline token)."""
    partial, _ = forced("r, a, s, p\n")
    assert partial == "<think>\nr, a, s, p\n</think>\nFinal Answer:"


def test_a_thinking_that_ends_on_its_own_gets_the_marker_alone():
    """`else: requests[i] += cont + thinking_end_tok`: no "Final Answer:" after a natural end."""
    policy = ScriptedPolicy([("three r's", "stop_string"), ("\\boxed{3}", "eos")])
    budget_forcing(PROBLEM, policy, FakePRM(), n=1, sampling=SAMPLING, seed=0, thinking_tokens=100)
    assert policy.history[-1][0].prompt.partial == "<think>\nthree r's</think>"


def test_wait_is_appended_instead_of_the_end_and_the_last_end_is_kept():
    """thinking_n_ignore = 1, thinking_n_ignore_str = "Wait": the first natural end is replaced by "Wait", the
    second (the last round) kept, then the marker alone."""
    policy = ScriptedPolicy(
        [("two r's.", "stop_string"), (" no, three.", "stop_string"), ("\\boxed{3}", "eos")]
    )
    [r] = budget_forcing(
        PROBLEM, policy, FakePRM(), n=1, sampling=SAMPLING, seed=0, thinking_tokens=100, extensions=1
    )
    assert [q.prompt.partial for call in policy.history for q in call] == [
        "<think>\n",
        "<think>\ntwo r's.Wait",
        "<think>\ntwo r's.Wait no, three.</think>",
    ]
    assert r.extra["extensions"] == [1] and r.extra["forced"] == [False]


def test_the_rule_before_is_one_option_away():
    """forced_answer_prefix "" writes the marker alone after a forced end (this module's rule before s1's)."""
    assert BudgetForcingConfig().forced_answer_prefix == "\nFinal Answer:"
    partial, _ = forced("r, a, s, p", forced_answer_prefix="")
    assert partial == "<think>\nr, a, s, p</think>"


def test_the_s1_preset_uses_s1s_budgets_waits_and_greedy_decoding():
    """eval/commands.sh "s1 Budget Forcing": max_tokens_thinking = 500, 1000, 2000, 4000, 8000, 16000;
    "forcingignore{1,2,4,6}wait": thinking_n_ignore = 1, 2, 4, 6 with "Wait"; the tasks' generation_kwargs
    (lm_eval/tasks/openai_math/openai_math.yaml, aime/aime24_nofigures.yaml): temperature 0."""
    grid = expand(["+sweep=s1_budget_forcing", "policy=qwen3_1_7b_thinking", "dataset=math500"])
    forcing = [c.config.strategy for c in grid.cells if c.config.strategy.name == "budget_forcing"]
    capped = sorted(s.thinking_tokens for s in forcing if s.extensions == 0)
    assert capped == [500, 1000, 2000, 4000, 8000, 16000]
    assert sorted(s.extensions for s in forcing if s.extensions) == [1, 2, 4, 6]
    assert all(s.temperature == 0 and s.wait_text == "Wait" for s in forcing)
    assert all(s.forced_answer_prefix == "\nFinal Answer:" for s in forcing)
