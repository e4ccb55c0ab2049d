"""Planning (engines, shared pools, jobs), the job bodies on fakes, result rows, and the retry policy, without Ray."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tts.grid import Cell, expand
from tts.runtime.cells import cell_rows, run_pool_job, run_search_job
from tts.runtime.engine_pool import actor_options, plan_engines, prm_key
from tts.runtime.plan import Problems, order_works, pool_works, search_works
from tts.runtime.scheduler import Scheduler, Work, is_actor_death
from tts.testing.fake_engines import FakePolicy, FakePRM


@pytest.fixture(scope="module")
def smoke() -> list[Cell]:
    return list(expand(["+sweep=smollm2", "dataset.per_level=2"]).cells)


@pytest.fixture(scope="module")
def problems(smoke: list[Cell]) -> Problems:
    p = Problems()
    p.load(smoke)
    return p


def _no_store(pool_id: str) -> None:
    return None


def test_one_engine_serves_the_policy_and_its_judge(smoke: list[Cell]) -> None:
    specs = plan_engines(smoke)
    assert len(specs) == 1, "the judge PRM on the policy's model must reuse the policy engine"
    (spec,) = specs.values()
    assert spec.policy is not None and [p.kind for _, p in spec.prms] == ["judge"]
    rule = next(c for c in smoke if c.config.prm.kind == "rule_arithmetic")
    assert prm_key(rule.config) is None  # rule-based PRMs run inside the task
    hot = [
        replace(c, config=replace(c.config, policy=replace(c.config.policy, temperature=1.0))) for c in smoke
    ]
    assert list(plan_engines(smoke + hot)) == list(specs), "sampling knobs must not start another engine"


def test_sampling_cells_share_pools_and_generation(smoke: list[Cell], problems: Problems) -> None:
    todo = {c.id for c in smoke}
    works = pool_works(smoke, todo, problems.for_cell, _no_store, sweep="smoke")
    assert len(works) == 2  # one pool per PRM, 12 cells each
    assert sorted(len(w.cells) for w in works) == [12, 12]
    assert all(w.job.n_max == 8 and w.job.score for w in works)
    assert works[0].job.cache_key == works[1].job.cache_key, "one generation for both PRMs"
    assert works[0].uid != works[1].uid
    searches = search_works(smoke, todo, problems.for_cell)
    assert len(searches) == 5 and all(len(w.cells) == 1 for w in searches)
    ordered = order_works(works + searches)
    assert [w.policy_key for w in ordered] == sorted(w.policy_key for w in ordered)


def test_pool_n_max_counts_finished_cells_and_stored_pools_need_no_engine(
    smoke: list[Cell], problems: Problems
) -> None:
    small = {c.id for c in smoke if c.n == 1 and c.strategy == "best_of_n"}
    (judge,) = [w for w in pool_works(smoke, small, problems.for_cell, _no_store, sweep="s") if w.prm_key]
    assert judge.job.n_max == 8 and len(judge.cells) == 1
    stored = pool_works(smoke, small, problems.for_cell, lambda pid: [], sweep="s")
    assert all(w.keys == [] and w.job.stored == () for w in stored)


def test_majority_only_pool_is_not_scored(smoke: list[Cell], problems: Problems) -> None:
    majority = [c for c in smoke if c.strategy == "majority_vote"]
    works = pool_works(majority, {c.id for c in majority}, problems.for_cell, _no_store, sweep="s")
    assert all(not w.job.score and w.prm_key is None and w.local_prm is None for w in works)


def test_pool_job_on_fakes_nests_budgets_and_reloads_identically(
    smoke: list[Cell], problems: Problems
) -> None:
    rule = [c for c in smoke if c.config.prm.kind == "rule_arithmetic"]
    (work,) = pool_works(rule, {c.id for c in rule}, problems.for_cell, _no_store, sweep="s")
    policy = FakePolicy(0, record=True)
    result = run_pool_job(work.job, policy, FakePRM(0))
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


def test_search_job_and_rows_with_flops(smoke: list[Cell], problems: Problems) -> None:
    cell = next(
        c
        for c in smoke
        if c.strategy == "beam_search" and c.n == 4 and c.config.prm.kind == "rule_arithmetic"
    )
    (work,) = search_works([cell], {cell.id}, problems.for_cell)
    result = run_search_job(work.job, FakePolicy(0), FakePRM(0))
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


def test_cpu_engine_requests_cpus_and_gpu_engine_requests_its_share(smoke: list[Cell]) -> None:
    (spec,) = plan_engines(smoke).values()
    opts, pg = actor_options(spec, max_restarts=3)
    assert pg is None and opts["num_cpus"] == 1 and opts["num_gpus"] == 0 and opts["max_restarts"] == 3
    half = replace(spec, engine=replace(spec.engine, num_gpus=0.5))
    assert actor_options(half, 0)[0]["num_gpus"] == 0.5


class _Pool:
    def release_slot(self, replica: object) -> None: ...


def test_retry_policy_deaths_do_not_use_up_tries() -> None:
    from ray.exceptions import ActorDiedError

    failures: list[str] = []
    sched = Scheduler(
        _Pool(),
        max_inflight_per_engine=2,
        max_tries=2,
        max_engine_restarts=3,
        on_result=lambda w, r: None,
        on_failure=lambda w, e: failures.append(e),
    )
    work = Work(job=replace_uid("j1"), cells=[], policy_key="p", prm_key=None, prm_id="", local_prm=None)
    for _ in range(3):  # three engine deaths: requeued each time, tries unchanged
        work.tries += 1
        sched._failed(work, ActorDiedError())
        assert sched.pending.popleft() is work
    assert work.tries == 0 and work.deaths == 3 and not failures
    work.tries += 1
    sched._failed(work, ActorDiedError())  # the 4th death exceeds max_engine_restarts: recorded as failed
    assert failures and work.deaths == 4
    assert is_actor_death(ActorDiedError()) and not is_actor_death(ValueError("x"))


def test_retry_policy_gives_up_after_max_tries_with_the_error() -> None:
    failures: list[str] = []
    sched = Scheduler(
        _Pool(),
        max_inflight_per_engine=2,
        max_tries=2,
        max_engine_restarts=3,
        on_result=lambda w, r: None,
        on_failure=lambda w, e: failures.append(e),
    )
    work = Work(job=replace_uid("j2"), cells=[], policy_key="p", prm_key=None, prm_id="", local_prm=None)
    work.tries = 1
    sched._failed(work, ValueError("bad parse"))
    assert sched.pending and not failures
    sched.pending.clear()
    work.tries = 2
    sched._failed(work, ValueError("bad parse"))
    assert failures == ["ValueError: bad parse"] and not sched.pending


class replace_uid:  # noqa: N801 - a minimal job stand-in
    def __init__(self, uid: str) -> None:
        self.uid = uid
