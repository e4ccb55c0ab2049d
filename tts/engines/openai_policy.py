"""The policy on an OpenAI-compatible endpoint (`policy.backend: openai`): `OpenAIPolicy` implements `PolicyEngine`
over a server someone else runs (`vllm serve`, SGLang, an API model).

Why this shape: strategies batch requests (all problems x samples, every beam of every problem), so `generate`
sends one HTTP request per GenerationRequest, all at once under a bound of `max_concurrency` in flight, through
the official `openai` async client, with counted retries (tts.engines.endpoint).

Prompts: with a tokenizer (`policy.tokenizer`: a local folder, a hub id or embedded:<name> holding the served
model's tokenizer and chat template) the conversation is rendered HERE exactly as the in-process engine renders it
(tts.engines.vllm_policy: system prompt, few-shot turns, prompt template, history, the chat template, then the
partial assistant turn) and tokenized the same way, and the token ids go to `/v1/completions`. A step search's
partial assistant turn is thus continued as the model wrote it, and at temperature 0 the server's answers are
the in-process engine's. Without a tokenizer the messages go to `/v1/chat/completions` (an API model); a partial
turn is sent as a final assistant message with vLLM's `continue_final_message` (servers without it refuse).

What a server honours: `n`, `seed` (only when temperature > 0, as in-process), `logprobs` (the sampled tokens'),
stop strings; top_k / min_p go in the request body where set (vLLM's extensions). `unhonoured` collects what a
server ignored (fewer choices than `n`: the rest are requested one by one; no logprobs: per-completion token
counts come from `usage`; no `stop_reason`: a stop cannot be told from EOS; a server that is not vLLM: `seed`
is best effort), and the rows record it. A pinned `policy.fingerprint` (it enters the ids) must equal the
server's `system_fingerprint`: another one (an upgraded server) fails the cell rather than mixing results. Token counts come from `usage` (prompt, completion, cached prompt
tokens where reported: vLLM with --enable-prompt-tokens-details); per completion from its logprobs' tokens.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from tts.engines.endpoint import EndpointSettings, RetryCounter, check_fingerprint, run_async
from tts.engines.protocols import Completion, Conversation, FinishReason, Generation, GenerationRequest

log = logging.getLogger(__name__)


class _TokenizerOnly:
    """Stands in for a `vllm.LLM` where only its tokenizer is read (the prompt renderer)."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    def get_tokenizer(self) -> Any:
        return self._tokenizer


class OpenAIPolicy:
    """A `PolicyEngine` on an OpenAI-compatible endpoint. `renderer`: a VLLMPolicy holding only the tokenizer
    (None: chat completions). `params`: the served model's parameter count (FLOPs accounting)."""

    def __init__(
        self,
        settings: EndpointSettings,
        *,
        renderer: Any = None,
        params: int = 0,
        prompt_format: tuple[str | None, str, tuple[tuple[str, str], ...]] = (None, "{question}", ()),
        expected_fingerprint: str | None = None,
    ) -> None:
        self.settings = settings
        self.prompt_format = prompt_format  # (system prompt, prompt template, few-shot pairs): chat requests
        self.renderer = renderer
        self.param_count = int(params)
        self.model_path = settings.model
        self.counter = RetryCounter(settings)
        self.unhonoured: set[str] = set()
        self.fingerprint: str | None = None  # what the server reports (system_fingerprint)
        self.expected_fingerprint = expected_fingerprint  # pinned in the config (policy.fingerprint)

    @property
    def retries(self) -> int:
        return self.counter.retries

    def render(self, prompt: Conversation | str) -> str:
        if self.renderer is None:
            raise RuntimeError("policy.tokenizer: not set, so this endpoint policy renders no prompt text")
        return self.renderer.render(prompt)

    # ------------------------------------------------------------------------------------------ requests
    def _sampling(self, req: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if req.top_k is not None:
            body["top_k"] = req.top_k
        if req.min_p:
            body["min_p"] = req.min_p
        kwargs: dict[str, Any] = {
            "model": self.settings.model,
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
            "top_p": req.top_p,
        }
        if req.stop:
            kwargs["stop"] = list(req.stop)
        if req.seed is not None and req.temperature > 0:
            kwargs["seed"] = req.seed
        if body:
            kwargs["extra_body"] = body
        return kwargs

    async def _one(
        self, client: Any, sem: asyncio.Semaphore, req: GenerationRequest, n: int, seed_shift: int = 0
    ) -> tuple[list[Completion], int, int]:
        """(completions, prompt tokens, cached prompt tokens) of one HTTP request for `n` completions."""
        kwargs = self._sampling(req)
        if seed_shift and "seed" in kwargs:
            kwargs["seed"] += seed_shift
        if self.renderer is not None:
            ids = self.renderer.encode_prompt(self.renderer.render(req.prompt))
            resp = await self.counter.call(
                lambda: client.completions.create(prompt=ids, n=n, logprobs=0, **kwargs), sem
            )
            completions = [
                self._completion(c, c.text, c.logprobs and c.logprobs.tokens, c.logprobs)
                for c in resp.choices
            ]
        else:
            messages, extra = self._chat_messages(req.prompt)
            if extra:
                kwargs["extra_body"] = {**kwargs.get("extra_body", {}), **extra}
            resp = await self.counter.call(
                lambda: client.chat.completions.create(messages=messages, n=n, logprobs=True, **kwargs), sem
            )
            completions = [
                self._completion(
                    c,
                    c.message.content or "",
                    c.logprobs and c.logprobs.content,
                    c.logprobs and [t.logprob for t in (c.logprobs.content or [])],
                )
                for c in resp.choices
            ]
        if resp.system_fingerprint:
            self.fingerprint = resp.system_fingerprint
            check_fingerprint(self.expected_fingerprint, resp.system_fingerprint, "policy.fingerprint")
        if not str(resp.system_fingerprint or "").startswith("vllm"):
            self.unhonoured.add("seed")  # a seed is best effort on servers that are not vLLM
        usage = resp.usage
        if any(c.tokens_out < 0 for c in completions):  # no logprobs: split usage's completion tokens
            self.unhonoured.add("logprobs")
            total = int(getattr(usage, "completion_tokens", 0) or 0)
            share = total // max(len(completions), 1)
            completions = [Completion(c.text, share, c.finish_reason, None) for c in completions]
        details = getattr(usage, "prompt_tokens_details", None)
        cached = int(getattr(details, "cached_tokens", 0) or 0) if details is not None else 0
        return completions, int(getattr(usage, "prompt_tokens", 0) or 0), cached

    def _completion(self, choice: Any, text: str, tokens: Any, logprobs: Any) -> Completion:
        lp = None
        if logprobs is not None and hasattr(logprobs, "token_logprobs"):
            lp = [x for x in (logprobs.token_logprobs or []) if x is not None]
        elif isinstance(logprobs, list):
            lp = logprobs
        return Completion(
            text=text,
            tokens_out=len(tokens) if tokens is not None else -1,
            finish_reason=self._finish(choice),
            cumulative_logprob=float(sum(lp)) if lp else None,
        )

    def _finish(self, choice: Any) -> FinishReason:
        reason = choice.finish_reason
        if reason == "length":
            return "length"
        extra = getattr(choice, "model_extra", None) or {}
        if "stop_reason" not in extra:
            self.unhonoured.add("stop_reason")
        if reason == "stop":
            return "stop_string" if isinstance(extra.get("stop_reason"), str) else "eos"
        raise RuntimeError(f"endpoint finished a completion with finish_reason={reason!r}")

    def _chat_messages(self, prompt: Conversation | str) -> tuple[list[dict[str, str]], dict[str, Any]]:
        if isinstance(prompt, str):
            return [{"role": "user", "content": prompt}], {}
        msgs = self.chat_messages(prompt)
        if not prompt.partial:
            return msgs, {}
        msgs.append({"role": "assistant", "content": prompt.partial})
        return msgs, {"continue_final_message": True, "add_generation_prompt": False}

    def chat_messages(self, conversation: Conversation) -> list[dict[str, str]]:
        """System prompt, few-shot turns, the templated question and the history (as tts.engines.vllm_policy)."""
        system, template, few_shot = self.prompt_format
        msgs = [{"role": "system", "content": system}] if system else []
        for q, a in few_shot:
            msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        msgs.append({"role": "user", "content": template.replace("{question}", conversation.question)})
        return msgs + [{"role": m.role, "content": m.content} for m in conversation.history]

    async def _generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        sem = asyncio.Semaphore(self.settings.max_concurrency)
        async with self.settings.client() as client:

            async def one(req: GenerationRequest) -> Generation:
                n = 1 if req.temperature == 0 else req.n  # greedy copies are identical (as in-process)
                comps, prompt_tokens, cached = await self._one(client, sem, req, n)
                shift = len(comps)
                while len(comps) < n:  # a server that returned fewer choices than n: ask one at a time
                    self.unhonoured.add("n")
                    more, p, c = await self._one(client, sem, req, 1, seed_shift=shift)
                    comps, prompt_tokens, cached, shift = (
                        comps + more,
                        prompt_tokens + p,
                        cached + c,
                        shift + 1,
                    )
                if len(comps) == 1 and req.n > 1:
                    comps = comps * req.n
                return Generation(tuple(comps[: req.n]), prompt_tokens, cached)

            return list(await asyncio.gather(*(one(r) for r in requests)))

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """One Generation per request, in order; the requests go out concurrently (max_concurrency)."""
        if not requests:
            return []
        for i, req in enumerate(requests):
            if req.n < 1 or req.max_tokens < 1:
                raise ValueError(f"requests[{i}]: n={req.n}, max_tokens={req.max_tokens}; both must be >= 1")
        return run_async(self._generate(list(requests)))

    def shutdown(self) -> None:
        """Nothing to stop: the server is someone else's."""


def build(policy_cfg: Any, engine_cfg: Any = None) -> OpenAIPolicy:
    """An OpenAIPolicy from a `PolicyConfig` with backend openai (the engine config is not used: no device)."""
    from tts.engines.embedded import resolve_model
    from tts.engines.vllm_common import param_count_of
    from tts.engines.vllm_policy import VLLMPolicy

    settings = EndpointSettings(
        base_url=policy_cfg.base_url,
        model=policy_cfg.model,
        api_key_env=policy_cfg.api_key_env,
        max_concurrency=policy_cfg.max_concurrency,
        timeout_s=policy_cfg.timeout_s,
        max_retries=policy_cfg.max_retries,
    )
    renderer = None
    params = int(policy_cfg.params or 0)
    if policy_cfg.tokenizer:
        from transformers import AutoTokenizer

        path = resolve_model(policy_cfg.tokenizer)
        renderer = VLLMPolicy(
            path,
            llm=_TokenizerOnly(AutoTokenizer.from_pretrained(path)),
            chat_template=policy_cfg.chat_template,
            system_prompt=policy_cfg.system_prompt,
            prompt_template=policy_cfg.prompt_template,
            few_shot=[(str(ex.question), str(ex.answer)) for ex in (policy_cfg.few_shot or ())],
            params=params or param_count_of(path),
            chat_template_date=policy_cfg.chat_template_date,
        )
        params = renderer.param_count
    few_shot = tuple((str(ex.question), str(ex.answer)) for ex in (policy_cfg.few_shot or ()))
    prompt_format = (policy_cfg.system_prompt, policy_cfg.prompt_template, few_shot)
    return OpenAIPolicy(
        settings,
        renderer=renderer,
        params=params,
        prompt_format=prompt_format,
        expected_fingerprint=policy_cfg.fingerprint,
    )
