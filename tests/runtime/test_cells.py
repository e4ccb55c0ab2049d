"""The job bodies (tts.runtime.cells) on a FakePolicy and the real rule-based PRM the cells ask for, and the
result rows they make; without Ray."""

from __future__ import annotations

from dataclasses import replace

from tts.engines.rule_prm import RuleArithmeticPRM
from tts.grid import Cell
from tts.runtime.cells import cell_rows, run_pool_job, run_search_job
from tts.runtime.plan import Problems, pool_works, search_works
from tts.testing.fake_engines import FakePolicy


def _no_store(pool_id: str) -> None:
    return None


def test_pool_job_on_fakes_nests_budgets_and_reloads_identically(
    smollm2_cells: list[Cell], problems: Problems
) -> None:
    rule = [c for c in smollm2_cells if c.config.prm.kind == "rule_arithmetic"]
    (work,) = pool_works(rule, {c.id for c in rule}, problems.for_cell, _no_store, sweep="s")
    policy = FakePolicy(0, record=True)
    result = run_pool_job(work.job, policy, RuleArithmeticPRM())
    assert policy.calls == 1, "one generate call for the whole pool"
    assert len(result.sample_rows) == 8 * len(work.job.problems)
    by_cell = {c.id: c for c in work.cells}
    tokens = {
        (by_cell[k].strategy, by_cell[k].n): sum(o["tokens_out"] for o in v)
        for k, v in result.outcomes.items()
    }
    assert tokens[("best_of_n", 1)] < tokens[("best_of_n", 4)] < tokens[("best_of_n", 8)]
    for rows in result.outcomes.values():
        assert all(0.0 <= o["expected_correct"] <= 1.0 for o in rows)
    reloaded = run_pool_job(replace(work.job, stored=tuple(result.sample_rows)), None, None)
    strip = {"wall_time_s"}
    for cid, rows in result.outcomes.items():
        again = reloaded.outcomes[cid]
        assert [{k: v for k, v in o.items() if k not in strip} for o in rows] == [
            {k: v for k, v in o.items() if k not in strip} for o in again
        ]
    assert reloaded.sample_rows is None


def test_search_job_and_rows_with_flops(smollm2_cells: list[Cell], problems: Problems) -> None:
    cell = next(
        c
        for c in smollm2_cells
        if c.strategy == "beam_search" and c.n == 4 and c.config.prm.kind == "rule_arithmetic"
    )
    (work,) = search_works([cell], {cell.id}, problems.for_cell)
    result = run_search_job(work.job, FakePolicy(0), RuleArithmeticPRM())
    rows = cell_rows(
        cell, result.outcomes[cell.id], sweep="s", pool_id=None, policy_params=1000, prm_params=10
    )
    assert len(rows) == len(problems.for_cell(cell))
    for r in rows:
        assert r["flops_policy"] == 2 * 1000 * (r["tokens_in"] - r["tokens_cached"] + r["tokens_out"])
        assert r["flops"] == r["flops_policy"] + r["flops_prm"]
        assert r["config.strategy.beam_width"] == 2 and r["config.n"] == 4 and r["status"] == "ok"
        assert r["generations"] > 0 and r["config_id"] == cell.config_id != cell.id
        assert len(r["candidate_answers"]) == len(r["candidate_correct"]) == len(r["candidate_scores"]) >= 1
        assert r["candidate_scores"] == sorted(r["candidate_scores"], reverse=True)  # final beams, best first
