"""The vLLM engines' pure parts with fakes (no engine started, vLLM not imported): finish-reason mapping, output
conversion, prompt building, config -> argument mapping, PRM probability helpers, the judge's P(yes).

The real engines are tested in tests/integration/test_engines.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from tts.config import EngineConfig, FewShotExample, PolicyConfig
from tts.engines import vllm_policy
from tts.engines.judge_prm import JudgePRM, spellings
from tts.engines.protocols import Conversation, Message
from tts.engines.vllm_common import EngineSettings
from tts.engines.vllm_policy import VLLMPolicy, _to_generation, finish_reason
from tts.engines.vllm_prm import _to_prob, single_token


class FakeTokenizer:
    """A whitespace 'tokenizer' with a ChatML-ish template: one token per character class run."""

    chat_template = "chatml"

    def __init__(self, vocab: dict[str, int] | None = None) -> None:
        self.vocab = vocab or {}

    def apply_chat_template(self, messages, add_generation_prompt=False, tokenize=False, **template_vars):
        assert set(template_vars) <= {"strftime_now"}, (
            template_vars
        )  # the pinned clock, as transformers takes it
        text = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)
        return text + ("<assistant>" if add_generation_prompt else "")

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        if text in self.vocab:
            return [self.vocab[text]]
        return [hash(w) % 1000 + 1000 for w in text.split(" ")]


@dataclass
class FakeLLM:
    tokenizer: FakeTokenizer = field(default_factory=FakeTokenizer)

    def get_tokenizer(self) -> FakeTokenizer:
        return self.tokenizer

    def generate(self, prompts, params, *, use_tqdm=False, tokenization_kwargs=None):  # pragma: no cover
        raise AssertionError("not used in unit tests")


def test_finish_reason_mapping():
    assert finish_reason("length", None) == "length"
    assert finish_reason("stop", "\n\n") == "stop_string"
    assert finish_reason("stop", 151645) == "eos"  # a stop token id
    assert finish_reason("stop", None) == "eos"
    with pytest.raises(RuntimeError, match="abort"):
        finish_reason("abort", None)


def _out(*outs, prompt_ids=(1, 2, 3), cached=None):
    return SimpleNamespace(outputs=list(outs), prompt_token_ids=list(prompt_ids), num_cached_tokens=cached)


def _comp(index, text, n_tokens, reason="length", stop=None, lp=-1.0):
    return SimpleNamespace(
        index=index, text=text, token_ids=list(range(n_tokens)), finish_reason=reason, stop_reason=stop,
        cumulative_logprob=lp,
    )  # fmt: skip


def test_request_output_conversion_orders_and_counts():
    out = _out(_comp(1, "b", 2, "stop", "\n\n"), _comp(0, "a", 4), cached=2)
    gen = _to_generation(out, 2)
    assert [c.text for c in gen.completions] == ["a", "b"]
    assert [c.tokens_out for c in gen.completions] == [4, 2]
    assert [c.finish_reason for c in gen.completions] == ["length", "stop_string"]
    assert gen.prompt_tokens == 3 and gen.cached_prompt_tokens == 2
    assert _to_generation(_out(_comp(0, "a", 1)), 1).cached_prompt_tokens == 0  # version without the count


def test_greedy_single_sample_is_repeated():
    gen = _to_generation(_out(_comp(0, "x", 3, "stop")), 4)
    assert len(gen.completions) == 4 and {c.text for c in gen.completions} == {"x"}


def _policy(**kw) -> VLLMPolicy:
    return VLLMPolicy("some/model", params=10, llm=FakeLLM(), **kw)


def test_prompt_with_system_few_shot_and_template():
    p = _policy(system_prompt="S", prompt_template="Compute {question}", few_shot=[("Compute 1 + 1", "2")])
    assert p.render(Conversation("{x} + 3")) == (
        "<system>S</system><user>Compute 1 + 1</user><assistant>2</assistant>"
        "<user>Compute {x} + 3</user><assistant>"
    )


def test_conversation_history_and_partial_turn_are_rendered():
    p = _policy(prompt_template="Compute {question}")
    conv = Conversation(
        "2 + 2", (Message("assistant", "5"), Message("user", "Wrong; check it.")), partial="2 + 2 = "
    )
    assert p.render(conv) == (
        "<user>Compute 2 + 2</user><assistant>5</assistant><user>Wrong; check it.</user><assistant>2 + 2 = "
    )
    assert p.render("raw text") == "raw text"  # a string prompt is used verbatim
    assert p.render(Conversation("2 + 2").continued("x")) == p.render(Conversation("2 + 2")) + "x"


def test_plain_text_prompt():
    p = _policy(chat_template=False, system_prompt="S", few_shot=[("Q1", "A1")])
    assert p.render(Conversation("Q2")) == "S\n\nQ1\nA1\n\nQ2\n"


def test_missing_chat_template_is_a_clear_error():
    tok = FakeTokenizer()
    tok.chat_template = None
    with pytest.raises(ValueError, match="policy.chat_template=false"):
        VLLMPolicy("m", params=1, llm=FakeLLM(tokenizer=tok))


def test_prompt_template_needs_the_question():
    with pytest.raises(ValueError, match=r"\{question\}"):
        _policy(prompt_template="no placeholder")


def test_build_maps_configs_to_plain_arguments(monkeypatch):
    seen = {}
    monkeypatch.setattr(vllm_policy, "VLLMPolicy", lambda model, **kw: seen.update(model=model, **kw))
    cfg = PolicyConfig(
        name="p", model="org/model", system_prompt="S", few_shot=[FewShotExample("q", "a")], params=7
    )
    vllm_policy.build(cfg, EngineConfig(dtype="float32", seed=3, max_model_len=None))
    assert seen["model"] == "org/model" and seen["few_shot"] == [("q", "a")] and seen["params"] == 7
    engine = seen["engine"]
    assert isinstance(engine, EngineSettings) and engine.seed == 3 and engine.dtype == "float32"
    assert "max_model_len" not in engine.llm_kwargs()  # None: let vLLM use the model's own


def test_engine_settings_from_config():
    s = EngineSettings.from_config(EngineConfig(gpu_memory_utilization=0.2, enforce_eager=True, seed=5))
    kw = s.llm_kwargs()
    assert kw["gpu_memory_utilization"] == 0.2 and kw["enforce_eager"] and kw["seed"] == 5
    assert "num_gpus" not in kw and "replicas" not in kw  # Ray's business


def test_prm_probability_from_logits_and_probabilities():
    assert _to_prob([0.0, 0.0], raw=True) == pytest.approx(0.5)
    assert _to_prob([0.0, 2.0], raw=True) == pytest.approx(0.8808, abs=1e-4)
    assert _to_prob([0.3, 0.7], raw=False) == pytest.approx(0.7)  # already a softmax
    assert _to_prob([0.0], raw=True) == pytest.approx(0.5)  # single sigmoid logit


def test_single_token_lookup():
    tok = FakeTokenizer({"<extra_0>": 7})
    assert single_token(tok, "<extra_0>", after_space=False) == 7
    with pytest.raises(ValueError, match="not a single token"):
        single_token(tok, "two words", after_space=False)


def test_judge_yes_probability():
    tok = FakeTokenizer({"Yes": 1, " Yes": 2, "yes": 3, "No": 4, " No": 5})
    assert spellings(tok, "Yes") == [1, 2, 3]
    judge = object.__new__(JudgePRM)
    judge.yes_ids, judge.no_ids = [1, 2], [4]
    lp = SimpleNamespace
    import math

    first = {1: lp(logprob=math.log(0.3)), 2: lp(logprob=math.log(0.1)), 4: lp(logprob=math.log(0.4))}
    assert judge._p_yes([first]) == pytest.approx(0.5)
    assert judge._p_yes([{9: lp(logprob=-1.0)}]) == 0.5  # neither spelling seen
    assert judge._p_yes([]) == 0.5
