"""tts.analysis.completeness: cell counts by status from the manifest; `tts analyze` on a folder without one
finished cell says so in a few lines (exit 1), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from tts.analysis.completeness import folder_state
from tts.store import SweepStore


def _config(seed: int, n: int) -> dict:
    return {"seed": seed, "n": n, "strategy": {"name": "best_of_n"}, "engine": {"seed": 0}}


def _folder(
    tmp_path: Path, statuses: dict[tuple[int, int], str], expected: int | None, name: str = "sweep"
) -> Path:
    root = tmp_path / name
    store = SweepStore(root)
    table = pa.table({"cell_id": ["x"], "status": ["ok"]})
    for (seed, n), status in statuses.items():
        meta = (
            {"error": "engine.num_gpus: 1 GPU asked for, none on this cluster"} if status == "failed" else {}
        )
        store.write("cell", f"c{seed}{n}", table, status=status, config=_config(seed, n), meta=meta)
    if expected is not None:
        store.write_text("sweep.yaml", f"sweep:\n  name: s\nexpanded_axes: {{}}\ncells: {expected}\n")
    return root


def test_counts_failed_corrupt_missing_and_incomplete_configurations(tmp_path: Path) -> None:
    root = _folder(tmp_path, {(0, 1): "ok", (1, 1): "failed", (0, 2): "ok", (1, 2): "ok", (0, 4): "ok"}, 7)
    (root / "cells" / "c04.parquet").write_bytes(b"torn")
    state = folder_state(root)
    assert (state.expected, state.ok, state.failed, state.corrupt, state.missing) == (7, 3, 1, 1, 2)
    assert not state.complete
    assert state.errors == [("engine.num_gpus: 1 GPU asked for, none on this cluster", 1)]
    assert len(state.incomplete) == 2  # n=1 (a seed failed) and n=4 (corrupt); n=2 is whole
    assert "2 not computed yet" in state.lines()[0]


def test_a_whole_folder_is_complete(tmp_path: Path) -> None:
    state = folder_state(_folder(tmp_path, {(0, 1): "ok", (0, 2): "ok"}, 2))
    assert state.complete and state.missing == 0 and not state.incomplete


def test_analyze_on_failed_cells_only_explains_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tts.cli import main

    root = _folder(tmp_path, {(0, 1): "failed", (0, 2): "failed"}, 2)
    assert main(["analyze", str(root), "--no-plots"]) == 1
    err = capsys.readouterr().err
    assert "no finished cells to analyze" in err and "2 failed" in err
    assert "2 cell(s) failed with: engine.num_gpus" in err and "Traceback" not in err
    assert not (root / "report.md").exists()


def test_a_folder_of_sweeps_sums_its_sweeps(tmp_path: Path) -> None:
    _folder(tmp_path, {(0, 1): "ok", (1, 1): "failed"}, 3, name="a")
    _folder(tmp_path, {(0, 2): "ok"}, 1, name="b")
    state = folder_state(tmp_path)
    assert (state.expected, state.ok, state.failed, state.missing) == (4, 2, 1, 1)
    (tmp_path / "b" / "sweep.yaml").unlink()
    assert folder_state(tmp_path).expected is None  # one sweep does not say how many cells it has
