"""Strategies added from outside tts/ run like built-in ones, declared once: each is a package installed with
`pip install -e` (examples/revise, sequential; and `first_draw`, written here: pool-based, one schema field, and
a config tree with one YAML preset declared in the `tts.conf` entry points). A real sweep on the tiny vLLM model
runs them through Ray to Parquet to `tts analyze`, as the commands a user types: no environment variable, no
`hydra.searchpath`, no YAML for a strategy, no file of tts/ naming them. A name registered twice fails at
registration naming both sources.

The tiny model's text is noise: assert on mechanics (cells done, attempts counted, hyperparameters stored and
shown), never on accuracy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.ray_cluster import REPO
from tts.store import load

pytestmark = pytest.mark.integration
EXAMPLE = REPO / "examples" / "revise"
TTS = str(Path(sys.executable).with_name("tts"))
PLUGINS = ("tts-revise", "tts-first-draw")

FIRST_SAMPLE = '''\
"""first_draw: answer with the first (or the last) of the first n samples of the shared pool."""

from __future__ import annotations

from dataclasses import dataclass

from tts.schemas import ConfigError, StrategyConfig
from tts.strategies import pool as pools
from tts.strategies.entry import StrategyEntry, Traits
from tts.strategies.estimators import Estimate


@dataclass
class FirstDrawConfig(StrategyConfig):
    name: str = "first_draw"
    pick: str = "first"  # first | last: which of the first n samples answers

    def check(self, n: int) -> None:
        super().check(n)
        if self.pick not in ("first", "last"):
            raise ConfigError(f"strategy.pick: invalid value {self.pick!r}; allowed: first, last")


def rule(pick: str) -> pools.PoolRule:
    index = (lambda scores: 0) if pick == "first" else (lambda scores: len(scores) - 1)
    return pools.PoolRule(lambda groups, scores: index(scores), index, uses_scores=False, uses_groups=False)


def select(pool, n, aggregation, *, pick="first"):
    return pools.select(pool, rule(pick), n, aggregation)


def estimate(pool, k, aggregation, correct, *, seed=0, pick="first"):
    pools.check_correct(pool, k, correct)
    value = sum(correct) / len(correct)  # one sample of a random k-subset, first or last: any sample
    return Estimate(value, value, value, "exact")


def run(problems, policy, prm, *, n, sampling, seed, pick="first"):
    built = pools.build_pool(problems, policy, prm, n_max=n, sampling=sampling, seed=seed, score=False)
    return [select(p, n, sampling.aggregation, pick=pick) for p in built]


ENTRY = StrategyEntry(
    name="first_draw",
    schema=FirstDrawConfig,
    run=run,
    traits=Traits(pool_based=True),
    select=select,
    estimate=estimate,
)
'''

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "tts-first-draw"
version = "0.1.0"

[tool.setuptools]
packages = ["tts_first_draw"]

[tool.setuptools.package-data]
tts_first_draw = ["conf/*/*.yaml"]

[project.entry-points."tts.strategies"]
first_draw = "tts_first_draw:ENTRY"

[project.entry-points."tts.conf"]
first_draw = "tts_first_draw.conf"
"""

PRESET = """\
# strategy=first_draw_last: first_draw answering with the last of the first n samples
defaults:
  - base_first_draw
  - _self_
pick: last
"""


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=300, check=False
    )


def _clean_env() -> dict[str, str]:
    """The environment a user has: none of the variables a plugin once needed."""
    return {k: v for k, v in os.environ.items() if k not in ("TTS_PLUGINS", "PYTHONPATH", "TTS_CONF_DIR")}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """examples/revise and the first_draw package, installed with `pip install -e` into this venv (offline:
    no build isolation, no dependencies), uninstalled at the end."""
    root = tmp_path_factory.mktemp("first_draw_plugin")
    package = root / "tts_first_draw"
    (package / "conf" / "strategy").mkdir(parents=True)
    (package / "__init__.py").write_text(FIRST_SAMPLE)
    (package / "conf" / "strategy" / "first_draw_last.yaml").write_text(PRESET)
    (root / "pyproject.toml").write_text(PYPROJECT)
    _pip("uninstall", "-y", *PLUGINS)  # a run killed before its teardown
    flags = ("install", "-q", "--no-deps", "--no-build-isolation")
    try:
        for path in (EXAMPLE, root):
            proc = _pip(*flags, "-e", str(path))
            assert proc.returncode == 0, proc.stderr[-2000:]
        yield root
    finally:
        _pip("uninstall", "-y", *PLUGINS)


def test_no_file_of_tts_names_the_plugins() -> None:
    for path in (REPO / "tts").rglob("*.py"):
        text = path.read_text()
        for name in ("tts_revise", "ReviseConfig", "first_draw", "tts_first_draw"):
            assert name not in text, (path, name)


def _sweep(
    strategies: str, name: str, ray_address: str, tiny_policy_dir: Path, results: Path
) -> subprocess.CompletedProcess[str]:
    """`tts sweep` as a user types it (plus the session's Ray and the tiny model): no variable, no search path."""
    command = [
        TTS,
        "sweep",
        f"strategy={strategies}",
        "n=1,3",
        "prm=none",
        f"results_dir={results}",
        f"policy.model={tiny_policy_dir}",
        "policy.few_shot=[]",
        "policy.max_tokens=12",
        "dataset.levels=[1,5]",
        "dataset.per_level=2",
        "engine.max_model_len=1024",
        "engine.gpu_memory_utilization=0.15",
        "cluster=ray",
        f"cluster.address={ray_address}",
        "cluster.auth_mode=disabled",
        f"sweep.name={name}",
        "--no-live",
    ]
    proc = subprocess.run(command, env=_clean_env(), cwd=results, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


def _analyze(folder: Path) -> str:
    proc = subprocess.run(
        [TTS, "analyze", str(folder), "--no-plots", "--set", "replicates=50"],
        env=_clean_env(),
        cwd=folder.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return (folder / "report.md").read_text()


def test_pool_plugin_with_one_field_runs_through_ray_to_parquet_to_analyze(
    installed: Path, ray_address: str, tiny_policy_dir: Path, tmp_path: Path
) -> None:
    """first_draw (pool-based, one schema field, no YAML) and first_draw_last, the YAML the plugin ships, found
    through its `tts.conf` entry point: four cells sharing one pool, then `tts analyze`."""
    _sweep("first_draw,first_draw_last", "pool", ray_address, tiny_policy_dir, tmp_path)
    df = load(tmp_path / "pool")
    assert len(df) == 4 * 4 and set(df["strategy"]) == {"first_draw"}
    assert df.groupby("config.strategy.pick")["n"].unique().map(sorted).to_dict() == {
        "first": [1, 3],
        "last": [1, 3],  # the shipped YAML's value
    }
    assert df["expected_correct"].notna().all()  # selected from the shared pool, with an estimate
    assert df["config_id"].nunique() == 4
    assert "first_draw" in _analyze(tmp_path / "pool")


def test_sequential_plugin_runs_through_ray_to_parquet_to_analyze(
    installed: Path, ray_address: str, tiny_policy_dir: Path, tmp_path: Path
) -> None:
    """examples/revise, installed as docs/add_a_strategy.md says: its attempts counted, its options stored."""
    _sweep("revise", "revise", ray_address, tiny_policy_dir, tmp_path)
    df = load(tmp_path / "revise")
    assert len(df) == 2 * 4 and set(df["strategy"]) == {"revise"}
    assert df["config.strategy.final"].eq("last").all()  # its hyperparameters are stored with the rows
    assert df["config.strategy.feedback"].str.startswith("Review your solution").all()
    assert df.groupby("n")["generations"].unique().map(list).to_dict() == {1: [1], 3: [3]}  # attempts made
    later = df[df["n"] == 3]
    assert (later["tokens_in"] > df[df["n"] == 1]["tokens_in"].max()).all()  # revisions re-read the history
    assert df["config_id"].nunique() == 2
    assert "revise" in _analyze(tmp_path / "revise")


def _fake_distribution(site: Path, name: str, entry_points: str) -> None:
    """A distribution's metadata on a path entry: what `pip install` leaves, without installing anything."""
    dist = site / f"{name.replace('-', '_')}-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(entry_points)


def test_a_second_registration_of_a_name_fails_naming_both(tmp_path: Path) -> None:
    """A package declaring `best_of_n`, and a TTS_PLUGINS module registering it: `tts sweep` stops with one
    line that names the built-in's entry point and the newcomer (not installed into the venv: the other
    tests' processes must not see it)."""
    site = tmp_path / "site"
    _fake_distribution(site, "tts-evil", "[tts.strategies]\nbest_of_n = tts_evil:ENTRY\n")
    env = {**_clean_env(), "PYTHONPATH": str(site)}
    proc = subprocess.run(
        [TTS, "sweep", "--dry-run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert "\n" not in line, line
    assert "'best_of_n' is registered twice" in line
    assert "best_of_n = tts.strategies.best_of_n:ENTRY (package tts-sweep)" in line
    assert "best_of_n = tts_evil:ENTRY (package tts-evil)" in line

    module = tmp_path / "mods" / "lab_strategy.py"
    module.parent.mkdir()
    module.write_text(
        "from tts.strategies import STRATEGIES\n"
        "from tts.strategies.best_of_n import ENTRY\n"
        "STRATEGIES.register('best_of_n', ENTRY)\n"
    )
    env = {**_clean_env(), "PYTHONPATH": str(module.parent), "TTS_PLUGINS": "lab_strategy"}
    proc = subprocess.run(
        [TTS, "sweep", "--dry-run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert "\n" not in line, line
    assert "entry point best_of_n = tts.strategies.best_of_n:ENTRY" in line and "module lab_strategy" in line


def test_entry_point_registration_in_a_fresh_interpreter(tmp_path: Path) -> None:
    """A distribution on the path that declares `revise = tts_revise:ENTRY` in group tts.strategies, with no
    YAML and no search path: `strategy=revise` composes from the schema alone."""
    site = tmp_path / "site"
    _fake_distribution(site, "tts-revise-plugin", "[tts.strategies]\nrevise = tts_revise:ENTRY\n")
    code = textwrap.dedent(
        """
        import json
        from tts.grid import expand
        from tts.strategies import STRATEGIES
        g = expand(['strategy=revise', 'prm=none', 'n=2'])
        e = g.cells[0].entry
        print(json.dumps({'names': STRATEGIES.names(), 'strategy': g.cells[0].strategy,
                          'sequential': e.traits.sequential, 'final': g.cells[0].config.strategy.final}))
        """
    )
    env = {**_clean_env(), "PYTHONPATH": os.pathsep.join([str(site), str(EXAMPLE)])}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "revise" in out["names"] and "best_of_n" in out["names"]
    assert (out["strategy"], out["sequential"], out["final"]) == ("revise", True, "last")
