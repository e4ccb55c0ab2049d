"""Verifiers on endpoints (a PRMConfig with `base_url`): `EndpointPoolingPRM`, a pooling PRM served by `vllm serve`
(kind vllm_pooling: its /pooling endpoint), and `EndpointJudgePRM`, a judge against any chat endpoint (kind
judge), both `PRMScorer`s, so a verifier deployed once serves many sweeps.

Why this shape: the in-process PRM (tts.engines.vllm_prm) renders each candidate in its format (qwen_math_prm:
the chat template with steps joined by "<extra_0>"; step_tag: "question step ки\\n..."), runs a token-wise
pooling pass and reads the score at each step tag. Here the same text is rendered and tokenized with the PRM's
own tokenizer (`prm.tokenizer`, or `prm.model` when that is a local folder / embedded name), the token ids go to
POST <server>/pooling with task token_classify and raw logits (`use_activation: false`), and the rows at the tag
positions become the step scores (softmax of the two labels). The server must pool every token:
    python -m vllm.entrypoints.openai.api_server --model <prm> --runner pooling \\
        --pooler-config '{"task": "token_classify", "tok_pooling_type": "ALL"}' ...
(the in-process engine sets the same PoolerConfig). Each candidate is one request, all in flight at once under
`max_concurrency`, retried and counted as the endpoint policy's (tts.engines.endpoint). Token accounting: the
server's `usage.prompt_tokens` per candidate, all of them computed (a token-wise request does not read vLLM's
prefix cache by default), so `prm_tokens` is what the server read; the in-process PRM's incremental scoring
charges less on step search.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

from tts.engines.endpoint import EndpointSettings, RetryCounter, run_async
from tts.engines.protocols import ScoreRequest, StepScores
from tts.engines.vllm_prm import QWEN_PRM_SEP, prm_text, single_token


def _softmax_last_two(row: Sequence[float]) -> float:
    """P(label 1) from a token's raw logits (the last two: [bad, good])."""
    a, b = float(row[-2]), float(row[-1])
    m = max(a, b)
    ea, eb = math.exp(a - m), math.exp(b - m)
    return eb / (ea + eb)


class EndpointPoolingPRM:
    """A `PRMScorer` on a /pooling endpoint. `tokenizer`: the PRM's HF tokenizer (renders and finds the tags)."""

    def __init__(
        self,
        settings: EndpointSettings,
        tokenizer: Any,
        *,
        format: str = "qwen_math_prm",
        step_tag: str = "ки",
        params: int = 0,
    ) -> None:
        self.settings = settings
        self.tokenizer = tokenizer
        self.format = format
        self.step_tag = step_tag
        self.param_count = int(params)
        self.model_path = settings.model
        self.counter = RetryCounter(settings)
        self.unhonoured: set[str] = set()
        if format == "qwen_math_prm":
            self.tag_id = single_token(tokenizer, QWEN_PRM_SEP, after_space=False)
        else:
            self.tag_id = single_token(tokenizer, step_tag, after_space=True)

    @property
    def retries(self) -> int:
        return self.counter.retries

    def render(self, question: str, steps: Sequence[str]) -> str:
        """The text the PRM reads: the same as in-process (tts.engines.vllm_prm.prm_text)."""
        return prm_text(self.tokenizer, self.format, self.step_tag, question, steps)

    def _ids(self, req: ScoreRequest) -> list[int]:
        text = self.render(req.question, req.steps)
        return list(self.tokenizer.encode(text, add_special_tokens=self.format != "qwen_math_prm"))

    @property
    def pooling_url(self) -> str:
        """vLLM serves /pooling beside /v1, not under it."""
        return self.settings.base_url.rstrip("/").removesuffix("/v1") + "/pooling"

    async def _one(self, client: Any, sem: asyncio.Semaphore, req: ScoreRequest) -> StepScores:
        ids = self._ids(req)
        body = {
            "model": self.settings.model,
            "input": ids,
            "task": "token_classify",
            "use_activation": False,
            "add_special_tokens": False,
        }
        resp = await self.counter.call(lambda: client.post(self.pooling_url, body=body, cast_to=object), sem)
        rows = resp["data"][0]["data"]
        if len(rows) != len(ids):
            raise RuntimeError(
                f"prm.base_url: the server returned {len(rows)} rows for {len(ids)} tokens; start it with "
                """--pooler-config '{"task": "token_classify", "tok_pooling_type": "ALL"}'"""
            )
        tags = [p for p, t in enumerate(ids) if t == self.tag_id]
        if len(tags) != len(req.steps):
            raise RuntimeError(f"PRM {self.settings.model}: {len(tags)} step tags for {len(req.steps)} steps")
        tokens = int((resp.get("usage") or {}).get("prompt_tokens") or len(ids))
        return StepScores(scores=tuple(_softmax_last_two(rows[p]) for p in tags), tokens=tokens)

    async def _score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        sem = asyncio.Semaphore(self.settings.max_concurrency)
        async with self.settings.client() as client:

            async def one(req: ScoreRequest) -> StepScores:
                return await self._one(client, sem, req) if req.steps else StepScores(scores=(), tokens=0)

            return list(await asyncio.gather(*(one(r) for r in requests)))

    def score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        """One StepScores per request, in order; the requests go out concurrently (max_concurrency)."""
        return run_async(self._score(list(requests))) if requests else []

    def shutdown(self) -> None:
        """Nothing to stop: the server is someone else's."""


JUDGE_TOP = 20  # top logprobs asked for the judge's one answer token (OpenAI's maximum)


class EndpointJudgePRM:
    """A judge PRM (kind judge with `prm.base_url`) against a chat endpoint: for step k the messages of
    tts.engines.judge_prm (format judge: one user turn with the question and steps[:k+1]; chat_steps: RLHFlow's
    turns) go to /v1/chat/completions with max_tokens 1, temperature 0 and the top-20 logprobs, and the score is
    P(yes) / (P(yes) + P(no)) summed over the spellings ("Yes", " Yes", "yes", " yes") found among them, as the
    in-process judge reads it (none found: 0.5). Tokens: each prefix's `usage.prompt_tokens`, cached ones where
    the server reports them."""

    def __init__(
        self,
        settings: EndpointSettings,
        *,
        format: str = "judge",
        judge_prompt: str | None = None,
        yes_token: str = "Yes",
        no_token: str = "No",
        params: int = 0,
    ) -> None:
        from tts.engines.judge_prm import DEFAULT_JUDGE_PROMPT

        self.settings = settings
        self.format = "chat_steps" if format == "chat_steps" else "judge"
        self.judge_prompt = judge_prompt or DEFAULT_JUDGE_PROMPT
        self.yes_token = yes_token
        self.yes = _spellings(yes_token)
        self.no = _spellings(no_token)
        self.param_count = int(params)
        self.model_path = settings.model
        self.counter = RetryCounter(settings)
        self.unhonoured: set[str] = set()

    @property
    def retries(self) -> int:
        return self.counter.retries

    def messages(self, question: str, steps: Sequence[str]) -> list[dict[str, str]]:
        """The chat turns asking about the LAST of `steps`."""
        if self.format == "chat_steps":
            out: list[dict[str, str]] = []
            for i, step in enumerate(steps):
                out.append({"role": "user", "content": f"{question} {step}" if i == 0 else step})
                if i < len(steps) - 1:
                    out.append({"role": "assistant", "content": self.yes_token})
            return out
        text = self.judge_prompt.replace("{steps}", "\n\n".join(steps)).replace("{question}", question)
        return [{"role": "user", "content": text}]

    async def _one(self, client: Any, sem: asyncio.Semaphore, question: str, steps: Sequence[str]) -> tuple:
        msgs = self.messages(question, steps)
        resp = await self.counter.call(
            lambda: client.chat.completions.create(
                model=self.settings.model,
                messages=msgs,
                max_tokens=1,
                temperature=0.0,
                logprobs=True,
                top_logprobs=JUDGE_TOP,
            ),
            sem,
        )
        content = (resp.choices[0].logprobs and resp.choices[0].logprobs.content) or []
        if not content:
            self.unhonoured.add("logprobs")
        top = {t.token: t.logprob for t in (content[0].top_logprobs if content else [])}
        yes = sum(math.exp(lp) for tok, lp in top.items() if tok in self.yes and math.isfinite(lp))
        no = sum(math.exp(lp) for tok, lp in top.items() if tok in self.no and math.isfinite(lp))
        usage = resp.usage
        details = getattr(usage, "prompt_tokens_details", None)
        cached = int(getattr(details, "cached_tokens", 0) or 0) if details is not None else 0
        p = 0.5 if yes + no <= 0 else yes / (yes + no)
        return p, int(getattr(usage, "prompt_tokens", 0) or 0), cached

    async def _score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        sem = asyncio.Semaphore(self.settings.max_concurrency)
        async with self.settings.client() as client:
            jobs = [
                self._one(client, sem, r.question, r.steps[: k + 1])
                for r in requests
                for k in range(len(r.steps))
            ]
            flat = list(await asyncio.gather(*jobs))
        out, i = [], 0
        for r in requests:
            part, i = flat[i : i + len(r.steps)], i + len(r.steps)
            out.append(
                StepScores(
                    scores=tuple(p for p, _, _ in part),
                    tokens=sum(t for _, t, _ in part),
                    cached_tokens=sum(c for _, _, c in part),
                )
            )
        return out

    def score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        """Per-step scores for every request; every step prefix of every request in flight at once."""
        return run_async(self._score(list(requests))) if requests else []

    def shutdown(self) -> None:
        """Nothing to stop: the server is someone else's."""


def _spellings(word: str) -> set[str]:
    return {word, " " + word, word.lower(), " " + word.lower()}


def endpoint_settings(cfg: Any) -> EndpointSettings:
    """The EndpointSettings of a policy or PRM config with endpoint fields."""
    return EndpointSettings(
        base_url=cfg.base_url,
        model=cfg.model,
        api_key_env=cfg.api_key_env,
        max_concurrency=cfg.max_concurrency,
        timeout_s=cfg.timeout_s,
        max_retries=cfg.max_retries,
    )


def build_pooling(prm_cfg: Any) -> EndpointPoolingPRM:
    """An EndpointPoolingPRM from a PRMConfig (kind vllm_pooling, base_url set)."""
    from transformers import AutoTokenizer

    from tts.engines.embedded import resolve_model
    from tts.engines.vllm_common import param_count_of

    path = resolve_model(prm_cfg.tokenizer or prm_cfg.model)
    params = int(prm_cfg.params or 0) or param_count_of(path)
    return EndpointPoolingPRM(
        endpoint_settings(prm_cfg),
        AutoTokenizer.from_pretrained(path),
        format=prm_cfg.format,
        step_tag=prm_cfg.step_tag,
        params=params,
    )


def build_judge(prm_cfg: Any) -> EndpointJudgePRM:
    """An EndpointJudgePRM from a PRMConfig (kind judge, base_url set)."""
    return EndpointJudgePRM(
        endpoint_settings(prm_cfg),
        format=prm_cfg.format,
        judge_prompt=prm_cfg.judge_prompt,
        yes_token=prm_cfg.yes_token,
        no_token=prm_cfg.no_token,
        params=int(prm_cfg.params or 0),
    )


def build(prm_cfg: Any, engine_cfg: Any = None, policy: Any = None) -> Any:
    """The endpoint scorer of a PRMConfig with `base_url` (tts.engines.ENDPOINT_PRM_KINDS): a pooling PRM's
    /pooling, or a judge's chat endpoint. No engine and no policy are used."""
    if prm_cfg.kind == "judge":
        return build_judge(prm_cfg)
    if prm_cfg.kind == "vllm_pooling":
        return build_pooling(prm_cfg)
    raise ValueError(f"prm.base_url: kind {prm_cfg.kind!r} has no endpoint form; use vllm_pooling or judge")
