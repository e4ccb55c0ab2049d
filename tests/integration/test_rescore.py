"""`tts rescore` on a small version of the smoke sweep: the pool cells of zoo-policy-m scored by zoo-prm-s, then
rescored with zoo-prm-l, equal the cells a sweep with zoo-prm-l writes on the same (per-request seeded, so
identical) samples, and the rescore generates nothing.

Equal means: the same cell ids and pool ids (a rescored pool is the pool that sweep builds), every row's answer,
correctness, expected accuracy, generations and token counts, every sample's text and step scores (to 1e-5: the
PRM's float32 numerics in other batches). Zero generations charged: the run's generated tokens are 0 and the
rescore's policy actor is a ReplayPolicy (no model; its generate refuses).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration
pytest.importorskip("vllm")

from tts.grid import expand  # noqa: E402
from tts.runtime.driver import run_sweep  # noqa: E402
from tts.runtime.rescore import main as rescore_main  # noqa: E402
from tts.runtime.rescore import rescore  # noqa: E402
from tts.store import load, load_samples  # noqa: E402

COMPARED = ["answer", "correct", "expected_correct", "generations", "tokens_in", "tokens_out", "pool_id"]


def _grid(results: Path, name: str, prm: str) -> Any:
    return expand(
        [
            f"results_dir={results}",
            f"sweep.name={name}",
            "policy=zoo_policy_m",
            f"prm={prm}",
            "dataset=chain",
            "dataset.levels=[1,3]",
            "dataset.per_level=3",
            "engine=cpu",
            "engine.max_model_len=512",
            "strategy=majority_vote,best_of_n,weighted_best_of_n",
            "n=1,2,4",
        ]
    )


def test_rescoring_a_pool_equals_a_sweep_with_that_verifier_and_generates_nothing(
    ray_local: Any, tmp_path: Path
) -> None:
    smoke = tmp_path / "a" / "smoke"
    assert run_sweep(_grid(tmp_path / "a", "smoke", "zoo_prm_s"), live=False).failed == 0
    summary = rescore(smoke, ["prm=zoo_prm_l"])
    assert (summary.computed, summary.failed, summary.tokens) == (9, 0, 0)
    assert rescore_main([str(smoke), "prm=zoo_prm_l", "--no-live"]) == 0  # a rerun finds them all done
    assert run_sweep(_grid(tmp_path / "b", "smoke", "zoo_prm_l"), live=False).failed == 0

    rows = load(smoke)
    assert set(rows["prm"]) == {"zoo-prm-s", "zoo-prm-l"} and len(rows) == 2 * 9 * 6
    got = rows[rows["prm"] == "zoo-prm-l"].set_index(["cell_id", "problem_id"]).sort_index()
    want = load(tmp_path / "b" / "smoke").set_index(["cell_id", "problem_id"]).sort_index()
    assert list(got.index) == list(want.index)
    for col in COMPARED:
        assert (got[col].astype(str) == want[col].astype(str)).all(), col

    samples = load_samples(smoke)
    new = samples[samples["prm"] == "zoo-prm-l"].sort_values(["problem_id", "sample_idx"])
    ref = load_samples(tmp_path / "b" / "smoke").sort_values(["problem_id", "sample_idx"])
    old = samples[samples["prm"] == "zoo-prm-s"].sort_values(["problem_id", "sample_idx"])
    assert len(new) == len(ref) == len(old) == 6 * 4
    assert list(new["text"]) == list(ref["text"]) == list(old["text"])
    for x, y in zip(new["step_scores"], ref["step_scores"], strict=True):
        assert len(x) == len(y) and all(abs(u - v) < 1e-5 for u, v in zip(x, y, strict=True))
    assert any(list(x) != list(y) for x, y in zip(new["step_scores"], old["step_scores"], strict=True))
