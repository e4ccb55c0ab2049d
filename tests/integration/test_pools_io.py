"""`tts pools export` / `tts pools import`: a small zoo sweep's pools exported to one Parquet file (loadable by
Hugging Face `datasets`), imported into a new folder with no engine started, give the same analysis tables; a
small file in search-and-learn's published completions layout (its documented columns: problem, answer,
unique_id, level, completions, scores, pred_*, completion_tokens), written here, imports and analyzes, its
best-of-N cells picking the completion its scores rank first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.integration
pytest.importorskip("vllm")

from tts.analysis import summary  # noqa: E402
from tts.analysis.settings import AnalysisConfig  # noqa: E402
from tts.analysis.tables import compute_optimal_tables  # noqa: E402
from tts.grid import expand  # noqa: E402
from tts.runtime.driver import run_sweep  # noqa: E402
from tts.runtime.pools_io import import_pools  # noqa: E402
from tts.runtime.pools_io import main as pools_main  # noqa: E402
from tts.store import load  # noqa: E402

CFG = AnalysisConfig(baselines={"best-of-N": "best_of_n"}, replicates=50, charge_binning=False)
KEY = ["policy", "prm", "bin", "budget"]


def _tables(folder: Path) -> Any:
    return (
        compute_optimal_tables(summary.load_summary(folder), CFG)
        .generation.sort_values(KEY)
        .reset_index(drop=True)
    )


def test_export_then_import_gives_the_same_tables(ray_local: Any, tmp_path: Path) -> None:
    grid = expand(
        [
            f"results_dir={tmp_path / 'a'}",
            "sweep.name=small",
            "policy=zoo_policy_s",
            "prm=zoo_prm_s",
            "dataset=chain",
            "dataset.levels=[1,3]",
            "dataset.per_level=3",
            "engine=cpu",
            "engine.max_model_len=512",
            "strategy=majority_vote,best_of_n,weighted_best_of_n",
            "n=1,2,4",
        ]
    )
    assert run_sweep(grid, live=False).failed == 0
    out = tmp_path / "pools.parquet"
    assert pools_main(["export", str(tmp_path / "a" / "small"), "--out", str(out)]) == 0
    from datasets import load_dataset

    ds = load_dataset("parquet", data_files=str(out), split="train")
    assert len(ds) == 6 and len(ds[0]["completions"]) == 4 and ds[0]["prompt"] and ds[0]["reference"]

    imported = import_pools(out, tmp_path / "b" / "small")
    assert (imported.computed, imported.failed, imported.engine_loads, imported.tokens) == (9, 0, 0, 0)
    a, b = load(tmp_path / "a" / "small"), load(tmp_path / "b" / "small")
    assert sorted(a["cell_id"]) == sorted(b["cell_id"])
    ta, tb = _tables(tmp_path / "a" / "small"), _tables(tmp_path / "b" / "small")
    assert len(ta) == len(tb) > 0 and (ta["config_id"] == tb["config_id"]).all()
    np.testing.assert_allclose(ta["accuracy"], tb["accuracy"], atol=1e-12)


def test_a_search_and_learn_file_imports_and_analyzes(ray_local: Any, tmp_path: Path) -> None:
    right = "We add.\n\n2 + 3 = 5.\n\nThe answer is $\\boxed{5}$."
    wrong = "We add.\n\n2 + 3 = 100.\n\nThe answer is $\\boxed{100}$."
    rows = [
        {
            "problem": f"What is {i} + 3?" if i != 2 else "What is 2 + 3?",
            "solution": "...",
            "answer": str(i + 3),
            "subject": "Algebra",
            "level": 1 + i % 2,
            "unique_id": f"test/algebra/{i}.json",
            "completions": [right.replace("5", str(i + 3)), wrong, wrong, wrong],
            "scores": [[0.9, 0.8, 0.9], [0.9, 0.5, 0.2], [0.7, 0.4, 0.3], [0.8, 0.3, 0.1]],
            "pred": "...",
            "completion_tokens": [20, 20, 20, 20],
            "agg_scores": [0.9, 0.2, 0.3, 0.1],
            "pred_weighted@4": f"\\boxed{{{i + 3}}}",
            "pred_maj@4": "\\boxed{100}",
            "pred_naive@4": f"\\boxed{{{i + 3}}}",
        }
        for i in range(4)
    ]
    file = tmp_path / "sal.parquet"
    pq.write_table(pa.Table.from_pylist(rows), file)
    assert (
        pools_main(["import", str(file), "--out", str(tmp_path / "sal" / "sal"), "--policy", "qwen-1.5b"])
        == 0
    )
    df = load(tmp_path / "sal" / "sal")
    assert {"best_of_n", "weighted_best_of_n", "majority_vote"} <= set(df["strategy"]) and set(df["n"]) == {
        1,
        2,
        4,
    }
    bon4 = df[(df["strategy"] == "best_of_n") & (df["n"] == 4)]
    maj4 = df[(df["strategy"] == "majority_vote") & (df["n"] == 4)]
    assert len(bon4) == 4 and bon4["correct"].all()  # the right completion scores highest (last step 0.9)
    assert not maj4["correct"].any() and (df["policy"] == "qwen-1.5b").all()
    assert len(_tables(tmp_path / "sal" / "sal")) > 0
