"""notebooks/compute_optimal.ipynb executed end to end (nbclient) against results produced here, and
`tts analyze` on a real sweep's results.

The results come from (a) the real sweep driver (tts.runtime: Ray, engine actors, scheduler, tts.store) running
the smoke preset with fake engines, so it takes seconds, and (b) synthetic results with several policy sizes
written through tts.store (so the cross-size table and every difficulty method have data). Any cell error fails.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tts.testing.synthetic import SyntheticSpec, SynthPolicy, SynthPRM, write_results

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "compute_optimal.ipynb"


@pytest.fixture(scope="module")
def smoke_results(ray_local: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tts.grid import expand
    from tts.runtime.driver import run_sweep
    from tts.testing.fake_actors import FakeEngineBuilder

    root = tmp_path_factory.mktemp("runtime")
    grid = expand(["+sweep=smollm2", f"results_dir={root}", "dataset.per_level=3"])
    summary = run_sweep(grid, builder=FakeEngineBuilder(state_dir=str(root / "state")), live=False)
    assert summary.failed == 0 and summary.computed > 0
    return root / "smollm2"


def _execute(results_dir: Path, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    monkeypatch.setenv("TTS_RESULTS_DIR", str(results_dir))
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    return nb


def _outputs(nb: nbformat.NotebookNode, kind: str) -> list[Any]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if kind in o.get("data", {})]


def test_notebook_is_stored_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert any("tts.store.load(results_dir)" in c.source for c in code)


def test_notebook_runs_on_a_real_sweeps_results(smoke_results: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = _execute(smoke_results, monkeypatch)
    tables = "".join(o["data"]["text/html"] for o in _outputs(nb, "text/html"))
    assert "best_of_n" in tables and "ci_low" in tables
    assert len(_outputs(nb, "image/png")) >= 3  # accuracy vs budget, frontier, small vs large


def test_notebook_runs_on_synthetic_store_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = SyntheticSpec(
        n_problems=40,
        budgets=(1, 4, 16),
        pool_size=8,
        policies=(SynthPolicy("small", 100_000_000, -0.5), SynthPolicy("big", 3_000_000_000, 1.0)),
        prms=(SynthPRM("prm", "vllm_pooling", 500_000_000, 0.9),),
    )
    nb = _execute(write_results(tmp_path / "synth", spec), monkeypatch)
    text = "".join(o["data"]["text/html"] for o in _outputs(nb, "text/html"))
    assert "large_policy" in text and "flops_ratio" in text  # the cross-size table has rows
    streams = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "summary path picks the same winners: True" in streams


def test_tts_analyze_on_a_real_sweeps_results(
    smoke_results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tts.cli import main

    assert main(["analyze", str(smoke_results)]) == 0
    out = capsys.readouterr().out
    assert (
        "Compute-optimal configurations" in out and "beam_search" in (smoke_results / "report.md").read_text()
    )
    pngs = sorted((smoke_results / "plots").glob("*.png"))
    assert len(pngs) >= 3 and len(list((smoke_results / "plots").glob("*.svg"))) == len(pngs)
