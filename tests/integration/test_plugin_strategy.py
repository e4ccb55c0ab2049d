"""A strategy added from outside tts/ (examples/revise: a module plus its YAML) runs like a built-in one: a real
sweep on the tiny vLLM model, through Ray, to Parquet, to `tts analyze`, with no file of tts/ naming it. And
one registered through the `tts.strategies` entry-point group is found by a fresh interpreter.

The tiny model's text is noise: assert on mechanics (cells done, attempts counted, hyperparameters stored and
shown), never on accuracy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.ray_cluster import REPO
from tts.cli import main
from tts.grid import expand
from tts.registry import load_plugin
from tts.runtime.driver import run_sweep
from tts.store import load

pytestmark = pytest.mark.integration
EXAMPLE = REPO / "examples" / "revise"
SEARCHPATH = f"hydra.searchpath=[file://{EXAMPLE / 'conf'}]"


def test_no_file_of_tts_names_the_plugin() -> None:
    for path in (REPO / "tts").rglob("*.py"):
        text = path.read_text()
        assert "tts_revise" not in text and "ReviseConfig" not in text, path


def test_plugin_strategy_runs_through_ray_to_parquet_to_analyze(
    ray_local: Any, tiny_policy_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    load_plugin("tts_revise")  # what TTS_PLUGINS=tts_revise does at start-up
    grid = expand(
        [
            SEARCHPATH,
            "strategy=revise",
            "strategy.final=majority",
            "n=1,3",
            "prm=none",
            f"results_dir={tmp_path}",
            f"policy.model={tiny_policy_dir}",
            "policy.few_shot=[]",
            "policy.max_tokens=12",
            "dataset.levels=[1,5]",
            "dataset.per_level=2",
            "engine.max_model_len=1024",
            "engine.gpu_memory_utilization=0.15",
            "sweep.name=plugin",
        ]
    )
    assert [c.strategy for c in grid.cells] == ["revise", "revise"]
    assert grid.cells[0].entry.traits.sequential and not grid.cells[0].entry.traits.pool_based
    summary = run_sweep(grid, live=False)
    assert (summary.computed, summary.failed, summary.engine_loads) == (2, 0, 1)
    df = load(tmp_path / "plugin")
    assert len(df) == 2 * 4 and set(df["strategy"]) == {"revise"}
    assert df["config.strategy.final"].eq("majority").all()  # its hyperparameters are stored with the rows
    assert df["config.strategy.feedback"].str.startswith("Review your solution").all()
    assert df.groupby("n")["generations"].unique().map(list).to_dict() == {1: [1], 3: [3]}  # attempts made
    later = df[df["n"] == 3]
    assert (later["tokens_in"] > df[df["n"] == 1]["tokens_in"].max()).all()  # revisions re-read the history
    assert df["config_id"].nunique() == 2

    assert main(["analyze", str(tmp_path / "plugin"), "--no-plots", "--set", "replicates=50"]) == 0
    report = (tmp_path / "plugin" / "report.md").read_text()
    assert "revise" in report


def test_entry_point_registration_in_a_fresh_interpreter(tmp_path: Path) -> None:
    """A distribution on the path that declares `revise = tts_revise:ENTRY` in group tts.strategies."""
    dist = tmp_path / "site" / "tts_revise_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tts-revise-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[tts.strategies]\nrevise = tts_revise:ENTRY\n")
    code = (
        "import json\n"
        "from tts.grid import expand\n"
        "from tts.strategies import STRATEGIES\n"
        f"g = expand([{SEARCHPATH!r}, 'strategy=revise', 'prm=none', 'n=2'])\n"
        "e = g.cells[0].entry\n"
        "print(json.dumps({'names': STRATEGIES.names(), 'strategy': g.cells[0].strategy, "
        "'sequential': e.traits.sequential, 'final': g.cells[0].config.strategy.final}))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(EXAMPLE), str(REPO)]),
        "TTS_PLUGINS": "",
    }
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "revise" in out["names"] and "best_of_n" in out["names"]
    assert (out["strategy"], out["sequential"], out["final"]) == ("revise", True, "last")
