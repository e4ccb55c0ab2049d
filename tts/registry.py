"""A small generic registry: names -> objects, with lazy "module:attr" entries and "did you mean" errors.

Why: adding a strategy, PRM, dataset or engine must be one module plus one YAML, with no hand-kept `if` chain.
Entries may be registered eagerly with the `register` decorator, or lazily as "package.module:attr" strings so
that listing names never imports heavy backends such as vLLM.

Where entries come from (`Registry(kind, group=...)`): the Python entry-point group `group` (the project's own
built-ins are declared in pyproject.toml's `[project.entry-points."tts.strategies"]` etc., and any installed
package can add its own: a lab adds a strategy without forking), plus the modules named in the environment
variable TTS_PLUGINS (comma-separated; each registers itself on import, for code that is not packaged).
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


def did_you_mean(value: object, choices: Iterable[object]) -> str:
    """ ". Did you mean 'x'?" for the closest of `choices` to a misspelt `value`, or "" when none is close."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    return f". Did you mean {close[0]!r}?" if close else ""


def load_plugin(module: str) -> object:
    """Import a plugin module (it registers its entries on import) and have Ray ship it to workers by value, so
    a module that only the driver can import (a lab's file on the driver's path, not an installed package)
    still runs inside Ray tasks. Returns the module."""
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"TTS_PLUGINS: cannot import plugin module {module!r}: {exc}") from exc
    try:
        from ray import cloudpickle
    except ImportError:  # no Ray here: nothing to ship
        return mod
    cloudpickle.register_pickle_by_value(mod)
    return mod


class UnknownNameError(KeyError):
    """Raised for a name that is not registered; the message lists the allowed names and a close match."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it verbatim
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps names to objects of one kind (e.g. strategy functions), resolving lazy entries on first use."""

    def __init__(self, kind: str, group: str | None = None) -> None:
        self.kind = kind
        self.group = group
        self._entries: dict[str, T | str] = {}
        self._discovered = group is None

    def _discover(self) -> None:
        """Add the entry points of `group` (lazily, as "module:attr") and import the TTS_PLUGINS modules, once."""
        if self._discovered:
            return
        self._discovered = True
        for ep in entry_points(group=self.group):
            self._entries.setdefault(ep.name, ep.value)
        for module in filter(None, (m.strip() for m in os.environ.get("TTS_PLUGINS", "").split(","))):
            load_plugin(module)

    def register(self, name: str, obj: T | str | None = None) -> Callable[[T], T] | None:
        """Register `obj` under `name`; without `obj`, return a decorator. `obj` may be a "module:attr" string."""
        if obj is not None:
            self._add(name, obj)
            return None

        def decorator(target: T) -> T:
            self._add(name, target)
            return target

        return decorator

    def _add(self, name: str, obj: T | str) -> None:
        existing = self._entries.get(name)
        if existing is not None and existing is not obj and not isinstance(existing, str):
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = obj

    def get(self, name: str) -> T:
        """Return the object for `name`, importing it if it was registered lazily."""
        self._discover()
        if name not in self._entries:
            raise UnknownNameError(self.unknown_message(name))
        entry = self._entries[name]
        if isinstance(entry, str):
            module_name, _, attr = entry.partition(":")
            entry = getattr(importlib.import_module(module_name), attr)
            self._entries[name] = entry
        return entry

    def unknown_message(self, name: object, field: str | None = None) -> str:
        """The error text for an unknown name: field, bad value, allowed values, and the closest match."""
        self._discover()
        where = f"{field}: " if field else ""
        msg = f"{where}unknown {self.kind} {name!r}; allowed: {', '.join(sorted(self._entries))}"
        return msg + did_you_mean(name, self._entries)

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        self._discover()
        return iter(sorted(self._entries))

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        """(name, object) for every entry, importing lazy ones."""
        for name in self.names():
            yield name, self.get(name)
