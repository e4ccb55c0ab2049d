"""The sweep driver: a Grid in, results/<sweep>/ out. Resumes by construction.

Why: this is the one place that ties the pieces together, in order:
  1. open the sweep's store (one driver per sweep folder: a file lock), write sweep.yaml;
  2. skip every cell the manifest lists as finished with a file that checks out (a rerun computes 0 cells and
     starts no Ray at all); a corrupt or missing file only recomputes its cell; a pool cell derived from another
     version of its pool than the current one (pool_sha256) is recomputed from the current one; result files
     without a manifest stop the run before anything is written (`tts repair <dir>` restores it);
  3. load data sets once, bin problems by difficulty when cells are restricted to bins;
  4. start Ray (local `ray.init()`, or connect to a cluster), plan the engines, run the scheduler;
  5. write each finished pool / cell atomically as it arrives, failures as `status=failed` rows with the error;
  6. release engines, shut Ray down if we started it, print a one-line summary with the results path.
A SIGTERM (Slurm preemption or time limit) stops the scheduler from taking work; a Ray cluster whose GCS stops
answering ends the run with a message saying how to resume (tts.runtime.stops). Either way finished cells stay.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from tts import identity
from tts.config import ClusterConfig
from tts.engines.vllm_common import seeding_mode
from tts.grid import Cell, Grid, resolved
from tts.runtime.actors import DEFAULT_BUILDER
from tts.runtime.cells import JobResult, cell_rows, failed_outcomes
from tts.runtime.engine_pool import EnginePool, plan_engines
from tts.runtime.plan import (
    Problems,
    binning_cells,
    needs_binning,
    order_works,
    pool_works,
    search_works,
)
from tts.runtime.progress import Progress
from tts.runtime.resume import resume_notes, stale_cells
from tts.runtime.scheduler import Scheduler, Work
from tts.runtime.stops import (
    CLUSTER_LOST_REASON,
    ClusterLostError,
    GcsWatch,
    cluster_lost_message,
    sigterm_stops,
)
from tts.store import SweepStore

log = logging.getLogger(__name__)


@dataclass
class SweepSummary:
    name: str
    path: str
    total: int
    skipped: int  # finished by an earlier run
    computed: int  # finished by this run
    failed: int
    corrupt: int  # files that failed their checksum (their cells were recomputed)
    engine_loads: int  # engine actors created (each loads its models once)
    engine_deaths: int
    requeued: int
    tokens: int
    wall_s: float
    stopped: str | None = None  # why the run stopped before the end ("SIGTERM"); a rerun resumes

    def line(self) -> str:
        state = f" stopped by {self.stopped} (rerun to resume)" if self.stopped else ""
        return (
            f"sweep {self.name}{state}: {self.computed} cells computed, {self.skipped} already finished, "
            f"{self.failed} failed ({self.total} total) in {self.wall_s:.0f} s, {self.engine_loads} engine loads, "
            f"{self.tokens} tokens generated -> {self.path}"
        )


def sweep_dir(grid: Grid) -> Path:
    return Path(str(grid.results_dir)).expanduser() / grid.name


def connect(cluster: ClusterConfig, cpus_needed: float = 1.0, log_to_driver: bool = True) -> bool:
    """Start (local) or join (ray) a Ray cluster unless one is up already; True if we started it."""
    import ray

    if ray.is_initialized():
        return False
    os.environ["RAY_AUTH_MODE"] = cluster.auth_mode
    if cluster.mode == "ray":
        ray.init(address=cluster.address or "auto", log_to_driver=log_to_driver)
        return True
    from tts.runtime.local_ray import init_local

    num_cpus = cluster.num_cpus or max(os.cpu_count() or 1, int(cpus_needed + 0.999))
    init_local(num_cpus, cluster.num_gpus, auth_mode=cluster.auth_mode, log_to_driver=log_to_driver)
    return True


class SweepLockedError(RuntimeError):
    """Another driver holds the sweep folder's lock."""


class SweepNeedsRepairError(RuntimeError):
    """The sweep folder has result files but no manifest listing them: `tts repair <dir>` rebuilds it."""


class Driver:
    """Runs one Grid. `builder` overrides how engine actors build engines (tests: FakeEngineBuilder)."""

    def __init__(
        self, grid: Grid, *, builder: Any = DEFAULT_BUILDER, live: bool | None = None, verbose: bool = False
    ) -> None:
        self.grid = grid
        self.verbose = verbose
        self.builder = builder
        self.live = live
        self.store = SweepStore(sweep_dir(grid))
        self.cells = {c.id: c for c in grid.cells}
        self.problems = Problems()
        self.bins: dict[tuple[str, str], str] = {}
        self.pool_meta: dict[str, dict[str, Any]] = {}
        self.pool_sha: dict[str, str] = {}  # pool id -> sha256 of the version cells are derived from
        self.progress: Progress | None = None
        self.engine_pool: EnginePool | None = None
        # held while a result is written: a driver that loses its cluster exits between two writes
        self.writing = threading.Lock()

    # ---- results
    def _params(self, work: Work, cell: Cell) -> tuple[int, int, str | None]:
        cfg = cell.config
        info = self.engine_pool.info(work.policy_key) if self.engine_pool and work.policy_key else {}
        meta = self.pool_meta.get(work.uid, {})
        policy_params = cfg.policy.params or info.get("policy_params") or meta.get("policy_params") or 0
        prm_params = cfg.prm.params or 0
        if not prm_params and work.prm_key and self.engine_pool:
            prm_params = (self.engine_pool.info(work.prm_key).get("prm_params") or {}).get(work.prm_id) or 0
        if not prm_params:
            prm_params = meta.get("prm_params") or 0
        return int(policy_params), int(prm_params), info.get("policy_model") or meta.get("policy_model")

    def _write_pool(self, work: Work, rows: list[dict[str, Any]], **extra: Any) -> None:
        """Persist a freshly built pool with what its derived cells need later (parameter counts)."""
        policy_params, prm_params, model = self._params(work, work.cells[0])
        meta = {
            "n_max": work.job.n_max,
            "policy_params": policy_params,
            "prm_params": prm_params,
            "policy_model": model,
            "cells": [c.id for c in work.cells],
            "seeding": seeding_mode(work.cells[0].config.engine, work.cells[0].config.policy),
            **extra,
        }
        with self.writing:
            entry = self.store.write_rows("pool", work.uid, rows, meta=meta)
        self.pool_meta[work.uid] = meta
        self.pool_sha[work.uid] = entry.sha256

    def on_result(self, work: Work, result: JobResult) -> None:
        pool_id = work.uid if work.job.__class__.__name__ == "PoolJob" else None
        if result.sample_rows is not None:
            self._write_pool(work, result.sample_rows)
        pool_sha = self.pool_sha.get(pool_id) if pool_id else None
        # a cell is seeded as the pool it was derived from (a pool stored by an older version: engine-seeded)
        seeding = self.pool_meta.get(pool_id, {}).get("seeding") if pool_id else None
        ok = 0
        for cell in work.cells:
            policy_params, prm_params, model = self._params(work, cell)
            rows = cell_rows(
                cell,
                result.outcomes[cell.id],
                sweep=self.grid.name,
                pool_id=pool_id,
                pool_sha256=pool_sha,
                policy_params=policy_params,
                prm_params=prm_params,
                policy_model=model,
                seeding=seeding if pool_id else seeding_mode(cell.config.engine, cell.config.policy),
            )
            self._write_cell(cell, rows, "ok", work, pool=(pool_id, pool_sha) if pool_id else None)
            ok += 1
        if self.progress:
            self.progress.cells(ok=ok, tokens=result.tokens_generated)

    def on_failure(self, work: Work, error: str) -> None:
        self._fail_cells(work.cells, error, work)

    def _fail_cells(self, cells: list[Cell], error: str, work: Work | None = None) -> None:
        """Record cells as failed (status=failed rows with the error); a rerun retries them."""
        for cell in cells:
            problems = self.problems.for_cell(cell, self.bins)
            rows = cell_rows(
                cell,
                failed_outcomes(problems),
                sweep=self.grid.name,
                pool_id=None,
                policy_params=0,
                prm_params=0,
                status="failed",
                error=error,
            )
            self._write_cell(cell, rows, "failed", work, error=error)
        if self.progress:
            self.progress.cells(failed=len(cells), job=work is not None)

    def _write_cell(
        self,
        cell: Cell,
        rows: list[dict[str, Any]],
        status: str,
        work: Work | None,
        pool: tuple[str, str | None] | None = None,
        error: str | None = None,
    ) -> None:
        meta: dict[str, Any] = {"overrides": list(cell.overrides), "axes": dict(cell.axes)}
        # the strategy's traits travel with its results: the analysis never depends on what is installed
        meta["traits"] = dataclasses.asdict(cell.entry.traits)
        if error:
            meta["error"] = error.strip().splitlines()[0][:500] if error.strip() else error
        if work is not None:
            meta.update(tries=work.tries, engine_deaths=work.deaths, errors=work.errors[-3:])
        if pool is not None:
            meta.update(pool_id=pool[0], pool_sha256=pool[1])
        if status == "ok":
            meta["seeding"] = rows[0].get("seeding") if rows else None
        with self.writing:
            self.store.write_rows(
                "cell",
                cell.id,
                rows,
                status=status,
                config=identity.cell_fields(resolved(cell.config)),
                meta=meta,
            )

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        if self.progress is None or self.engine_pool is None:
            return
        if kind == "engine":
            label = self.engine_pool.engines[data["key"]].spec.label
            if data.get("error"):
                state = "failed"
            elif data.get("change") == "restarting":
                state = "restarting"
            else:
                state = f"ready (loaded in {(data.get('info') or {}).get('load_s', 0):.0f} s)"
            self.progress.engine(label, state)
        elif kind == "starting":
            self.progress.engine(self.engine_pool.engines[data["key"]].spec.label, "starting")
        elif kind == "released":
            self.progress.engine(self.engine_pool.engines[data["key"]].spec.label, "released")
        self.progress.tick()

    # ---- the run
    def _stored_pool(self, pool_id: str) -> list[dict[str, Any]] | None:
        entry = self._pools.get(pool_id)
        if entry is None:
            return None
        self.pool_meta[pool_id] = entry.meta
        self.pool_sha[pool_id] = entry.sha256
        return self.store.read(entry).to_pylist()

    def run(self) -> SweepSummary:
        from filelock import FileLock, Timeout

        started = time.monotonic()
        self.problems.load(self.grid.cells)
        self.problems.check()  # a bad data set stops here: nothing written, Ray not started
        unlisted = self.store.unlisted()
        if unlisted:
            raise SweepNeedsRepairError(
                f"{self.store.root}: {len(unlisted)} result file(s) but no {self.store.manifest_path.name} listing "
                f"them, so a rerun would recompute everything; restore it with `tts repair {self.store.root}`, "
                "then rerun"
            )
        self.store.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.store.root / ".lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout as exc:
            raise SweepLockedError(
                f"{self.store.root}: another `tts sweep` is writing this sweep (lock held by a running "
                "process); wait for it to finish, or give this run its own sweep.name=<name>"
            ) from exc
        try:
            return self._run(started)
        finally:
            lock.release()

    def _run(self, started: float) -> SweepSummary:
        grid, store = self.grid, self.store
        header = (
            "# Resolved sweep config, written by `tts sweep`. Overrides: " + " ".join(grid.overrides) + "\n"
        )
        axes = OmegaConf.to_yaml(OmegaConf.create({"expanded_axes": grid.axes, "cells": len(grid.cells)}))
        store.write_text("sweep.yaml", header + OmegaConf.to_yaml(grid.base) + axes)
        finished, corrupt = store.verified("cell")
        self._pools, bad_pools = store.verified("pool")
        for eid, why in {**corrupt, **bad_pools}.items():
            log.warning("result file of %s is unusable (%s): recomputing it", eid, why)
        done = {eid for eid, e in finished.items() if e.status == "ok"} - stale_cells(
            finished, self._pools, set(self.cells)
        )
        for note in resume_notes(grid, store.root, finished, done):
            print(note, flush=True)
        todo = [c for c in grid.cells if c.id not in done]
        skipped = len(grid.cells) - len(todo)
        summary = SweepSummary(
            grid.name,
            str(store.root),
            len(grid.cells),
            skipped,
            0,
            0,
            len([c for c in grid.cells if c.id in corrupt]),
            0,
            0,
            0,
            0,
            0.0,
        )
        if not todo:
            summary.wall_s = time.monotonic() - started
            print(summary.line(), flush=True)
            return summary

        self.progress = Progress(grid.name, len(grid.cells), skipped, live=self.live)
        cluster = self.grid.cluster
        specs = plan_engines(todo, self.builder)
        cpus = max((s.engine.num_cpus * s.engine.replicas for s in specs.values()), default=1)
        started_ray = connect(cluster, cpus + 1, log_to_driver=self.verbose)
        self.engine_pool = EnginePool(
            specs,
            max_restarts=cluster.max_engine_restarts,
            check_fit=cluster.mode == "local" or cluster.fixed_size,
        )
        scheduler = Scheduler(
            self.engine_pool,
            max_inflight_per_engine=cluster.max_inflight_per_engine,
            max_tries=cluster.max_tries,
            max_engine_restarts=cluster.max_engine_restarts,
            on_result=self.on_result,
            on_failure=self.on_failure,
            on_event=self.on_event,
        )
        watch = self._watch_gcs(scheduler, skipped) if cluster.mode == "ray" else None
        try:
            with sigterm_stops(scheduler.stop):
                self._run_works(todo, scheduler)
        finally:
            self.progress.stop()
            if scheduler.stopping != CLUSTER_LOST_REASON:  # with the GCS gone, releasing would block
                self.engine_pool.shutdown()
            if started_ray:
                from tts.runtime.local_ray import shutdown

                shutdown()  # ray.shutdown(), and the local session's watchdog stands down
            if watch is not None:
                watch.done.set()
        if scheduler.stopping == CLUSTER_LOST_REASON and watch is not None:
            raise ClusterLostError(watch.lost_message)
        p = self.progress
        summary.computed, summary.failed, summary.tokens = p.done, p.failed, p.tokens
        summary.engine_loads = self.engine_pool.actors_created
        summary.engine_deaths, summary.requeued = scheduler.engine_deaths, scheduler.requeues
        summary.stopped = scheduler.stopping
        summary.wall_s = time.monotonic() - started
        p.close(summary.line())
        return summary

    def _watch_gcs(self, scheduler: Scheduler, skipped: int) -> GcsWatch | None:
        """A thread that stops the sweep, with a message saying how to resume, when the GCS goes away."""
        import ray

        try:
            address = ray.get_runtime_context().gcs_address
        except Exception:  # Ray Client (ray://): no GCS address to watch from here
            log.warning("cannot watch the cluster's GCS from this driver: a lost head ends it as Ray decides")
            return None
        resume = " ".join(["tts", "sweep", *self.grid.overrides])

        def on_lost(silent_s: float) -> str:
            scheduler.stop(CLUSTER_LOST_REASON)
            done = skipped + (self.progress.done if self.progress else 0)
            return cluster_lost_message(address, silent_s, done, str(self.store.root), resume)

        watch = GcsWatch(address, self.grid.cluster.gcs_timeout_s, on_lost, self.writing)
        watch.start()
        return watch

    def _run_works(self, todo: list[Cell], scheduler: Scheduler) -> None:
        """Bin problems if needed, then run every pool and search job of `todo` (until done or stopped)."""
        grid = self.grid
        self._bin(todo, scheduler)
        if scheduler.stopping:
            return
        todo_ids = {c.id for c in todo}
        works = pool_works(
            grid.cells, todo_ids, self._problems_for, self._stored_pool, sweep=grid.name, builder=self.builder
        )
        works += search_works(grid.cells, todo_ids, self._problems_for, builder=self.builder)
        self.progress.jobs_total += len(works)
        scheduler.run(order_works(works))

    def _problems_for(self, cell: Cell) -> list[Any]:
        return self.problems.for_cell(self.cells.get(cell.id, cell), self.bins)

    def _bin(self, todo: list[Cell], scheduler: Scheduler) -> None:
        """Difficulty bins from samples (oracle / absolute / predicted), for cells restricted to bins."""
        reps = binning_cells([c for c in self.grid.cells if needs_binning(c)])
        if not reps:
            return
        import pandas as pd

        from tts.difficulty import assign_bins

        frames = []
        for rep in reps:
            k = rep.config.difficulty
            results: list[JobResult] = []
            works = pool_works(
                [rep],
                {rep.id},
                lambda c: self.problems.for_cell(c),
                self._stored_pool,
                sweep=self.grid.name,
                builder=self.builder,
                n_max_override=k.samples,
                score_override=k.method == "predicted",
            )

            def keep(work: Work, result: JobResult, sink: list[JobResult] = results) -> None:
                # the binning pool produces samples, not cells (work.cells holds its representative config)
                if result.sample_rows is not None:
                    self._write_pool(work, result.sample_rows, binning=True)
                    sink.append(result)
                    if self.progress:
                        self.progress.cells(tokens=result.tokens_generated, job=False)
                else:
                    sink.append(JobResult(work.uid, {}, list(work.job.stored or ())))

            scheduler.on_result, original = keep, scheduler.on_result
            reserved = {key for w in works for key in w.keys} | set(self.engine_pool.engines)
            scheduler.run(works, reserved=reserved)
            scheduler.on_result = original
            if scheduler.stopping:  # bins from part of the samples would be wrong: the rerun bins again
                return
            rows = [r for res in results for r in (res.sample_rows or [])]
            if rows:
                frames.append(
                    assign_bins(
                        pd.DataFrame(rows),
                        k.method,
                        num_bins=k.num_bins,
                        thresholds=list(k.thresholds),
                        samples_per_problem=k.samples,
                        prm=rep.config.prm.name,
                    )
                )
        if frames:
            table = pd.concat(frames, ignore_index=True)
            import pyarrow as pa

            self.store.write("difficulty", "difficulty", pa.Table.from_pandas(table, preserve_index=False))
            self.bins = {(r.policy, r.problem_id): str(r.bin) for r in table.itertuples()}


def run_sweep(
    grid: Grid, *, builder: Any = DEFAULT_BUILDER, live: bool | None = None, verbose: bool = False
) -> SweepSummary:
    """Run (or resume) a sweep; returns its summary. Ray is started here unless it is already up.
    `verbose`: stream the engines' own logs (vLLM) from the Ray workers to this terminal."""
    return Driver(grid, builder=builder, live=live, verbose=verbose).run()
