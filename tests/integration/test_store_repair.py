"""A lost manifest and a rebuilt pool, end to end: the driver on a real local Ray with fake engines.

What is checked: result files without a manifest stop `tts sweep` before anything is written or Ray starts;
`tts repair` restores the manifest (a legacy file without metadata too) and the rerun computes 0 cells; a
corrupted pool is rebuilt under a new versioned name beside the old file, and exactly the cells derived from it
are recomputed, so every cell names the current pool version.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tts.cli import main
from tts.grid import expand
from tts.runtime import driver
from tts.runtime.driver import run_sweep
from tts.store import MANIFEST_KEY, SweepStore, load
from tts.testing.fake_actors import FakeEngineBuilder

pytestmark = pytest.mark.integration
ARGS = ["+sweep=smollm2", "dataset.per_level=2"]
COLUMNS = [
    "cell_id",
    "problem_id",
    "pool_id",
    "answer",
    "correct",
    "expected_correct",
    "tokens_out",
    "status",
]


def _rows(folder: Path) -> pd.DataFrame:
    return load(folder)[COLUMNS].sort_values(["cell_id", "problem_id"], ignore_index=True)


def test_lost_manifest_refuses_the_sweep_then_repair_restores_it_and_the_rerun_computes_0(
    ray_local: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    grid = expand([*ARGS, f"results_dir={tmp_path}"])
    assert run_sweep(grid, builder=FakeEngineBuilder(), live=False).computed == 29
    folder = tmp_path / "smollm2"
    store = SweepStore(folder)
    before, rows = store.entries(), _rows(folder)
    legacy = folder / before[("cell", grid.cells[0].id)].file  # as written before files carried metadata
    pq.write_table(pq.read_table(legacy).replace_schema_metadata(None), legacy)
    assert MANIFEST_KEY not in (pq.read_schema(legacy).metadata or {})
    store.manifest_path.unlink()
    listing = sorted((p.name, p.stat().st_mtime_ns) for p in folder.rglob("*"))

    def no_ray(*_: Any, **__: Any) -> None:
        raise AssertionError("Ray was started")

    monkeypatch.setattr(driver, "connect", no_ray)
    capsys.readouterr()
    assert main(["sweep", *ARGS, f"results_dir={tmp_path}", "--no-live"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(folder) in err and f"tts repair {folder}" in err
    assert sorted((p.name, p.stat().st_mtime_ns) for p in folder.rglob("*")) == listing, "nothing written"

    assert main(["repair", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"restored {len(before)} manifest entries (1 legacy" in out
    after = store.entries()
    assert set(after) == set(before)
    assert all(after[k] == before[k] for k in before if before[k].file != str(legacy.relative_to(folder)))
    monkeypatch.undo()
    again = run_sweep(grid, builder=FakeEngineBuilder(), live=False)
    assert (again.computed, again.skipped) == (0, 29)
    pd.testing.assert_frame_equal(_rows(folder), rows)


def test_a_corrupted_pool_is_rebuilt_as_a_new_version_and_only_its_cells_are_recomputed(
    ray_local: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    grid = expand([*ARGS, f"results_dir={tmp_path}"])
    run_sweep(grid, builder=FakeEngineBuilder(), live=False)
    folder = tmp_path / "smollm2"
    store = SweepStore(folder)
    rows = _rows(folder)
    cells, _ = store.verified("cell")
    pools, _ = store.verified("pool")
    assert len(pools) == 2
    assert all(
        e.meta["pool_sha256"] == pools[e.meta["pool_id"]].sha256
        for e in cells.values()
        if "pool_id" in e.meta
    )
    victim = sorted(pools)[0]
    old = pools[victim]
    derived = {cid for cid, e in cells.items() if e.meta.get("pool_id") == victim}
    assert old.file == f"samples/{victim}-{old.sha256[:12]}.parquet" and len(derived) >= 4
    path = folder / old.file
    path.write_bytes(path.read_bytes()[:-100])

    with caplog.at_level(logging.WARNING, logger="tts.runtime"):
        summary = run_sweep(grid, builder=FakeEngineBuilder(), live=False)
    assert (summary.computed, summary.skipped) == (len(derived), 29 - len(derived))
    warned = [
        r.getMessage() for r in caplog.records if "recomputing it from the current pool" in r.getMessage()
    ]
    assert len(warned) == len(derived) and all(victim in m for m in warned)
    assert {cid for cid in derived if any(cid in m for m in warned)} == derived

    new = store.entries()[("pool", victim)]
    assert new.file != old.file and new.file == f"samples/{victim}-{new.sha256[:12]}.parquet"
    assert path.is_file(), "the old version is never overwritten"
    assert store.problem(new) is None
    current = {pid: e.sha256 for pid, e in store.verified("pool")[0].items()}
    df = load(folder)
    pooled = df[df["pool_id"].notna()]
    assert len(pooled) and (pooled["pool_sha256"] == pooled["pool_id"].map(current)).all()
    for cid, e in store.verified("cell")[0].items():
        if "pool_id" in e.meta:
            assert e.meta["pool_sha256"] == current[e.meta["pool_id"]], cid
    untouched = {cid: e for cid, e in store.verified("cell")[0].items() if cid not in derived}
    assert all(untouched[cid] == cells[cid] for cid in untouched)
    pd.testing.assert_frame_equal(_rows(folder), rows)  # fake engines are deterministic: same samples again


def test_cells_of_an_older_pool_version_are_recomputed_from_the_current_stored_pool(
    ray_local: Any, tmp_path: Path
) -> None:
    grid = expand([*ARGS, f"results_dir={tmp_path}"])
    run_sweep(grid, builder=FakeEngineBuilder(), live=False)
    store = SweepStore(tmp_path / "smollm2")
    cells, _ = store.verified("cell")
    pools, _ = store.verified("pool")
    victim = sorted(pools)[1]
    derived = {cid for cid, e in cells.items() if e.meta.get("pool_id") == victim}
    newer = store.write(
        "pool", victim, store.read(pools[victim]), meta=pools[victim].meta
    )  # same rows, new file
    assert newer.sha256 != pools[victim].sha256 and (store.root / pools[victim].file).is_file()

    summary = run_sweep(grid, builder=FakeEngineBuilder(), live=False)
    assert (summary.computed, summary.engine_loads) == (len(derived), 0), "derived from the stored pool"
    after, _ = store.verified("cell")
    assert {cid for cid in derived if after[cid].meta["pool_sha256"] == newer.sha256} == derived
    assert all(after[cid] == cells[cid] for cid in cells if cid not in derived)
