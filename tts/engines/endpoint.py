"""What every OpenAI-compatible endpoint client shares: its settings, the API key from the environment, a bound on
concurrent requests, and retries with exponential backoff and jitter, counted.

Why one module: the endpoint policy (tts.engines.openai_policy) and the endpoint verifiers (tts.engines.openai_prm)
talk to servers the same way. The official `openai` async client sends every request with its own retries off
(`max_retries=0`), so that every retry is made, waited and COUNTED here (the `retries` column of result rows):
429 (rate limit), 5xx, timeouts and dropped connections are retried `max_retries` times with delays
min(cap, base x 2^attempt) x uniform(0.5, 1) ("equal jitter"); any other error (400: a bad request) fails at once.
A request that fails for good raises `EndpointError` naming the model, the server, the status and the retries.

The key: `api_key_env` names an environment variable; its value is read here, in the process that sends the
requests, and is never stored on this object's fields, written to a config, a row, a manifest or a log (servers
that need no key, such as a local `vllm serve`, get a placeholder).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
NO_KEY = "EMPTY"  # what `vllm serve` without --api-key accepts


@dataclass(frozen=True)
class EndpointSettings:
    """Where and how to send requests. `base_url` ends in /v1 (e.g. http://127.0.0.1:8000/v1); `model` is the
    served model name; `api_key_env` the NAME of the variable holding the key (None: no key)."""

    base_url: str
    model: str
    api_key_env: str | None = None
    max_concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 4
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 20.0

    def api_key(self) -> str:
        """The key from the environment (raises naming the variable when it is unset)."""
        if not self.api_key_env:
            return NO_KEY
        key = os.environ.get(self.api_key_env)
        if not key:
            raise RuntimeError(
                f"api_key_env: the environment variable {self.api_key_env!r} is not set in the process that "
                "sends the requests; export it before `tts sweep` (Ray workers inherit the driver's environment)"
            )
        return key

    def client(self) -> Any:
        """An `openai.AsyncOpenAI` for these settings (its own retries off: `call_with_retries` counts them)."""
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            base_url=self.base_url, api_key=self.api_key(), timeout=self.timeout_s, max_retries=0
        )


class EndpointError(RuntimeError):
    """A request that failed for good (not retryable, or out of retries). A plain error, so that it crosses Ray
    intact (the `openai` client's errors hold HTTP objects that do not deserialize) and the cell's row says why."""


def retryable(exc: BaseException) -> bool:
    """429, 5xx, timeouts and connection errors: worth another try."""
    import openai

    if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError | asyncio.TimeoutError):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return False


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry `attempt` (0-based): min(cap, base x 2^attempt) x uniform(0.5, 1)."""
    ceiling = min(cap, base * (2**attempt))
    return ceiling * (0.5 + 0.5 * (rng or random).random())


class RetryCounter:
    """Sends calls through a concurrency bound and retries; `retries` counts every retry made so far."""

    def __init__(self, settings: EndpointSettings) -> None:
        self.settings = settings
        self.retries = 0

    async def call(self, send: Callable[[], Awaitable[T]], semaphore: asyncio.Semaphore) -> T:
        """`send()` under `semaphore`, retried on retryable errors; the last error is raised when they run out."""
        s = self.settings
        attempt = 0
        while True:
            try:
                async with semaphore:
                    return await asyncio.wait_for(send(), timeout=s.timeout_s)
            except Exception as exc:
                if not retryable(exc) or attempt >= s.max_retries:
                    raise EndpointError(
                        f"{s.model} at {s.base_url}: {type(exc).__name__} ({_status(exc)}) after {attempt} "
                        f"retries: {str(exc)[:300]}"
                    ) from None
                delay = backoff_delay(attempt, s.backoff_base_s, s.backoff_cap_s)
                self.retries += 1
                log.warning(
                    "%s: %s (%s); retry %d/%d in %.2f s",
                    s.model,
                    type(exc).__name__,
                    _status(exc),
                    attempt + 1,
                    s.max_retries,
                    delay,
                )
                attempt += 1
                await asyncio.sleep(delay)


def check_fingerprint(expected: str | None, reported: str | None, field: str) -> None:
    """A pinned fingerprint (in the ids) must be the one the server reports, else the results would mix."""
    if expected and reported and expected != reported:
        raise RuntimeError(
            f"{field}: pinned {expected!r}, but the server reports {reported!r}; pin the new one (new ids) "
            "or point base_url at the server you pinned"
        )


def _status(exc: BaseException) -> str:
    code = getattr(exc, "status_code", None)
    return f"HTTP {code}" if code else "no response"


def run_async(coro: Awaitable[T]) -> T:
    """Run a coroutine to completion from synchronous code (an engine actor's method, a test)."""
    return asyncio.run(coro)  # type: ignore[arg-type]
