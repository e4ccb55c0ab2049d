"""Seeded means reproducible, on the real engine: the zoo's zoo-policy-m served by vLLM (CPU) in Ray actors.

Every generate request carries its own seed, derived from the cell seed and what it asks
(tts.strategies.base.request_seed), and CPU engines run with chunked prefill off (conf/engine/cpu.yaml), so a
sample depends on nothing else the engine generated. Shown here with `tts verify` (tts.runtime.verify):
  (a) + (c) a sweep of a pool cell (majority vote) beside beam search, particle filtering and sequential revision
      on one engine, recomputed by `tts verify` on a fresh engine: every row, candidate and pool sample identical;
  (b) the pool cell recomputed ALONE (nothing else on its engine) gives the same samples it gave beside the
      three searches; one stored sample edited first, and verify names exactly that one difference and exits 1.
Compared: texts, answers, grades, candidates, scores, generations and token counts (prefix-cache counts and
times aside). Before per-request seeds the same one-cell sweep run twice shared 78 of 160 samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tts.cli import main
from tts.grid import expand
from tts.runtime.driver import run_sweep
from tts.store import SweepStore

pytestmark = pytest.mark.integration


def test_cells_recompute_identically_on_fresh_engines_alone_or_alongside_others(
    ray_local: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid = expand(
        [
            f"results_dir={tmp_path / 'results'}",
            "policy=zoo_policy_m",
            "prm=rule_arithmetic",
            "dataset=chain",
            "dataset.levels=[3]",
            "dataset.per_level=4",
            "strategy=majority_vote,beam_search,particle_filtering,sequential_revision",
            "n=4",
            "sweep.name=rep",
        ]
    )
    summary = run_sweep(grid, live=False)
    assert (summary.computed, summary.failed, summary.engine_loads) == (4, 0, 1)
    folder = tmp_path / "results" / "rep"
    store = SweepStore(folder)
    cells, _ = store.verified("cell")
    assert {e.meta.get("seeding") for e in cells.values()} == {"per_request"}

    assert main(["verify", str(folder), "--cells", "4", "--scratch", str(tmp_path / "again")]) == 0
    out = capsys.readouterr().out
    assert out.count(": identical") == 4 and "0 difference(s)" in out, out
    assert "16 pool samples: identical" in out

    pool_cell = next(cid for cid, e in cells.items() if e.meta.get("pool_id"))
    pools, _ = store.verified("pool")
    (pool_id, entry), *_ = pools.items()
    rows = store.read(entry).to_pandas().to_dict("records")
    assert {r["seeding"] for r in rows} == {"per_request"}
    rows[5]["answer"] = "-1"
    store.write_rows("pool", pool_id, rows, meta=entry.meta)
    assert main(["verify", str(folder), "--cells", pool_cell, "--scratch", str(tmp_path / "alone")]) == 1
    out = capsys.readouterr().out
    assert (
        "1 difference(s)" in out and f"sample {rows[5]['problem_id']}/{rows[5]['sample_idx']} answer" in out
    )
