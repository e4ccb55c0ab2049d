"""Test-time compute strategies, one module each, each registering a `StrategyEntry` (tts.strategies.entry).

Entries come from the entry-point group `tts.strategies` (the built-ins are declared in pyproject.toml; any
installed package can add its own) and from modules named in TTS_PLUGINS, which call
`STRATEGIES.register(name, entry)` on import. Entries are lazy so that listing names imports nothing heavy.
"""

from __future__ import annotations

from tts.registry import Registry
from tts.strategies.entry import StrategyEntry, Traits

STRATEGIES: Registry[StrategyEntry] = Registry("strategy", group="tts.strategies")

__all__ = ["STRATEGIES", "StrategyEntry", "Traits"]
