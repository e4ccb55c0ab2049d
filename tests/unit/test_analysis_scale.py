"""The fast analysis equals the one it replaced: every cell and CI of every table on ~100k synthetic rows.

The expected tables (tests/unit/data/scale_expected_*.parquet) were computed by the pre-rewrite implementation
(commit a4135e1, per-group pandas matrices and one selection per budget) on the data `world()` generates, with
the same seeds; bench/bench_compute_optimal.py --baseline-rev runs that implementation itself for timings. The
incremental summary is checked against a summary built from scratch after a cell lands.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tts.analysis.settings import AnalysisConfig
from tts.analysis.source import from_rows
from tts.analysis.tables import compute_optimal_tables
from tts.difficulty import assign_bins
from tts.testing.synthetic import SyntheticSpec, generate

DATA = Path(__file__).parent / "data"
SPEC = SyntheticSpec(
    n_problems=100, aggregations=("last", "min"), budgets=(1, 2, 4, 8, 16, 32), seeds=(0, 1, 2)
)
CFG = AnalysisConfig(
    baselines={"best-of-N": "best_of_n", "majority": "majority_vote"},
    replicates=300,
    ci=0.9,
    charge_binning=False,
)
TABLES = ("generation", "flops", "tokens", "cross_size")


@pytest.fixture(scope="module")
def tables():
    res = generate(SPEC, seed=3)
    assert len(res.cells) == 97_200
    bins = assign_bins(res.samples, "oracle_quantile")
    return compute_optimal_tables(from_rows(res.cells, bins), CFG)


def assert_same_table(got: pd.DataFrame, want: pd.DataFrame, name: str) -> None:
    assert list(got.columns) == list(want.columns), name
    assert len(got) == len(want), name
    for col in want.columns:
        g, w = got[col].reset_index(drop=True), want[col].reset_index(drop=True)
        if pd.api.types.is_float_dtype(w) and pd.api.types.is_numeric_dtype(g):
            np.testing.assert_allclose(
                g.to_numpy(float), w.to_numpy(float), rtol=1e-9, atol=1e-12, err_msg=f"{name}.{col}"
            )
        else:
            assert g.astype(str).tolist() == w.astype(str).tolist(), f"{name}.{col}"


@pytest.mark.parametrize("name", TABLES)
def test_tables_equal_the_previous_implementation(tables, name: str) -> None:
    want = pd.read_parquet(DATA / f"scale_expected_{name}.parquet")
    got = getattr(tables, name)
    assert len(want) > 0
    assert_same_table(got, want, name)


def test_the_comparison_can_fail(tables) -> None:
    want = pd.read_parquet(DATA / "scale_expected_generation.parquet")
    bumped = want.assign(ci_high=want["ci_high"] + 1e-6)
    with pytest.raises(AssertionError):
        assert_same_table(tables.generation, bumped, "generation")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tts.testing.synthetic import write_results

    spec = SyntheticSpec(n_problems=40, budgets=(1, 4), seeds=(0, 1), pool_size=8)
    return write_results(tmp_path_factory.mktemp("scale") / "sweep", spec)


def _land_a_cell(folder: Path, cell_id: str, seed: int) -> None:
    """A new seed of an existing configuration, written through the store as a sweep would."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import tts.store

    table = pq.read_table(sorted((folder / "cells").glob("*.parquet"))[0])
    table = table.set_column(
        table.schema.get_field_index("cell_id"), "cell_id", pa.array([cell_id] * len(table))
    )
    for col in ("seed", "config.seed"):
        if col in table.column_names:
            i = table.schema.get_field_index(col)
            table = table.set_column(i, col, pa.array([seed] * len(table), table.schema.field(col).type))
    tts.store.SweepStore(folder).write("cell", cell_id, table)


def test_a_new_cell_is_summarised_alone_and_matches_a_rebuild(folder: Path, tmp_path: Path) -> None:
    import shutil

    from tts.analysis import summary

    out = summary.build_summary(folder)
    parts = set((out / "parts").glob("*.arrow"))
    assert len(parts) == 1
    _land_a_cell(folder, "landed-cell", seed=7)
    summary.build_summary(folder)
    added = set((out / "parts").glob("*.arrow")) - parts
    assert len(added) == 1 and parts <= set((out / "parts").glob("*.arrow"))  # old part kept, one new part
    import pyarrow.parquet as pq

    cells = pq.read_table(out / "cells.parquet", columns=["cell_id", "part"]).to_pandas()
    assert cells.loc[cells["part"] == next(iter(added)).stem, "cell_id"].tolist() == ["landed-cell"]
    incremental = summary.load_summary(folder)
    again = tmp_path / "again"
    shutil.copytree(folder, again)
    shutil.rmtree(again / "summary")
    rebuilt = summary.load_summary(again)
    keys = ["config_id", "bin"]
    a = incremental.stats.sort_values(keys).reset_index(drop=True)
    b = rebuilt.stats.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(a.drop(columns="hyperparams"), b.drop(columns="hyperparams"))
    assert (a["seeds"] == 3).any()  # the landed seed counts
    va = incremental.values(None).astype({"config_id": str, "problem_id": str}).reset_index(drop=True)
    vb = rebuilt.values(None).astype({"config_id": str, "problem_id": str}).reset_index(drop=True)
    pd.testing.assert_frame_equal(va, vb)
    t1 = compute_optimal_tables(incremental, CFG)
    t2 = compute_optimal_tables(rebuilt, CFG)
    assert_same_table(t1.generation, t2.generation, "generation")


def test_grading_from_the_summary_equals_the_scan(folder: Path) -> None:
    from tts.analysis import summary
    from tts.analysis.io import grading_table

    summary.build_summary(folder)
    got = summary.grading(folder)
    want = grading_table(folder)
    assert len(want) > 0
    key = ["config_id"]
    got, want = got.sort_values(key).reset_index(drop=True), want.sort_values(key).reset_index(drop=True)
    assert got["config_id"].tolist() == want["config_id"].tolist()
    for col in ("rows", "accuracy", "accuracy_no_fallback", "fallback_share", "unrecorded_share"):
        np.testing.assert_allclose(
            got[col].to_numpy(float), want[col].to_numpy(float), rtol=1e-12, err_msg=col
        )


def test_watch_analyzes_again_when_a_cell_lands(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tts.analysis import report

    args = report._parser().parse_args(
        [str(folder), "--no-plots", "--set", "replicates=20", "--watch", "0.05"]
    )
    real, calls = report.analyze, []

    def analyze(root: Path, a) -> int:
        calls.append(len(list((root / "cells").glob("*.parquet"))))
        code = real(root, a)
        if len(calls) == 1:
            _land_a_cell(folder, "watched-cell", seed=8)  # lands while the first analysis is on screen
        return code

    monkeypatch.setattr(report, "analyze", analyze)
    assert report.watch(folder, args, rounds=2) == 0
    assert calls[1] == calls[0] + 1  # the second analysis saw the landed cell
    out = capsys.readouterr().out
    assert out.count("Compute-optimal configurations") == 2


def test_a_landed_cell_updates_the_bins_from_its_own_file_as_a_rebuild_would(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only cells added (the pools unchanged): the pool-based bins are kept without reading a pool, and a new
    problem's dataset_level bin comes from the new file alone; the result equals computing from scratch."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    import tts.store
    from tts.analysis import io

    copy = tmp_path / "sweep"
    shutil.copytree(folder, copy)
    before = io.ensure_difficulty(copy)
    assert "dataset_level" in set(before["method"])
    table = pq.read_table(sorted((copy / "cells").glob("*.parquet"))[0]).slice(0, 2)
    for col, value in (("cell_id", "new-problem-cell"), ("problem_id", "zz-new-problem")):
        table = table.set_column(table.schema.get_field_index(col), col, pa.array([value] * len(table)))
    tts.store.SweepStore(copy).write("cell", "new-problem-cell", table)

    def no_pools(*a, **k):
        raise AssertionError("the pools were read although only cells were added")

    monkeypatch.setattr(io, "read_samples", no_pools)
    after = io.ensure_difficulty(copy)
    monkeypatch.undo()
    level = after[(after["method"] == "dataset_level") & (after["problem_id"] == "zz-new-problem")]
    assert len(level) == 1
    shutil.rmtree(copy / "summary")
    rebuilt = io.ensure_difficulty(copy, rebuild=True)
    for method in sorted(set(rebuilt["method"])):
        a = after[after["method"] == method].reset_index(drop=True)
        b = rebuilt[rebuilt["method"] == method].reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, check_dtype=False)


def test_sums_kept_from_the_last_analysis_give_the_tables_of_a_cold_one(folder: Path, tmp_path: Path) -> None:
    """summary/memo: after a cell lands, the groups it did not change are read back, the others recomputed;
    the tables equal an analysis with nothing kept, and groups of the landed cell's configuration are new."""
    import shutil

    from tts.analysis import summary

    warm = tmp_path / "warm"
    shutil.copytree(folder, warm)
    compute_optimal_tables(summary.load_summary(warm), CFG)
    memo = warm / "summary" / "memo"
    before = {f.name for f in memo.glob("*.npz")}
    assert before
    _land_a_cell(warm, "memo-cell", seed=9)
    summary._LAST.clear()
    data = summary.load_summary(warm)
    got = compute_optimal_tables(data, CFG)
    used = data.selection_index().memo_used
    assert used & before and used - before  # some groups read back, some recomputed
    data.selection_index().prune_memo()
    assert {f.name for f in memo.glob("*.npz")} == used
    cold = tmp_path / "cold"
    shutil.copytree(warm, cold)
    shutil.rmtree(cold / "summary")
    summary._LAST.clear()
    want = compute_optimal_tables(summary.load_summary(cold), CFG)
    for name in TABLES:
        assert_same_table(getattr(got, name), getattr(want, name), name)
