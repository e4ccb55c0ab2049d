"""A results folder end to end: difficulty.parquet, the materialised summary vs in-memory rows, plots, and
`tts analyze` (report.md with held-out and in-sample columns, terminal table, clear errors)."""

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
from tts.analysis.settings import AnalysisConfig
from tts.analysis.source import from_rows
from tts.analysis.tables import candidates, compute_optimal_tables
from tts.testing.synthetic import DEFAULT_STRATEGIES, SyntheticSpec, SynthPolicy, SynthPRM, write_results

CFG = AnalysisConfig(baselines={"best-of-N": "best_of_n"}, replicates=100, charge_binning=False)

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
    return t.generation.set_index(["policy", "prm", "dataset", "bin", "budget"]).sort_index()


def test_summary_and_memory_paths_agree(results: Path) -> None:
    fast = compute_optimal_tables(summary.load_summary(results), CFG)
    rows = tts.store.load(results)
    mem = compute_optimal_tables(from_rows(rows, ensure_difficulty(results), fast.method), CFG)
    assert fast.method == "oracle_quantile"  # sample pools exist: Snell's bins by default
    a, c = _gen(fast), _gen(mem)
    assert len(a) == len(c) > 0
    assert (a["config_id"] == c["config_id"]).all()  # one identity rule on both paths
    for col in ("accuracy", "ci_low", "ci_high", "in_sample", "gain:best-of-N"):
        np.testing.assert_allclose(a[col], c[col], atol=1e-9)
    assert (a["in_sample"] >= a["accuracy"] - 1e-12).sum() >= len(a) * 0.8  # in-sample rarely below held-out
    # failed rows are left out: the all-problems accuracy of a configuration counts only ok rows
    data = summary.load_summary(results)
    ok = rows[(rows["status"] == "ok") & (rows["policy"] == "big") & (rows["strategy"] == "best_of_n")]
    st = data.stats[(data.stats["bin"] == "all") & (data.stats["policy"] == "big")]
    assert st.loc[(st["strategy"] == "best_of_n") & (st["n"] == 4), "rows"].sum() == (ok["n"] == 4).sum()
    assert len(fast.cross_size) and fast.cross_size.iloc[0]["large_policy"] == "big"


def test_summary_is_reused_until_results_change(results: Path) -> None:
    out = summary.build_summary(results)
    stamp = (out / "meta.json").stat().st_mtime_ns
    assert summary.build_summary(results) == out and (out / "meta.json").stat().st_mtime_ns == stamp
    store = tts.store.SweepStore(results)
    extra = pd.read_parquet(next((results / "cells").glob("*.parquet")))
    extra = extra.assign(
        cell_id="extra-cell", config_id="extra-config", n=999, expected_correct=None, **{"config.n": 999}
    )
    # a file without some columns (the store writes only the columns its rows have): the scan still reads it
    store.write(
        "cell", "extra-cell", pa.Table.from_pandas(extra.drop(columns=["expected_correct", "grade_status"]))
    )
    summary.build_summary(results)
    assert (out / "meta.json").stat().st_mtime_ns != stamp
    data = summary.load_summary(results)
    assert (data.stats["n"] == 999).any()


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
    t = compute_optimal_tables(data, CFG)
    cands = candidates(data, charge=False)
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
    assert "#e69f00" in svg.lower() and "generations spent per problem (mean)" in svg


def test_tts_analyze_writes_report_and_prints_table(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tts.cli import main as cli_main

    assert cli_main(["analyze", str(results), "--set", "replicates=100"]) == 0
    out = capsys.readouterr().out
    assert "held-out" in out and "chosen strategy" in out and "beam_search" in out
    # the adaptive comparison: X/Y per baseline budget, binning charged once beside it (tts.analysis.adaptive)
    assert "Difficulty-adaptive allocation by" in out and "X/Y [CI]" in out and "weighted best-of-N" in out
    text = (results / "report.md").read_text()
    for heading in (
        "Generation-matched",
        "FLOPs-matched",
        "Small policy",
        "Difficulty-adaptive allocation",
        "Compute accounting",
        "## Plots",
    ):
        assert heading in text
    assert "held-out accuracy [CI]" in text and "in-sample (oracle) [CI]" in text
    assert "vs best-of-N (held-out) [CI]" in text and "vs majority (held-out) [CI]" in text
    assert "| X/Y [CI] |" in text and "X/(Y + K) [CI], binning charged once per problem" in text
    assert "| big | prm | all |" in text and "oracle_quantile" in text
    # 60 problems in 5 bins: 6 a bin per fold, under the minimum: the report says so
    assert "too small to select on" in text
    # plots, linked relative to the results folder: adaptive allocation and coverage included
    assert "(plots/adaptive_allocation__big__prm__synthmath.png)" in text
    assert "(plots/coverage.png)" in text and (results / "plots" / "coverage.svg").is_file()


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
    t = compute_optimal_tables(summary.load_summary(tmp_path / "bare"), CFG)
    assert t.method == "none" and set(t.generation["bin"]) == {"all"}
    assert t.generation["ci_low"].notna().all() and len(t.generation) == 2
