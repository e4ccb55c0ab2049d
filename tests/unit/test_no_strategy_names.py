"""Nothing in tts/ branches on a strategy's name: only the strategy's own module spells it (issue: one shape for
every strategy). The runtime, store and analysis read the entry's traits and schema fields instead.

tts/testing (fakes and test shortcuts) is exempt: synthetic results must name the strategies they imitate.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tts.strategies import STRATEGIES

TTS = Path(__file__).resolve().parents[2] / "tts"


def _string_constants(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    }


def test_only_a_strategys_own_module_names_it() -> None:
    owners = {name: Path(entry.run.__code__.co_filename).resolve() for name, entry in STRATEGIES.items()}
    offenders = []
    for path in sorted(TTS.rglob("*.py")):
        if "testing" in path.relative_to(TTS).parts:
            continue
        for name in _string_constants(path) & set(owners):
            if owners[name] != path.resolve():
                offenders.append(f"{path.relative_to(TTS.parent)} names {name!r}")
    assert offenders == []


def test_every_builtin_entry_is_complete() -> None:
    for name, entry in STRATEGIES.items():
        assert entry.name == name and entry.schema().name == name
        if entry.traits.pool_based:
            assert entry.select is not None and entry.estimate is not None
        gens, tokens = entry.budget(entry.schema(), 4, 100, 10)
        assert gens >= 4 and tokens >= gens
