"""Engine actors and the proxies strategies talk to.

Why: loading weights is the expensive part of a sweep, so one long-lived Ray actor per model replica holds the
engines (a policy, PRMs, or a policy plus judge PRMs on the same model) for the whole sweep, and strategies reach
it through `PolicyProxy` / `PRMProxy`, which implement the PolicyEngine / PRMScorer protocols with
`ray.get(actor.method.remote(...))`. Strategies never import Ray.

An engine that dies (vLLM's EngineDeadError) leaves a live actor behind, so the actor exits its process and Ray
restarts it (max_restarts) with fresh engines; the scheduler requeues the work that was in flight.

Endpoint models (policy.backend openai, endpoint verifiers) run in the same actor class as light CLIENT actors:
no device, a tenth of a CPU (`endpoint_only`), requests bounded and retried by the client (tts.engines.endpoint);
each call returns the retries it made, which the proxies sum for the rows (`retries`, `endpoint_ignored`).

What an actor holds is an `EngineSpec`; `builder` ("module:attr", called inside the actor) turns the spec into
engines. The default builds vLLM engines through the registries; tests pass `tts.testing.fake_actors:build`.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tts.config import EngineConfig, PolicyConfig, PRMConfig
from tts.engines.protocols import Generation, GenerationRequest, ScoreRequest, StepScores

log = logging.getLogger(__name__)
DEFAULT_BUILDER = "tts.runtime.actors:build_engines"


@dataclass(frozen=True)
class EngineSpec:
    """What one engine actor holds. `prms` are (scorer id, config) pairs built in the same process (a judge on
    the policy's model shares the policy's engine: `PRM_KINDS` builders receive `policy=`)."""

    key: str
    label: str  # short display name, e.g. "smollm2-135m +judge-smollm2-135m"
    policy: PolicyConfig | None
    prms: tuple[tuple[str, PRMConfig], ...]
    engine: EngineConfig
    builder: Any = DEFAULT_BUILDER  # "module:attr" or a picklable callable(spec) -> (policy, {name: prm})


def resolve(target: str) -> Callable[..., Any]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def build_engines(spec: EngineSpec) -> tuple[Any, dict[str, Any]]:
    """The real builder: a policy from tts.engines.POLICY_BACKENDS (in-process vLLM, or an endpoint client) and
    PRM scorers from tts.engines.PRM_KINDS."""
    from tts.engines import POLICY_BACKENDS

    policy = None
    if spec.policy is not None:
        policy = POLICY_BACKENDS.get(spec.policy.backend)(spec.policy, spec.engine)
    prms = {pid: _prm_builder(p)(p, spec.engine, policy=policy) for pid, p in spec.prms}
    return policy, prms


def _prm_builder(prm: PRMConfig) -> Callable[..., Any]:
    """The builder of a PRM: its kind's (tts.engines.PRM_KINDS), or its endpoint form when it has a base_url."""
    from tts.engines import ENDPOINT_PRM_KINDS, PRM_KINDS

    if getattr(prm, "base_url", None):
        return resolve(ENDPOINT_PRM_KINDS[prm.kind])
    return PRM_KINDS.get(prm.kind)


def endpoint_only(spec: EngineSpec) -> bool:
    """A client actor: everything it holds talks to endpoints (no model in the process, no device): it starts at
    once, beside anything, with CLIENT_CPUS of a CPU."""
    from tts.engines import ENDPOINT_BACKENDS

    policy_ok = spec.policy is None or spec.policy.backend in ENDPOINT_BACKENDS
    prms_ok = all(bool(getattr(p, "base_url", None)) for _, p in spec.prms)
    return policy_ok and prms_ok and (spec.policy is not None or bool(spec.prms))


CLIENT_CPUS = 0.1  # a client actor waits on the network: a tenth of a CPU


def endpoint_env(spec: EngineSpec) -> dict[str, Any]:
    """Ray options that hand a client actor the API key variables its endpoints name (`api_key_env`), from the
    driver's environment: a worker started before `export` would not see them. The key travels in Ray's
    runtime environment only, never in a config, row or manifest."""
    names = [getattr(spec.policy, "api_key_env", None)] + [
        getattr(p, "api_key_env", None) for _, p in spec.prms
    ]
    env = {n: os.environ[n] for n in names if n and os.environ.get(n)}
    return {"runtime_env": {"env_vars": env}} if env else {}


def retries_of(*engines: Any) -> int:
    """Retries the endpoint clients among `engines` have made so far (0 for in-process engines)."""
    return sum(int(getattr(e, "retries", 0) or 0) for e in engines if e is not None)


def _engine_dead(exc: BaseException) -> bool:
    """vLLM's EngineDeadError (any version), or a CUDA error that leaves the engine unusable."""
    names = {c.__name__ for c in type(exc).__mro__}
    return "EngineDeadError" in names or "CUDA error" in str(exc)


class EngineActor:
    """The body of a Ray engine actor (wrapped with `ray.remote(...).options(...)` by the engine pool)."""

    def __init__(self, spec: EngineSpec, cache_size: int = 8) -> None:
        started = time.monotonic()
        self.spec = spec
        builder = resolve(spec.builder) if isinstance(spec.builder, str) else spec.builder
        self.policy, self.prms = builder(spec)
        self.load_s = time.monotonic() - started
        # a policy that replays stored generations (tts.runtime.rescore.ReplayPolicy) serves them as cache hits
        preloaded = dict(getattr(self.policy, "preloaded", None) or {})
        self._cache: OrderedDict[str, list[Generation]] = OrderedDict(preloaded)
        self._cache_size = cache_size + len(preloaded)

    def _guard(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:
            if _engine_dead(exc):
                log.error("engine %s died (%s); exiting so that Ray restarts this actor", self.spec.key, exc)
                os._exit(1)
            raise

    def info(self) -> dict[str, Any]:
        """Where the actor runs and what it holds (waits for the constructor, so it doubles as `ready`)."""
        import ray

        ctx = ray.get_runtime_context()
        return {
            "key": self.spec.key,
            "pid": os.getpid(),
            "node_id": ctx.get_node_id(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "load_s": self.load_s,
            "policy_params": getattr(self.policy, "param_count", None),
            "policy_model": getattr(self.policy, "model_path", None),
            "policy_fingerprint": getattr(self.policy, "fingerprint", None),  # endpoints: the server's
            "prm_params": {k: getattr(v, "param_count", None) for k, v in self.prms.items()},
            "placement_group": str(ctx.get_placement_group_id()) if ctx.get_placement_group_id() else None,
        }

    def generate(
        self, requests: Sequence[GenerationRequest], cache_key: str | None = None
    ) -> tuple[list[Generation], bool, dict[str, Any]]:
        """(generations, cache hit, endpoint stats). With `cache_key`, a call with a key seen before returns the
        cached generations: the sample pools of one policy scored by several PRMs share one generation. The stats
        (`_stats`): an endpoint policy's retries during this call and what its server ignored."""
        if cache_key is not None and cache_key in self._cache:
            self._cache.move_to_end(cache_key)
            return self._cache[cache_key], True, self._stats(0)
        before = retries_of(self.policy)
        out = self._guard(lambda: self.policy.generate(list(requests)))
        stats = self._stats(retries_of(self.policy) - before)
        if cache_key is not None:
            self._cache[cache_key] = out
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return out, False, stats

    def _stats(self, retries: int) -> dict[str, Any]:
        """A call's retries, and what the endpoints this actor talks to have ignored so far."""
        ignored = set(getattr(self.policy, "unhonoured", ()) or ())
        for p in self.prms.values():
            ignored |= set(getattr(p, "unhonoured", ()) or ())
        return {"retries": retries, "ignored": sorted(ignored)}

    def score(self, prm: str, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        if prm not in self.prms:
            raise KeyError(f"prm: {prm!r} is not held by engine {self.spec.key}; held: {sorted(self.prms)}")
        return self.score_counted(prm, requests)[0]

    def score_counted(
        self, prm: str, requests: Sequence[ScoreRequest]
    ) -> tuple[list[StepScores], dict[str, Any]]:
        """(scores, endpoint stats): `score` with the retries an endpoint verifier made during the call."""
        if prm not in self.prms:
            raise KeyError(f"prm: {prm!r} is not held by engine {self.spec.key}; held: {sorted(self.prms)}")
        before = retries_of(self.prms[prm])
        out = self._guard(lambda: self.prms[prm].score(list(requests)))
        return out, self._stats(retries_of(self.prms[prm]) - before)


# ----------------------------------------------------------------------------------------------- proxies
class PolicyProxy:
    """A PolicyEngine backed by an engine actor. `cache_key` marks a pool generation (see EngineActor.generate)."""

    def __init__(self, actor: Any, cache_key: str | None = None) -> None:
        self.actor = actor
        self.cache_key = cache_key
        self.tokens_out = 0
        self.retries = 0  # endpoint retries made for this proxy's calls (the rows' `retries`)
        self.ignored: set[str] = (
            set()
        )  # request fields the endpoint did not honour (the rows' `endpoint_ignored`)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        import ray

        out, hit, stats = ray.get(self.actor.generate.remote(list(requests), self.cache_key))
        self.retries += stats["retries"]
        self.ignored |= set(stats["ignored"])
        if not hit:  # tokens this call made the engine generate (a cache hit generated nothing)
            self.tokens_out += sum(c.tokens_out for g in out for c in g.completions)
        return out


class PRMProxy:
    """A PRMScorer backed by an engine actor holding the scorer with id `prm` (engine_pool.prm_id)."""

    def __init__(self, actor: Any, prm: str) -> None:
        self.actor = actor
        self.prm = prm
        self.retries = 0
        self.ignored: set[str] = set()

    def score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        import ray

        out, stats = ray.get(self.actor.score_counted.remote(self.prm, list(requests)))
        self.retries += stats["retries"]
        self.ignored |= set(stats["ignored"])
        return out
