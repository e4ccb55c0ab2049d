"""`tts verify` mechanics on a sweep run with the deterministic fake engines (seconds, no model).

The fakes draw every sample from its content (tts.testing.fake_engines), so a recomputed cell must come out
identical: verify reports 0 differences. Then one stored sample is edited (a new version of its pool written
through the store, as a rerun would) and verify must name that sample and field. The real-vLLM version of these
claims (fresh engines, cells alongside others) is tests/integration/test_reproducible_vllm.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tts.grid import expand
from tts.runtime.driver import run_sweep
from tts.runtime.verify import choose_cells, verify
from tts.store import SweepStore
from tts.testing.fake_actors import FakeEngineBuilder

pytestmark = pytest.mark.integration


def _sweep(tmp_path: Path) -> Path:
    grid = expand(
        [
            f"results_dir={tmp_path / 'results'}",
            "policy=zoo_policy_m",
            "prm=rule_arithmetic",
            "dataset=chain",
            "dataset.levels=[1,3]",
            "dataset.per_level=2",
            "strategy=majority_vote,best_of_n,beam_search",
            "n=4",
            "sweep.name=v",
        ]
    )
    summary = run_sweep(grid, builder=FakeEngineBuilder(), live=False)
    assert (summary.computed, summary.failed) == (3, 0)
    return tmp_path / "results" / "v"


def test_verify_recomputes_identical_cells_then_names_an_edited_sample(
    ray_local: Any, tmp_path: Path
) -> None:
    folder = _sweep(tmp_path)
    store = SweepStore(folder)
    cells, _ = store.verified("cell")
    pool_cell = next(cid for cid, e in cells.items() if e.meta.get("pool_id"))
    # a pool cell brings the other cell of its pool: recomputed alone, its pool could differ (N_max, problems)
    assert len(choose_cells(store, [pool_cell], 0, 0)) == 2

    report = verify(folder, k=3, seed=0, scratch=tmp_path / "scratch", builder=FakeEngineBuilder())
    assert len(report.checks) == 3 and report.skipped == []
    assert report.differences == 0, "\n".join(c.line() for c in report.checks)
    assert sum(c.samples for c in report.checks) == 4 * 4, "the pool's 16 samples compared once"

    pools, _ = store.verified("pool")
    (pool_id, entry), *_ = pools.items()
    rows = store.read(entry).to_pandas().to_dict("records")
    rows[3]["text"] += " (edited)"
    store.write_rows(
        "pool", pool_id, rows, meta=entry.meta
    )  # the pool's current version is now the edited one

    edited = verify(folder, cells=[pool_cell], scratch=tmp_path / "scratch2", builder=FakeEngineBuilder())
    assert edited.differences == 1
    (line,) = [d for c in edited.checks for d in c.differences]
    assert f"sample {rows[3]['problem_id']}/{rows[3]['sample_idx']} text" in line and "(edited)" in line


def test_verify_refuses_a_folder_without_a_manifest(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    with pytest.raises(FileNotFoundError, match="manifest"):
        verify(folder, k=1)


def test_verify_rebuilds_cells_of_a_preset_with_sub_grids(ray_local: Any, tmp_path: Path) -> None:
    """The smoke preset crosses named sub-grids (pools; beam search with its own beam_width): a cell's recorded
    overrides carry its sub-grid's values, which must not be crossed with the preset's other sub-grids again."""
    grid = expand(["+sweep=smoke", f"results_dir={tmp_path / 'results'}", "dataset.per_level=1"])
    summary = run_sweep(grid, builder=FakeEngineBuilder(), live=False)
    assert summary.failed == 0
    folder = tmp_path / "results" / "smoke"
    beam = next(c.id for c in grid.cells if c.strategy == "beam_search")
    report = verify(folder, cells=[beam], scratch=tmp_path / "scratch", builder=FakeEngineBuilder())
    assert [c.cell_id for c in report.checks] == [beam] and report.skipped == []
    assert report.differences == 0 and report.checks[0].rows == 3  # levels 2, 4, 6: one problem each
