"""A results folder end to end: difficulty.parquet, the materialised summary vs the raw scan vs in-memory rows,
plots, and `tts analyze` (report.md, terminal table, clear errors)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import tts.store
from tts.analysis import plots, report, summary
from tts.analysis.io import NoResultsError, ensure_difficulty
from tts.analysis.source import from_rows
from tts.testing.synthetic import DEFAULT_STRATEGIES, SyntheticSpec, SynthPolicy, SynthPRM, write_results
from tts.analysis.tables import candidates, compute_optimal_tables

SPEC = SyntheticSpec(
    sweep="mini",
    n_problems=60,
    policies=(SynthPolicy("small", 100_000_000, -0.5), SynthPolicy("big", 2_000_000_000, 1.0)),
    prms=(SynthPRM("prm", "vllm_pooling", 500_000_000, 0.9),),
    strategies=DEFAULT_STRATEGIES,
    budgets=(1, 4, 16),
    seeds=(0, 1),
    pool_size=8,
    failed_fraction=0.05,
)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_results(tmp_path_factory.mktemp("res") / "mini", SPEC)


def _gen(t) -> pd.DataFrame:
    return t.generation.set_index(["policy", "prm", "dataset", "bin", "n"]).sort_index()


def test_summary_raw_and_memory_paths_agree(results: Path) -> None:
    fast = compute_optimal_tables(summary.load_summary(results), charge_binning=False)
    raw = compute_optimal_tables(summary.scan_raw(results), charge_binning=False)
    rows = tts.store.load(results)
    mem = compute_optimal_tables(
        from_rows(rows, ensure_difficulty(results), fast.method), charge_binning=False
    )
    assert fast.method == "oracle_quantile"  # sample pools exist: Snell's bins by default
    a, b, c = _gen(fast), _gen(raw), _gen(mem)
    assert len(a) == len(b) == len(c) > 0
    assert (a["strategy"] == b["strategy"]).all() and (a["strategy"] == c["strategy"]).all()
    for other in (b, c):
        np.testing.assert_allclose(a["accuracy"], other["accuracy"], atol=1e-12)
        np.testing.assert_allclose(a[["ci_low", "ci_high"]], other[["ci_low", "ci_high"]], atol=1e-6)
    # failed rows are left out: the all-problems row of a cell counts only ok rows
    ok = rows[(rows["status"] == "ok") & (rows["policy"] == "big") & (rows["strategy"] == "best_of_n")]
    row = a.loc[("big", "prm", SPEC.dataset, "all", 4)]
    if row["strategy"] == "best_of_n":
        assert row["rows"] == (ok["n"] == 4).sum()
    assert len(fast.cross_size) and fast.cross_size.iloc[0]["large_policy"] == "big"


def test_summary_is_reused_until_results_change(results: Path) -> None:
    out = summary.build_summary(results)
    stamp = (out / "meta.json").stat().st_mtime_ns
    assert summary.build_summary(results) == out and (out / "meta.json").stat().st_mtime_ns == stamp
    store = tts.store.SweepStore(results)
    extra = pd.read_parquet(next((results / "cells").glob("*.parquet")))
    extra = extra.assign(cell_id="extra-cell", n=999, expected_correct=None)
    # a file without some columns (the store writes only the columns its rows have): the scan still reads it
    store.write(
        "cell", "extra-cell", pa.Table.from_pandas(extra.drop(columns=["expected_correct", "lookahead"]))
    )
    summary.build_summary(results)
    assert (out / "meta.json").stat().st_mtime_ns != stamp
    data = summary.load_summary(results)
    assert (data.stats["n"] == 999).any()
    assert (summary.scan_raw(results).stats["n"] == 999).any()


def test_difficulty_methods_and_stored_bins_are_kept(tmp_path: Path) -> None:
    res = write_results(
        tmp_path / "s",
        SyntheticSpec(n_problems=30, policies=SPEC.policies[:1], prms=SPEC.prms, budgets=(1, 4), pool_size=8),
    )
    store = tts.store.SweepStore(res)
    mine = pd.DataFrame(
        {
            "policy": "small",
            "problem_id": tts.store.load(res)["problem_id"].unique(),
            "method": "absolute",
            "bin": "easy",
            "pass_at_1": 0.9,
            "samples_used": 8,
        }
    )
    store.write("difficulty", "difficulty", pa.Table.from_pandas(mine))  # as a sweep restricted to bins would
    diff = ensure_difficulty(res)
    assert set(diff["method"]) == {"dataset_level", "oracle_quantile", "absolute", "predicted"}
    assert set(diff.loc[diff["method"] == "absolute", "bin"]) == {"easy"}  # the sweep's bins, untouched
    again = ensure_difficulty(res)
    pd.testing.assert_frame_equal(diff.reset_index(drop=True), again.reset_index(drop=True))
    with pytest.raises(ValueError, match="available"):
        summary.load_summary(res, "nonsense")


def test_plots_write_png_and_svg_with_okabe_ito(results: Path, tmp_path: Path) -> None:
    data = summary.load_summary(results)
    t = compute_optimal_tables(data, replicates=100)
    cands = candidates(data)
    cands = cands[cands["bin"].isin(["1", "all"])]  # two panels per figure keep the test fast
    small = cands[cands["policy"] == "small"]
    paths = plots.accuracy_vs_budget(small, tmp_path, method=data.method)
    paths += plots.frontier(cands[cands["policy"] == "big"], t.flops, tmp_path) + plots.small_vs_large(
        cands, tmp_path
    )
    names = {p.name for p in paths}
    assert {
        "accuracy_vs_budget__small__prm__synthmath.png",
        "frontier__big__prm__synthmath.svg",
        "small_vs_large__synthmath__all.png",
    } <= names
    assert all(p.stat().st_size > 1000 for p in paths)
    svg = (tmp_path / "accuracy_vs_budget__small__prm__synthmath.svg").read_text()
    assert "#e69f00" in svg.lower() and "budget N (generations)" in svg


def test_tts_analyze_writes_report_and_prints_table(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tts.cli import main as cli_main

    assert cli_main(["analyze", str(results), "--replicates", "200", "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "Compute-optimal strategies" in out and "best strategy" in out and "beam_search" in out
    text = (results / "report.md").read_text()
    for heading in ("Generation-matched", "FLOPs-matched", "Small policy", "Compute accounting", "## Plots"):
        assert heading in text
    assert "| big | prm | all |" in text and "oracle_quantile" in text
    # plots are linked relative to the results folder
    t = compute_optimal_tables(summary.load_summary(results), replicates=50)
    fake = [results / "plots" / "frontier__big__prm__synthmath.png"]
    meta = {
        "sweep": "mini",
        "rows": 1,
        "configs": 1,
        "methods": ["oracle_quantile"],
        "replicates": 50,
        "seed": 0,
        "charged": True,
        "bin_sizes": "",
    }
    linked = report.write_report(
        results, t, candidates(summary.load_summary(results)), fake, meta
    ).read_text()
    assert "![frontier__big__prm__synthmath](plots/frontier__big__prm__synthmath.png)" in linked


def test_tts_analyze_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report.main([str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert report.main([str(tmp_path)]) == 2
    assert "no results here" in capsys.readouterr().err
    tts.store.SweepStore(tmp_path / "empty").write_text("sweep.yaml", "name: empty\n")
    (tmp_path / "empty" / "manifest.jsonl").write_text("")
    assert report.main([str(tmp_path / "empty")]) == 2
    assert "no finished cells" in capsys.readouterr().err
    with pytest.raises(NoResultsError):
        summary.load_summary(tmp_path / "empty")
    (tmp_path / "nothing").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "tts.analysis.report", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2 and "run `tts sweep`" in proc.stderr


def test_results_without_samples_or_levels_get_one_bin(tmp_path: Path) -> None:
    from tts.testing.synthetic import iter_cells

    spec = SyntheticSpec(n_problems=12, budgets=(1, 4), policies=SPEC.policies[:1], prms=SPEC.prms)
    store = tts.store.SweepStore(tmp_path / "bare")
    for cell_id, _, table, _ in iter_cells(spec):
        store.write("cell", cell_id, pa.Table.from_pandas(table.to_pandas().assign(level=None)))
    for data in (summary.load_summary(tmp_path / "bare"), summary.scan_raw(tmp_path / "bare")):
        t = compute_optimal_tables(data, replicates=100)
        assert t.method == "none" and set(t.generation["bin"]) == {"all"}
        assert t.generation["ci_low"].notna().all() and len(t.generation) == 2
