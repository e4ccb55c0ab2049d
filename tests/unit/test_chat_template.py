"""Pinned chat-template dates (tts.engines.chat_template): a Llama-3.2-style template, which writes today's date
into the system turn through transformers' `strftime_now`, renders the same text on any day; the policy engine's
prompt rendering uses the pin. No download: the template text below is the clock-reading head of Meta's
Llama 3.2 template (the date logic and the system turn it writes), and the tokenizer is the zoo's shipped one."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest

from tts.engines.chat_template import chat_template_sha, local_chat_template, pinned_clock

# The date logic of meta-llama/Llama-3.2-1B-Instruct's chat template, verbatim, with its system turn and a
# minimal message loop.
LLAMA32_STYLE = (
    "{{- bos_token }}\n"
    "{%- if not date_string is defined %}\n"
    "    {%- if strftime_now is defined %}\n"
    '        {%- set date_string = strftime_now("%d %b %Y") %}\n'
    "    {%- else %}\n"
    '        {%- set date_string = "26 Jul 2024" %}\n'
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set system_message = messages[0]['content']|trim %}\n"
    "    {%- set messages = messages[1:] %}\n"
    "{%- else %}\n"
    '    {%- set system_message = "" %}\n'
    "{%- endif %}\n"
    '{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}\n'
    '{{- "Cutting Knowledge Date: December 2023\\n" }}\n'
    '{{- "Today Date: " + date_string + "\\n\\n" }}\n'
    "{{- system_message }}\n"
    '{{- "<|eot_id|>" }}\n'
    "{%- for message in messages %}\n"
    "    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] + '<|eot_id|>' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
    "{%- endif %}\n"
)


def _tokenizer() -> Any:
    from transformers import AutoTokenizer

    from tts.engines.embedded import ZOO_WEIGHTS

    tok = AutoTokenizer.from_pretrained(str(ZOO_WEIGHTS / "zoo-policy-m"))
    tok.chat_template = LLAMA32_STYLE
    return tok


def _on_day(monkeypatch: pytest.MonkeyPatch, day: dt.datetime) -> None:
    """Mock the clock transformers' `strftime_now` reads."""
    import transformers.utils.chat_template_utils as ctu

    class Clock(dt.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> dt.datetime:  # type: ignore[override]
            return day

    monkeypatch.setattr(ctu, "datetime", Clock)
    ctu._compile_jinja_template.cache_clear()


def _policy(date: str = "2024-07-26") -> Any:
    from tts.engines.vllm_policy import VLLMPolicy

    llm = SimpleNamespace(get_tokenizer=_tokenizer)
    return VLLMPolicy(
        "unused", system_prompt="Solve it.", params=1, llm=llm, chat_template_date=date, logprobs=False
    )


def test_the_unpinned_template_changes_with_the_day(monkeypatch: pytest.MonkeyPatch) -> None:
    """The problem: rendered as transformers renders it, the prompt depends on the day."""
    tok = _tokenizer()
    messages = [{"role": "user", "content": "1+1?"}]
    _on_day(monkeypatch, dt.datetime(2026, 12, 7))
    monday = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    _on_day(monkeypatch, dt.datetime(2026, 12, 8))
    tuesday = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert "Today Date: 07 Dec 2026" in monday and "Today Date: 08 Dec 2026" in tuesday


def test_the_policy_renders_the_pinned_date_on_any_day(monkeypatch: pytest.MonkeyPatch) -> None:
    from tts.engines.protocols import Conversation

    conversation = Conversation("1+1?")
    _on_day(monkeypatch, dt.datetime(2026, 12, 7))
    first = _policy().render(conversation)
    _on_day(monkeypatch, dt.datetime(2027, 3, 1))
    second = _policy().render(conversation)
    assert first == second
    assert "Today Date: 26 Jul 2024\n\nSolve it.<|eot_id|>" in first
    assert "Today Date: 01 Jan 2025" in _policy("2025-01-01").render(conversation)


def test_a_bad_date_fails_before_any_engine_starts() -> None:
    with pytest.raises(ValueError, match="chat_template_date"):
        _policy("26 Jul 2024")
    assert pinned_clock("2024-07-26")("%d %b %Y") == "26 Jul 2024"


def test_the_template_identity_is_read_without_a_tokenizer(tmp_path: Any) -> None:
    (tmp_path / "tokenizer_config.json").write_text('{"chat_template": "{{ messages }}"}')
    assert local_chat_template(tmp_path) == "{{ messages }}"
    first = chat_template_sha(str(tmp_path))
    (tmp_path / "chat_template.jinja").write_text("{{ messages }}!")  # the file transformers reads first
    assert chat_template_sha(str(tmp_path)) != first
    assert chat_template_sha("meta-llama/Llama-3.2-1B-Instruct") is None  # hub: named by its id
    assert chat_template_sha("embedded:zoo-policy-m") is not None
