"""The policy engine on vLLM: `VLLMPolicy` implements `PolicyEngine` over one `vllm.LLM`.

Why this shape: strategies batch everything (all problems x all samples, or every beam of every problem), so
`generate` turns a whole list of requests into ONE `llm.generate` call with one `SamplingParams` per request;
vLLM schedules them together and its prefix cache serves the shared prompt (and, for beam search, the shared
partial solution) once. Requests carry conversations (tts.engines.protocols); the prompt format comes from the
policy YAML:

    system_prompt -> system turn; few_shot -> earlier user/assistant turns (questions verbatim);
    prompt_template ("{question}" replaced) -> the question's user turn; the conversation's history turns after
    it; then the tokenizer's chat template with add_generation_prompt=True, and the partial assistant turn
    appended. With chat_template=false: the same parts as plain text, blank-line separated.
    A template that reads the clock (Llama 3.2: "Today Date: ...") reads `chat_template_date` instead
    (tts.engines.chat_template), so a prompt is the same on every day it is rendered.

Greedy requests (temperature 0) with n > 1 are sampled once and the completion is repeated n times: vLLM
refuses n > 1 when greedy, and the copies would be identical anyway (each copy still reports its tokens_out).

Finish reasons: vLLM "length" -> "length"; "stop" on a stop string (`stop_reason` is a str) -> "stop_string"
(the string is not in the text); any other stop (EOS / stop token) -> "eos". Token counts: `tokens_out` from
the sampled token ids, `prompt_tokens` from the prompt ids, `cached_prompt_tokens` from vLLM's
`num_cached_tokens` when the version reports it (FLOPs charge only uncached prefill).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from tts.engines.chat_template import DEFAULT_TEMPLATE_DATE, template_kwargs
from tts.engines.embedded import resolve_model
from tts.engines.protocols import (
    Completion,
    Conversation,
    FinishReason,
    Generation,
    GenerationRequest,
    Message,
)
from tts.engines.vllm_common import EngineSettings, make_llm, param_count_of, shutdown_llm

log = logging.getLogger(__name__)
_RENDER_CACHE = 4096  # rendered conversation heads kept (search re-renders one question per beam per step)


class VLLMPolicy:
    """A `PolicyEngine` on a vLLM model. Build it with `build(policy_cfg, engine_cfg)` or plain arguments.

    model: a local folder or hub id ("embedded:<name>" is resolved by `build`/`resolve_model` first).
    few_shot: (question, answer) pairs rendered as earlier user/assistant turns.
    logprobs: ask vLLM for the sampled tokens' logprobs so `Completion.cumulative_logprob` is filled
      (vLLM only tracks it when logprobs are requested; the cost is one log-softmax per sampled token).
    llm: an already started `vllm.LLM` to use instead of starting one (tests, sharing).
    """

    def __init__(
        self,
        model: str,
        *,
        tokenizer: str | None = None,
        chat_template: bool = True,
        system_prompt: str | None = None,
        prompt_template: str = "{question}",
        few_shot: Sequence[tuple[str, str]] = (),
        params: int | None = None,
        engine: EngineSettings | None = None,
        logprobs: bool = True,
        llm: Any = None,
        chat_template_date: str = DEFAULT_TEMPLATE_DATE,
    ) -> None:
        if "{question}" not in prompt_template:
            raise ValueError(
                f"prompt_template: {prompt_template!r} must contain the placeholder {{question}}"
            )
        self.model_path = model
        self.chat_template = chat_template
        self.system_prompt = system_prompt
        self.prompt_template = prompt_template
        self.few_shot = tuple((str(q), str(a)) for q, a in few_shot)
        self._template_kwargs = template_kwargs(chat_template_date)  # raises on a bad date, before the engine
        self.logprobs = logprobs
        self.engine = engine or EngineSettings()
        self.start_seconds = 0.0
        if llm is None:
            kwargs = self.engine.llm_kwargs()
            if tokenizer:
                kwargs["tokenizer"] = tokenizer
            start = time.perf_counter()
            llm = make_llm(model, **kwargs)
            self.start_seconds = time.perf_counter() - start
            log.info("policy %s ready in %.1f s", model, self.start_seconds)
        self.llm = llm
        self.tokenizer = llm.get_tokenizer()
        self._probe_ids = self.tokenizer.encode(_PROBE, add_special_tokens=False)  # see encode_prompt
        if chat_template and not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                f"policy.chat_template: true, but the tokenizer of {model!r} has no chat template; "
                "set policy.chat_template=false to prompt it with plain text"
            )
        self.param_count = int(params) if params else param_count_of(model)
        self._rendered: dict[tuple[str, tuple[Message, ...]], str] = {}  # conversation head -> prompt text

    # ------------------------------------------------------------------------------------------ prompts
    def _user_turn(self, question: str) -> str:
        return self.prompt_template.replace("{question}", question)

    def messages(self, conversation: Conversation) -> list[dict[str, str]]:
        """The chat messages of a conversation: system, few-shot turns, the templated question, its history."""
        msgs = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        for q, a in self.few_shot:
            msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        msgs.append({"role": "user", "content": self._user_turn(conversation.question)})
        msgs += [{"role": m.role, "content": m.content} for m in conversation.history]
        return msgs

    def render(self, prompt: Conversation | str) -> str:
        """The exact prompt text: raw text as given; a conversation rendered with the chat template (or as plain
        blank-line separated text) up to the assistant turn being written, then its partial turn."""
        if isinstance(prompt, str):
            return prompt
        key = (prompt.question, prompt.history)
        head = self._rendered.get(key)
        if head is None:
            head = self._render_head(prompt)
            if len(self._rendered) >= _RENDER_CACHE:
                self._rendered.clear()
            self._rendered[key] = head
        return head + prompt.partial

    def _render_head(self, conversation: Conversation) -> str:
        if self.chat_template:
            return self.tokenizer.apply_chat_template(
                self.messages(conversation),
                add_generation_prompt=True,
                tokenize=False,
                **self._template_kwargs,  # the template's clock reads the pinned date
            )
        parts = [self.system_prompt] if self.system_prompt else []
        parts += [f"{q}\n{a}" for q, a in self.few_shot]
        parts.append(self._user_turn(conversation.question))
        parts += [m.content for m in conversation.history]
        return "\n\n".join(parts) + "\n"

    def encode_prompt(self, prompt: str) -> list[int]:
        """Token ids for `prompt`, tokenized here (chat-templated text already holds its special tokens).

        A prompt that ends in whitespace (a partial solution ending at the step delimiter "\n\n") is tokenized
        as that whitespace is when text follows it, i.e. as the model itself produced it. BPE tokenizers merge a
        trailing "\n\n" into a token the model rarely emits before more text, and continued from it the model
        writes a different next step: SmolLM2 after "3 + 2 = 5.\n\n" wrote "The answer is \\boxed{5}." in 0 of 8
        samples as a prompt, in 8 of 8 when sampling the whole solution. Falls back to plain tokenization when
        the probe text does not tokenize on its own (e.g. SentencePiece's leading-space marker)."""
        add_special = not self.chat_template
        plain = self.tokenizer.encode(prompt, add_special_tokens=add_special)
        if prompt == prompt.rstrip():
            return plain
        probe = self._probe_ids
        with_probe = self.tokenizer.encode(prompt + _PROBE, add_special_tokens=add_special)
        if len(with_probe) > len(probe) and with_probe[-len(probe) :] == probe:
            ids = with_probe[: -len(probe)]
            if self.tokenizer.decode(ids) == self.tokenizer.decode(plain):
                return ids
        return plain

    # --------------------------------------------------------------------------------------- generation
    def sampling_params(self, req: GenerationRequest) -> Any:
        """vLLM's SamplingParams for a request; top_k / min_p only when set (vLLM's "off" value of top_k
        differs across versions: -1, then 0); the request's seed when it has one (vLLM gives completion i of
        an n > 1 request seed + i)."""
        from vllm import SamplingParams

        knobs: dict[str, Any] = {}
        if req.top_k is not None:
            knobs["top_k"] = req.top_k
        if req.min_p:
            knobs["min_p"] = req.min_p
        if req.seed is not None and req.temperature > 0:  # greedy needs no seed
            knobs["seed"] = req.seed
        return SamplingParams(
            n=1 if req.temperature == 0 else req.n,  # vLLM refuses n > 1 when greedy; see generate()
            max_tokens=req.max_tokens,
            temperature=req.temperature,
            top_p=req.top_p,
            stop=list(req.stop) or None,
            logprobs=0 if self.logprobs else None,
            **knobs,
        )

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """One Generation per request, in order, from ONE `llm.generate` call."""
        if not requests:
            return []
        for i, req in enumerate(requests):
            if req.n < 1 or req.max_tokens < 1:
                raise ValueError(f"requests[{i}]: n={req.n}, max_tokens={req.max_tokens}; both must be >= 1")
        prompts = [{"prompt_token_ids": self.encode_prompt(self.render(r.prompt))} for r in requests]
        params = [self.sampling_params(r) for r in requests]
        kwargs: dict[str, Any] = {"use_tqdm": False}
        outputs = self.llm.generate(prompts, params, **kwargs)
        return [_to_generation(out, req.n) for out, req in zip(outputs, requests, strict=True)]

    def shutdown(self) -> None:
        """Stop the engine and free its memory (the object is unusable afterwards)."""
        shutdown_llm(self.llm)
        self.llm = None


_PROBE = "The"  # a word that starts a step; it follows the delimiter in a solution the model writes


def finish_reason(vllm_reason: str | None, stop_reason: object) -> FinishReason:
    """Map vLLM's (finish_reason, stop_reason) to the protocol's FinishReason."""
    if vllm_reason == "length":
        return "length"
    if vllm_reason == "stop":
        return "stop_string" if isinstance(stop_reason, str) else "eos"
    raise RuntimeError(f"vLLM finished a completion with finish_reason={vllm_reason!r} (aborted or failed)")


def _to_generation(out: Any, n: int) -> Generation:
    """A vLLM RequestOutput as a Generation with `n` completions (a greedy request is sampled once and its
    completion repeated n times, since greedy copies are identical)."""
    completions = tuple(
        Completion(
            text=o.text,
            tokens_out=len(o.token_ids),
            finish_reason=finish_reason(o.finish_reason, o.stop_reason),
            cumulative_logprob=o.cumulative_logprob,
        )
        for o in sorted(out.outputs, key=lambda o: o.index)
    )
    if len(completions) == 1 and n > 1:
        completions = completions * n
    return Generation(
        completions=completions,
        prompt_tokens=len(out.prompt_token_ids or ()),
        cached_prompt_tokens=int(getattr(out, "num_cached_tokens", None) or 0),
    )


def build(policy_cfg: Any, engine_cfg: Any) -> VLLMPolicy:
    """Build a VLLMPolicy from a `PolicyConfig` and an `EngineConfig` (resolving "embedded:<name>")."""
    model = resolve_model(policy_cfg.model)
    tokenizer = resolve_model(policy_cfg.tokenizer) if policy_cfg.tokenizer else None
    return VLLMPolicy(
        model,
        tokenizer=tokenizer,
        chat_template=policy_cfg.chat_template,
        system_prompt=policy_cfg.system_prompt,
        prompt_template=policy_cfg.prompt_template,
        few_shot=[(ex.question, ex.answer) for ex in (policy_cfg.few_shot or ())],
        params=policy_cfg.params,
        engine=EngineSettings.from_config(engine_cfg),
        chat_template_date=policy_cfg.chat_template_date,
    )
