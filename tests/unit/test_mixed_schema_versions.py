"""A results folder whose cells were written by different releases (results schema 1/2 beside the current
one) gives the same compute-optimal tables as the all-current folder: older files lack columns that the reader
fills with nulls, and `generations` was int64 before schema 4."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from tts.analysis import summary
from tts.analysis.settings import AnalysisConfig
from tts.analysis.tables import compute_optimal_tables
from tts.store import SweepStore
from tts.testing.synthetic import DEFAULT_STRATEGIES, SyntheticSpec, SynthPolicy, SynthPRM, write_results

CFG = AnalysisConfig(baselines={"best-of-N": "best_of_n"}, replicates=50, charge_binning=False)
SPEC = SyntheticSpec(
    sweep="mixed",
    n_problems=40,
    policies=(SynthPolicy("small", 100_000_000, -0.5),),
    prms=(SynthPRM("prm", "vllm_pooling", 500_000_000, 0.9),),
    strategies=DEFAULT_STRATEGIES,
    budgets=(1, 4),
    seeds=(0, 1),
    pool_size=4,
)
NEWER = ("config_id", "grade_status", "pool_sha256", "candidate_answers", "candidate_scores")


def _age(table: pa.Table) -> pa.Table:
    """The same rows as an older release wrote them."""
    table = table.drop_columns([c for c in NEWER if c in table.column_names])
    i = table.column_names.index("generations")
    return table.set_column(i, "generations", table["generations"].cast(pa.int64()))


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("mixed")
    current = write_results(root / "current", SPEC)
    mixed = root / "old"
    shutil.copytree(current, mixed)
    store = SweepStore(mixed)
    cells = sorted((eid, e) for (kind, eid), e in store.entries().items() if kind == "cell")
    for eid, entry in cells:  # seed 0's cells rewritten as an older release wrote them: every configuration
        if entry.config.get("seed") != 0:  # then mixes an old and a current cell
            continue
        store.write("cell", eid, _age(store.read(entry)), status=entry.status, config=entry.config)
    return current, mixed


def test_mixed_versions_give_the_same_tables(folders: tuple[Path, Path]) -> None:
    stats = [summary.load_summary(p).stats for p in folders]
    assert set(stats[0]["config_id"]) == set(stats[1]["config_id"])  # no configuration split in two
    current, mixed = (compute_optimal_tables(summary.load_summary(p), CFG).generation for p in folders)
    key = ["policy", "prm", "bin", "budget"]
    a, b = current.sort_values(key).reset_index(drop=True), mixed.sort_values(key).reset_index(drop=True)
    assert len(a) == len(b) > 0
    assert (a["config_id"] == b["config_id"]).all()  # old rows join the written id of their configuration
    np.testing.assert_allclose(a["accuracy"], b["accuracy"], atol=1e-12)
    np.testing.assert_allclose(a["in_sample"], b["in_sample"], atol=1e-12)
