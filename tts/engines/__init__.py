"""Policy generation and PRM scoring backends behind the two protocols in tts.engines.protocols.

PRM_KINDS maps a PRMConfig.kind to a builder `build(prm_cfg, engine_cfg, policy=None) -> PRMScorer`
(lazy "module:attr" entries, so that naming a kind never imports vLLM).
"""

from __future__ import annotations

from tts.registry import Registry

# Entries: the entry-point group "tts.prms" (built-ins declared in pyproject.toml) and TTS_PLUGINS modules.
PRM_KINDS: Registry = Registry("PRM kind", group="tts.prms")
