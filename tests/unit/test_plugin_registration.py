"""Declaring a strategy once: the registry refuses a name from two sources (naming both), an entry's functions
are checked against its schema's fields when it is made, a strategy composes from its schema with no YAML (and
the built-ins' cell ids do not depend on their YAML), installed plugins' config trees join Hydra's search path,
and the errors met on the way are one line each (Hydra's cause kept, a value's expected type, a results_dir that
cannot be used)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import tts.registry as registry_module
from hydra_plugins.tts_searchpath import as_search_path
from tts.cli import main
from tts.config import ConfigError, conf_dir
from tts.grid import expand
from tts.registry import DuplicateNameError, PluginImportError, Registry
from tts.schemas import StrategyConfig
from tts.strategies.entry import RegistrationError, StrategyEntry, Traits


def _entry_points(*triples: tuple[str, str, str]) -> Any:
    """A stand-in for importlib.metadata.entry_points: (name, value, distribution) per entry point."""
    eps = [SimpleNamespace(name=n, value=v, dist=SimpleNamespace(name=d)) for n, v, d in triples]
    return lambda group: eps


def test_two_packages_declaring_one_name_fail_naming_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        registry_module,
        "entry_points",
        _entry_points(("a", "pkg_one.mod:A", "pkg-one"), ("a", "pkg_two:A", "pkg-two")),
    )
    reg: Registry[object] = Registry("thing", group="things")
    with pytest.raises(DuplicateNameError) as exc:
        reg.names()
    assert str(exc.value) == (
        "thing 'a' is registered twice: by entry point a = pkg_one.mod:A (package pkg-one) and by entry point "
        "a = pkg_two:A (package pkg-two); rename one (a name belongs to one source)"
    )
    with pytest.raises(DuplicateNameError):  # and on every later use, not once
        reg.get("a")


def test_a_module_registering_a_name_an_entry_point_holds_fails_naming_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry_module, "entry_points", _entry_points(("a", "pkg_one.mod:A", "pkg-one")))
    reg: Registry[object] = Registry("thing", group="things")
    assert reg.names() == ["a"]
    with pytest.raises(
        DuplicateNameError, match=r"by entry point a = pkg_one.mod:A .* and by module tests\."
    ):
        reg.register("a", object())
    reg.register("b", obj := object())
    reg.register("b", obj)  # the same object again: one source
    with pytest.raises(DuplicateNameError, match="'b' is registered twice: by module tests"):
        reg.register("b", "other_pkg:B")
    assert reg.source("b").startswith("module tests.")


def test_the_module_an_entry_point_names_may_register_its_own_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin that registers itself on import (TTS_PLUGINS) and is also declared as an entry point."""
    monkeypatch.setattr(registry_module, "entry_points", _entry_points(("a", f"{__name__}:THING", "lab")))
    reg: Registry[object] = Registry("thing", group="things")
    assert reg.names() == ["a"]
    reg.register("a", THING)  # from this module, the one the entry point names
    assert reg.get("a") is THING


THING = object()


@dataclass
class OneField(StrategyConfig):
    name: str = "one"
    pick: str = "first"


def _run(
    problems: Any, policy: Any, prm: Any, *, n: int, sampling: Any, seed: int, pick: str = "first"
) -> Any:
    return []


def _select(pool: Any, n: int, aggregation: str, *, pick: str = "first") -> Any:
    return None


def _estimate(
    pool: Any, k: int, aggregation: str, correct: Any, *, seed: int = 0, pick: str = "first"
) -> Any:
    return None


def test_an_entry_whose_functions_take_its_fields_registers() -> None:
    entry = StrategyEntry("one", OneField, _run, Traits(pool_based=True), select=_select, estimate=_estimate)
    assert entry.select is _select


@pytest.mark.parametrize(
    ("functions", "message"),
    [
        (
            {"select": lambda pool, n, aggregation: None},  # the documented signature before: no fields
            "strategy 'one': select tests.unit.test_plugin_registration.<lambda>() does not take the schema "
            "field pick that the runtime passes (OneField's fields: pick); add it as a keyword parameter or "
            "**fields",
        ),
        (
            {"estimate": lambda pool, k, aggregation, correct, *, samples=10, pick="first": None},
            "estimate tests.unit.test_plugin_registration.<lambda>() does not take the keyword seed",
        ),
        (
            {"run": lambda problems, policy, prm, *, n, sampling, seed, pick, width: []},
            "run tests.unit.test_plugin_registration.<lambda>() requires width, which the runtime does not "
            "pass (not a field of OneField); give it a default or add it to the schema",
        ),
        (
            {"select": lambda pool, n: None},
            "select tests.unit.test_plugin_registration.<lambda>() takes 2 positional arguments; the runtime "
            "passes 3",
        ),
    ],
)
def test_an_entry_whose_functions_do_not_take_its_fields_fails_in_one_line(
    functions: dict[str, Any], message: str
) -> None:
    parts = {"run": _run, "select": _select, "estimate": _estimate, **functions}
    with pytest.raises(RegistrationError) as exc:
        StrategyEntry("one", OneField, parts.pop("run"), Traits(pool_based=True), **parts)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_run_taking_fields_by_star_star_registers() -> None:
    StrategyEntry("one", OneField, lambda problems, policy, prm, **kw: [])


def test_a_strategy_composes_from_its_schema_alone_with_the_same_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """strategy=<name> from the YAML, from the ConfigStore (a conf tree without strategy YAML) and from
    base_<name>: one cell id each way, so no built-in's stored results change."""
    overrides = ["strategy=best_of_n,beam_search,sequential_revision", "n=4"]
    with_yaml = [c.id for c in expand(overrides).cells]
    tree = tmp_path / "conf"
    shutil.copytree(conf_dir(), tree)
    for yaml in (tree / "strategy").glob("*.yaml"):
        yaml.unlink()
    monkeypatch.setenv("TTS_CONF_DIR", str(tree))
    without_yaml = [c.id for c in expand(overrides).cells]
    base = [
        c.id
        for c in expand(["strategy=base_best_of_n,base_beam_search,base_sequential_revision", "n=4"]).cells
    ]
    assert with_yaml == without_yaml == base


def test_plugin_search_path_values() -> None:
    assert as_search_path("my_plugin.conf") == "pkg://my_plugin.conf"
    assert as_search_path("file:///lab/conf") == "file:///lab/conf"


def test_hydra_cause_is_kept_when_a_group_option_cannot_be_loaded(tmp_path: Path) -> None:
    (tmp_path / "strategy").mkdir()
    (tmp_path / "strategy" / "first_pick.yaml").write_text("defaults:\n  - base_first_pick\n  - _self_\n")
    with pytest.raises(ConfigError) as exc:
        expand([f"hydra.searchpath=[file://{tmp_path}]", "strategy=first_pick"])
    text = str(exc.value)
    assert text.startswith(
        "strategy: unknown option 'base_first_pick' (in strategy/first_pick.yaml); allowed: "
    )
    assert "best_of_n" in text and "base_best_of_n" not in text and "\n" not in text


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("n=abc", "n: invalid value 'abc'; expected int (TTSConfig.n)"),
        (
            "policy.temperature=hot",
            "policy.temperature: invalid value 'hot'; expected float (PolicyConfig.temperature)",
        ),
        (
            "dataset.levels=abc",
            "dataset.levels: invalid value 'abc'; expected list[int] | None (DatasetConfig.levels)",
        ),
    ],
)
def test_a_value_of_the_wrong_type_names_the_expected_type(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        expand([override])
    assert str(exc.value) == message


def test_a_results_dir_that_is_a_file_fails_in_one_line_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    afile = tmp_path / "taken"
    afile.write_text("")
    for extra in ([], ["--dry-run"]):
        assert main(["sweep", f"results_dir={afile}", "n=1", *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"error: results_dir: {afile} is a file, not a folder; give a folder (results_dir=DIR)"
    assert main(["sweep", f"results_dir={afile}/below", "n=1"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


@pytest.mark.skipif(
    not Path("/proc/self").is_dir(), reason="needs Linux's /proc (a folder nobody can write in)"
)
def test_a_results_dir_that_cannot_be_written_fails_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "results_dir=/proc/tts-results", "n=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: results_dir: cannot write to /proc (") and "\n" not in err


def test_an_entry_point_whose_module_is_gone_names_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin uninstalled badly (its folder deleted, its metadata left): one line naming the package."""
    monkeypatch.setattr(
        registry_module, "entry_points", _entry_points(("gone", "tts_gone_plugin:ENTRY", "tts-gone"))
    )
    reg: Registry[object] = Registry("strategy", group="things")
    with pytest.raises(PluginImportError) as exc:
        reg.get("gone")
    assert str(exc.value) == (
        "strategy 'gone': cannot load entry point gone = tts_gone_plugin:ENTRY (package tts-gone): No module "
        "named 'tts_gone_plugin'; reinstall or uninstall that package"
    )
