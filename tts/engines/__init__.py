"""Policy generation and PRM scoring backends behind the two protocols in tts.engines.protocols.

PRM_KINDS maps a PRMConfig.kind to a builder `build(prm_cfg, engine_cfg, policy=None) -> PRMScorer`
(lazy "module:attr" entries, so that naming a kind never imports vLLM). POLICY_BACKENDS maps a
PolicyConfig.backend to a builder `build(policy_cfg, engine_cfg) -> PolicyEngine`: "vllm" (in-process, in an
engine actor) and "openai" (an OpenAI-compatible endpoint, from a light client actor).
"""

from __future__ import annotations

from tts.registry import Registry

# Entries: the entry-point group "tts.prms" (built-ins declared in pyproject.toml) and TTS_PLUGINS modules.
PRM_KINDS: Registry = Registry("PRM kind", group="tts.prms")
PRM_KINDS.register("stored", "tts.engines.stored_prm:build")  # scores that come with imported pools
POLICY_BACKENDS: Registry = Registry("policy backend")
POLICY_BACKENDS.register("vllm", "tts.engines.vllm_policy:build")
POLICY_BACKENDS.register("openai", "tts.engines.openai_policy:build")
# PRM kinds that load a model (prm.model names it; the runtime gives it an engine)
MODEL_PRM_KINDS = ("vllm_pooling", "judge", "likelihood")
ENDPOINT_BACKENDS = ("openai",)  # backends that hold no model: no device, a client actor
# PRM kinds that also run against an endpoint (a PRMConfig with base_url): the builder used then.
ENDPOINT_PRM_KINDS = {"vllm_pooling": "tts.engines.openai_prm:build", "judge": "tts.engines.openai_prm:build"}
