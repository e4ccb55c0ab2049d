"""A small generic registry: names -> objects, with lazy "module:attr" entries and "did you mean" errors.

Why: adding a strategy, PRM, dataset or engine must be one module plus one YAML, with no hand-kept `if` chain.
Entries may be registered eagerly with the `register` decorator, or lazily as "package.module:attr" strings so
that listing names never imports heavy backends such as vLLM.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a name that is not registered; the message lists the allowed names and a close match."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it verbatim
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps names to objects of one kind (e.g. strategy functions), resolving lazy entries on first use."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}

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
        where = f"{field}: " if field else ""
        msg = f"{where}unknown {self.kind} {name!r}; allowed: {', '.join(sorted(self._entries))}"
        close = difflib.get_close_matches(str(name), list(self._entries), n=1)
        if close:
            msg += f". Did you mean {close[0]!r}?"
        return msg

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def names(self) -> list[str]:
        return sorted(self._entries)
