"""The endpoint client (tts.engines.endpoint, tts.engines.openai_policy) against the fault proxy's canned server:
retries counted on 429 / 500 / a stalled response, a 400 not retried, retries that run out raise, the key read
from the environment and sent, the request's seed / stop / n passed, token counts from the response; the endpoint
fields' validation and identity rule."""

from __future__ import annotations

import dataclasses
import random

import pytest

from tts.engines.endpoint import backoff_delay
from tts.engines.protocols import Conversation, GenerationRequest
from tts.schemas import PolicyConfig
from tts.testing.fault_proxy import FAKE_TEXT, FaultProxy

KEY_ENV = "TTS_TEST_ENDPOINT_KEY"
KEY = "sk-test-secret-0123456789"


def _policy(base_url: str, max_retries: int = 4, timeout_s: float = 1.0):
    from tts.engines.openai_policy import build

    cfg = PolicyConfig(
        name="ep",
        model="zoo-policy-m",
        tokenizer="embedded:zoo-policy-m",
        backend="openai",
        base_url=base_url,
        api_key_env=KEY_ENV,
        max_concurrency=2,
        timeout_s=timeout_s,
        max_retries=max_retries,
    )
    policy = build(cfg)
    fast = dataclasses.replace(policy.settings, backoff_base_s=0.01, backoff_cap_s=0.05)
    policy.settings = policy.counter.settings = fast
    return policy


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


def test_429_500_and_a_stall_are_retried_3_times_and_the_answer_arrives() -> None:
    with FaultProxy(None, ["429", "500", "stall"], stall_s=3.0) as proxy:
        policy = _policy(proxy.base_url)
        req = GenerationRequest(
            Conversation("Q:1+2"), n=3, max_tokens=8, temperature=0.8, stop=("\n\n",), seed=11
        )
        (gen,) = policy.generate([req])
    assert policy.retries == 3
    assert proxy.served == ["429", "500", "stall", "ok"]
    assert [c.text for c in gen.completions] == [FAKE_TEXT] * 3
    assert [c.tokens_out for c in gen.completions] == [4, 4, 4]
    assert gen.completions[0].finish_reason == "eos" and gen.completions[
        0
    ].cumulative_logprob == pytest.approx(-2.0)
    ids = policy.renderer.encode_prompt(policy.render(req.prompt))
    assert gen.prompt_tokens == len(ids)
    body = proxy.bodies[-1]
    assert body["prompt"] == ids and body["n"] == 3 and body["seed"] == 11 and body["stop"] == ["\n\n"]
    assert proxy.keys_seen == {KEY}


def test_greedy_sends_one_completion_without_seed_and_repeats_it() -> None:
    with FaultProxy(None) as proxy:
        policy = _policy(proxy.base_url)
        (gen,) = policy.generate([GenerationRequest(Conversation("Q:1+2"), n=4, temperature=0.0, seed=5)])
    assert len(gen.completions) == 4 and proxy.bodies[0]["n"] == 1 and "seed" not in proxy.bodies[0]


def test_a_400_is_not_retried() -> None:
    from tts.engines.endpoint import EndpointError

    with FaultProxy(None, ["400"]) as proxy:
        policy = _policy(proxy.base_url)
        with pytest.raises(EndpointError, match="BadRequestError .HTTP 400. after 0 retries"):
            policy.generate([GenerationRequest("x", n=1)])
    assert policy.retries == 0 and proxy.served == ["400"]


def test_retries_that_run_out_raise_the_last_error() -> None:
    import pickle

    from tts.engines.endpoint import EndpointError

    with FaultProxy(None, ["500", "500", "500"]) as proxy:
        policy = _policy(proxy.base_url, max_retries=2)
        with pytest.raises(EndpointError, match="InternalServerError .HTTP 500. after 2 retries") as err:
            policy.generate([GenerationRequest("x", n=1)])
    assert policy.retries == 2 and proxy.served == ["500", "500", "500"]
    assert str(pickle.loads(pickle.dumps(err.value))) == str(err.value)  # crosses Ray intact


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    rng = random.Random(0)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (10, 20.0)]:
        d = backoff_delay(attempt, 0.5, 20.0, rng)
        assert ceiling / 2 <= d <= ceiling


def test_a_missing_key_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    with FaultProxy(None) as proxy:
        policy = _policy(proxy.base_url)
        with pytest.raises(RuntimeError, match=KEY_ENV):
            policy.generate([GenerationRequest("x", n=1)])


def test_a_pinned_fingerprint_the_server_does_not_report_fails() -> None:
    with FaultProxy(None) as proxy:
        policy = _policy(proxy.base_url)
        policy.expected_fingerprint = "vllm-0.0.1-other"
        with pytest.raises(RuntimeError, match="policy.fingerprint"):
            policy.generate([GenerationRequest("x", n=1)])


def test_the_endpoint_judge_reads_p_yes_from_top_logprobs_with_retries() -> None:
    import math

    from tts.engines.endpoint import EndpointSettings
    from tts.engines.openai_prm import EndpointJudgePRM
    from tts.engines.protocols import ScoreRequest

    with FaultProxy(None, ["503"]) as proxy:
        settings = EndpointSettings(proxy.base_url, "judge", backoff_base_s=0.01)
        judge = EndpointJudgePRM(settings)
        out = judge.score([ScoreRequest("Q:1+2", ("1+2=3", "A:3")), ScoreRequest("Q:2", ())])
    yes, no = math.exp(-0.25) + math.exp(-2.0), math.exp(-1.5)
    assert out[0].scores == pytest.approx((yes / (yes + no),) * 2) and out[0].tokens == 20
    assert out[1].scores == () and judge.retries == 1
    assert "Is the last step correct?" in proxy.bodies[-1]["messages"][0]["content"]
    assert proxy.bodies[-1]["max_tokens"] == 1 and proxy.bodies[-1]["top_logprobs"] == 20


def test_endpoint_fields_in_no_id_but_the_served_name_and_fingerprint_are() -> None:
    from tts.grid import expand

    base = [
        "policy=zoo_policy_m_endpoint",
        "prm=rule_arithmetic",
        "dataset=chain",
        "strategy=best_of_n",
        "n=2",
    ]
    ids = {
        extra: expand([*base, *extra]).cells[0].id
        for extra in [
            (),
            ("policy.base_url=http://10.0.0.1:9000/v1", "policy.max_concurrency=3", "policy.timeout_s=5"),
            ("policy.model=zoo-policy-m-v2",),
            ("policy.fingerprint=vllm-0.32.0-abc",),
        ]
    }
    values = list(ids.values())
    assert values[0] == values[1] and len({values[0], values[2], values[3]}) == 3


def test_an_api_key_given_as_api_key_env_is_rejected_without_echoing_it() -> None:
    from tts.config import ConfigError
    from tts.grid import expand

    with pytest.raises(ConfigError, match="policy.api_key_env") as err:
        expand(["policy=zoo_policy_m_endpoint", "policy.api_key_env=sk-live-12345-secret"])
    assert "sk-live" not in str(err.value)
    with pytest.raises(ConfigError, match="policy.base_url"):
        expand(["policy=zoo_policy_m_endpoint", "policy.base_url=null"])


def test_without_a_tokenizer_the_policy_sends_chat_messages_and_continues_a_partial_turn() -> None:
    from tts.engines.openai_policy import build

    cfg = PolicyConfig(
        name="api",
        model="gpt-x",
        backend="openai",
        chat_template=False,
        system_prompt="Be brief.",
        max_retries=0,
    )
    with FaultProxy(None) as proxy:
        cfg.base_url = proxy.base_url
        policy = build(cfg)
        (gen,) = policy.generate([GenerationRequest(Conversation("Q:1+2", partial="1+2=3\n\n"), n=1)])
    body = proxy.bodies[0]
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant"]
    assert body["messages"][-1]["content"] == "1+2=3\n\n" and body["continue_final_message"] is True
    assert gen.completions[0].text == "Yes" and gen.completions[0].tokens_out == 1 and gen.prompt_tokens == 10
