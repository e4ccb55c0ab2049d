"""Hydra SearchPathPlugin: the config trees that installed tts plugins declare, on every tts command's search
path, so a plugin that ships YAML (presets of its strategy, sweeps, ...) needs no `hydra.searchpath` override.

A package declares its tree in the entry-point group `tts.conf` as the dotted name of the folder that holds it
(read as Hydra's `pkg://`; a folder inside a package needs no __init__.py):

    [project.entry-points."tts.conf"]
    my_strategy = "my_strategy.conf"              # my_strategy/conf/strategy/*.yaml, my_strategy/conf/sweep/...

The trees are appended after tts's own conf/ (which wins for a name both have), in entry-point name order. A
strategy needs no YAML at all (its schema is `strategy=<name>`, tts.config.register_configs): this is for the
options a plugin wants to name. Hydra finds this module because it lives in the `hydra_plugins` namespace.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

GROUP = "tts.conf"


def as_search_path(value: str) -> str:
    """An entry point's value as a Hydra search path: "pkg.conf" -> "pkg://pkg.conf"; a URL ("file://...",
    from a build backend that allows one) as it is."""
    value = value.strip()
    return value if "://" in value else f"pkg://{value}"


class TTSPluginSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
            search_path.append(provider=f"{GROUP} {ep.name}", path=as_search_path(ep.value))
