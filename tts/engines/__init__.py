"""Policy generation and PRM scoring backends behind the two protocols in tts.engines.protocols.

PRM_KINDS maps a PRMConfig.kind to a builder `build(prm_cfg, engine_cfg, policy=None) -> PRMScorer`
(lazy "module:attr" entries, so that naming a kind never imports vLLM).
"""

from __future__ import annotations

from tts.registry import Registry

PRM_KINDS: Registry = Registry("PRM kind")
PRM_KINDS.register("none", "tts.engines.none_prm:build")
PRM_KINDS.register("rule_arithmetic", "tts.engines.rule_prm:build")
PRM_KINDS.register("vllm_pooling", "tts.engines.vllm_prm:build")
PRM_KINDS.register("judge", "tts.engines.judge_prm:build")
