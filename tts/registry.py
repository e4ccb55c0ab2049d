"""A small generic registry: names -> objects, with lazy "module:attr" entries and "did you mean" errors.

Why: adding a strategy, PRM, dataset or engine must be one module plus one YAML, with no hand-kept `if` chain.
Entries may be registered eagerly with the `register` decorator, or lazily as "package.module:attr" strings so
that listing names never imports heavy backends such as vLLM.

Where entries come from (`Registry(kind, group=...)`): the Python entry-point group `group` (the project's own
built-ins are declared in pyproject.toml's `[project.entry-points."tts.strategies"]` etc., and any installed
package can add its own: a lab adds a strategy without forking), plus the modules named in the environment
variable TTS_PLUGINS (comma-separated; each registers itself on import, for code that is not packaged). A
plugin's module (from either) is shipped to Ray workers by value, so workers need not have it installed.

A name belongs to one source: registering it again from another module or entry point (a plugin that declares
`best_of_n`, two packages that declare one name) raises `DuplicateNameError` naming both sources, so an entry is
never silently replaced. The module an entry point names may register that same entry itself (both are one
source).
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
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
    return ship_by_value(mod)


def ship_by_value(mod: object) -> object:
    """Have Ray pickle `mod`'s functions and classes by value, so Ray workers need not import it (a plugin
    installed where the driver runs only, or after the workers started). Returns the module."""
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


class DuplicateNameError(ValueError):
    """Raised when a name is registered by two different sources; the message names both."""


class PluginImportError(ImportError):
    """Raised when a lazily registered entry cannot be imported; the message names its source."""


def _module_of(obj: object) -> str:
    """The module an entry comes from: "pkg.mod" of a lazy "pkg.mod:attr", else the object's own module."""
    if isinstance(obj, str):
        return obj.partition(":")[0]
    return str(getattr(obj, "__module__", "") or "")


class Registry(Generic[T]):
    """Maps names to objects of one kind (e.g. strategy functions), resolving lazy entries on first use."""

    def __init__(self, kind: str, group: str | None = None) -> None:
        self.kind = kind
        self.group = group
        self._entries: dict[str, T | str] = {}
        self._sources: dict[str, tuple[str, str]] = {}  # name -> (module it comes from, description)
        self._discovered = group is None

    def _discover(self) -> None:
        """Add the entry points of `group` (lazily, as "module:attr") and import the TTS_PLUGINS modules, once.
        A name declared by two sources raises DuplicateNameError (and again on every later use)."""
        if self._discovered:
            return
        for ep in entry_points(group=self.group):
            dist = getattr(getattr(ep, "dist", None), "name", None)
            where = f"entry point {ep.name} = {ep.value}" + (f" (package {dist})" if dist else "")
            if ep.name in self._entries and self._sources[ep.name][1] == where:
                continue  # one distribution seen twice on the path
            self._add(ep.name, ep.value, _module_of(ep.value), where)
        self._discovered = True
        for module in filter(None, (m.strip() for m in os.environ.get("TTS_PLUGINS", "").split(","))):
            load_plugin(module)

    def register(
        self, name: str, obj: T | str | None = None, source: str | None = None
    ) -> Callable[[T], T] | None:
        """Register `obj` under `name`; without `obj`, return a decorator. `obj` may be a "module:attr" string.
        `source` describes where the registration comes from, for errors (default: the calling module)."""
        caller = str(sys._getframe(1).f_globals.get("__name__", "?"))
        if obj is not None:
            origin = _module_of(obj) if isinstance(obj, str) else caller
            self._add(name, obj, origin, source or f"module {origin}")
            return None

        def decorator(target: T) -> T:
            origin = _module_of(target) or caller
            self._add(name, target, origin, source or f"module {origin}")
            return target

        return decorator

    def _add(self, name: str, obj: T | str, origin: str, where: str) -> None:
        """Add one entry coming from module `origin` (described by `where`). The same object, or the module
        that a lazy entry names registering its own entry, is one source; anything else under a taken name
        raises DuplicateNameError naming both."""
        existing = self._entries.get(name)
        if existing is not None and existing is not obj:
            old_origin, old_where = self._sources[name]
            if old_origin != origin:
                raise DuplicateNameError(
                    f"{self.kind} {name!r} is registered twice: by {old_where} and by {where}; "
                    "rename one (a name belongs to one source)"
                )
            if isinstance(obj, str) and not isinstance(existing, str):
                return  # the module already registered the object that its entry point names
        self._entries[name] = obj
        self._sources[name] = (origin, where)

    def source(self, name: str) -> str:
        """Where `name` was registered: an entry point (with its package) or a module."""
        self._discover()
        if name not in self._sources:
            raise UnknownNameError(self.unknown_message(name))
        return self._sources[name][1]

    def get(self, name: str) -> T:
        """Return the object for `name`, importing it if it was registered lazily."""
        self._discover()
        if name not in self._entries:
            raise UnknownNameError(self.unknown_message(name))
        entry = self._entries[name]
        if isinstance(entry, str):
            module_name, _, attr = entry.partition(":")
            try:
                entry = getattr(importlib.import_module(module_name), attr)
            except (ModuleNotFoundError, AttributeError) as exc:
                if isinstance(exc, ModuleNotFoundError) and not module_name.startswith(str(exc.name)):
                    raise  # a dependency of the module is missing, not the module: its own message says which
                raise PluginImportError(
                    f"{self.kind} {name!r}: cannot load {self._sources[name][1]}: {exc}; "
                    "reinstall or uninstall that package"
                ) from exc
            self._entries[name] = entry
            if module_name.partition(".")[0] != __name__.partition(".")[0]:  # a plugin's, not ours
                ship_by_value(sys.modules[module_name.partition(".")[0]])
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
