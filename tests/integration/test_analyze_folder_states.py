"""`tts analyze` on a folder where some cells failed: the report counts them and names the error; the rest is
analysed as usual (fake engines through the real Ray runtime)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tts.cli import main
from tts.grid import expand
from tts.runtime.driver import run_sweep
from tts.testing.fake_actors import FakeEngineBuilder

pytestmark = pytest.mark.integration


def test_analyze_reports_failed_cells_beside_the_finished_ones(
    ray_local: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid = expand(
        [
            f"results_dir={tmp_path}",
            "sweep.name=mixed",
            "strategy=best_of_n,beam_search",
            "n=4,8",
            "prm=rule_arithmetic",
            "dataset.per_level=3",
            "cluster.max_tries=1",
        ]
    )
    summary = run_sweep(grid, builder=FakeEngineBuilder(poison_stop=True), live=False)
    assert (summary.computed, summary.failed) == (2, 2)  # the search cells' step requests are refused
    capsys.readouterr()
    assert main(["analyze", str(tmp_path / "mixed"), "--no-plots", "--set", "replicates=20"]) == 0
    err = capsys.readouterr().err
    assert "2 of 4 cells finished, 2 failed" in err
    assert "2 cell(s) failed with:" in err and "poisoned request" in err
    report = (tmp_path / "mixed" / "report.md").read_text()
    assert "- cells: 2 of 4 cells finished, 2 failed" in report


def test_a_rerun_with_a_changed_grid_says_which_finished_cells_it_does_not_cover(
    ray_local: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Never a silent recompute: cells of an older grid or config stay, and the run says so."""
    base = [f"results_dir={tmp_path}", "sweep.name=changed", "strategy=best_of_n", "prm=rule_arithmetic"]
    base.append("dataset.per_level=2")
    run_sweep(expand([*base, "n=1,2"]), builder=FakeEngineBuilder(), live=False)
    capsys.readouterr()
    second = run_sweep(expand([*base, "n=2,4"]), builder=FakeEngineBuilder(), live=False)
    assert (second.computed, second.skipped) == (1, 1)
    out = capsys.readouterr().out
    assert "note: 1 finished cells" in out and "match no cell of this grid" in out and "1 unfinished" in out
