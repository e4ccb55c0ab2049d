"""Test-time compute strategies, one module each, each registering a `StrategyEntry` (tts.strategies.entry).

Entries come from the entry-point group `tts.strategies` (the built-ins are declared in pyproject.toml; any
installed package adds its own: one module and one entry point, docs/add_a_strategy.md) and, for unpackaged code,
from modules named in TTS_PLUGINS, which call `STRATEGIES.register(name, entry)` on import. Entries are lazy so
that listing names imports nothing heavy. A name has one source (a second one is an error naming both); each
entry's schema becomes `strategy=<name>` in Hydra's ConfigStore (tts.config.register_configs), so no YAML.
"""

from __future__ import annotations

from tts.registry import Registry
from tts.strategies.entry import StrategyEntry, Traits

STRATEGIES: Registry[StrategyEntry] = Registry("strategy", group="tts.strategies")

__all__ = ["STRATEGIES", "StrategyEntry", "Traits"]
