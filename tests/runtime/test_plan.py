"""Planning (tts.runtime.plan): which pool and search jobs a sweep's cells make, what each job computes, and in
which order they run; without Ray or engines."""

from __future__ import annotations

from tts.grid import Cell
from tts.runtime.plan import Problems, order_works, pool_works, search_works


def _no_store(pool_id: str) -> None:
    return None


def test_sampling_cells_share_pools_and_generation(smollm2_cells: list[Cell], problems: Problems) -> None:
    todo = {c.id for c in smollm2_cells}
    works = pool_works(smollm2_cells, todo, problems.for_cell, _no_store, sweep="smoke")
    assert len(works) == 2  # one pool per PRM, 12 cells each
    assert sorted(len(w.cells) for w in works) == [12, 12]
    assert all(w.job.n_max == 8 and w.job.score for w in works)
    assert works[0].job.cache_key == works[1].job.cache_key, "one generation for both PRMs"
    assert works[0].uid != works[1].uid
    searches = search_works(smollm2_cells, todo, problems.for_cell)
    assert len(searches) == 5 and all(len(w.cells) == 1 for w in searches)
    ordered = order_works(works + searches)
    assert [w.policy_key for w in ordered] == sorted(w.policy_key for w in ordered)


def test_pool_n_max_counts_finished_cells_and_stored_pools_need_no_engine(
    smollm2_cells: list[Cell], problems: Problems
) -> None:
    small = {c.id for c in smollm2_cells if c.n == 1 and c.strategy == "best_of_n"}
    (judge,) = [
        w for w in pool_works(smollm2_cells, small, problems.for_cell, _no_store, sweep="s") if w.prm_key
    ]
    assert judge.job.n_max == 8 and len(judge.cells) == 1
    stored = pool_works(smollm2_cells, small, problems.for_cell, lambda pid: [], sweep="s")
    assert all(w.keys == [] and w.job.stored == () for w in stored)


def test_majority_only_pool_is_not_scored(smollm2_cells: list[Cell], problems: Problems) -> None:
    majority = [c for c in smollm2_cells if c.strategy == "majority_vote"]
    works = pool_works(majority, {c.id for c in majority}, problems.for_cell, _no_store, sweep="s")
    assert all(not w.job.score and w.prm_key is None and w.local_prm is None for w in works)
