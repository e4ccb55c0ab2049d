"""From cells to work: load each data set once, restrict cells to difficulty bins, group sampling cells into
shared sample pools, and make one job per pool / search cell.

Why here: the grouping decides the cost of a sweep. Pool-based cells (the entry trait `pool_based`) that differ
only in N and strategy share ONE pool of N_max samples (N_max over every cell of the group, finished or not,
so a recomputed cell is derived from the same stored pool as its siblings); pools of one policy scored by several
PRMs share one generation (the engine actor caches it under `cache_key`). Search cells run one job each.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from tts import identity
from tts.config import TTSConfig, grading_rules, sampling_settings, strategy_params
from tts.data.problem import Problem
from tts.engines.vllm_common import seeding_mode
from tts.grid import Cell, resolved
from tts.runtime.actors import DEFAULT_BUILDER, EngineSpec
from tts.runtime.cells import CellJob, PoolJob, SearchJob
from tts.runtime.engine_pool import policy_key, prm_id, prm_key
from tts.runtime.scheduler import Work


def dataset_key(cfg: TTSConfig) -> str:
    return identity.dataset_key(resolved(cfg))


@dataclass
class Problems:
    """Problems per data set config (loaded once), and errors for those that failed to load."""

    by_key: dict[str, list[Problem]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    failures: dict[str, Exception] = field(default_factory=dict)

    def load(self, cells: Sequence[Cell]) -> None:
        """Load and validate every distinct data set (tts.data.load_problems_checked); a set that fails is
        recorded in `errors` with its one-line DataSetError message (field, file, line, fix)."""
        from tts.data import DataSetError, load_problems_checked

        for cell in cells:
            key = dataset_key(cell.config)
            if key in self.by_key or key in self.errors:
                continue
            try:
                self.by_key[key] = list(load_problems_checked(cell.config.dataset))
            except DataSetError as exc:
                self.errors[key] = str(exc)
                self.failures.setdefault(key, exc)

    def check(self) -> None:
        """Raise the first data set's DataSetError: the sweep stops before Ray or any engine starts."""
        if self.failures:
            raise next(iter(self.failures.values()))

    def for_cell(self, cell: Cell, bins: dict[tuple[str, str], str] | None = None) -> list[Problem]:
        """The cell's problems: its data set, restricted to `difficulty.bins` when set."""
        problems = self.by_key.get(dataset_key(cell.config), [])
        wanted = cell.config.difficulty.bins
        if wanted is None:
            return problems
        wanted_str = {str(b) for b in wanted}
        if cell.config.difficulty.method == "dataset_level":
            return [p for p in problems if p.level is not None and str(p.level) in wanted_str]
        bins = bins or {}
        return [p for p in problems if bins.get((cell.config.policy.name, p.id)) in wanted_str]


def needs_binning(cell: Cell) -> bool:
    """Cells restricted to bins that come from samples (oracle / absolute / predicted) need a binning pool."""
    return cell.config.difficulty.bins is not None and cell.config.difficulty.method != "dataset_level"


def _sampling_key(cfg: TTSConfig) -> dict[str, Any]:
    s = asdict(sampling_settings(cfg))
    s.pop("aggregation")
    s.pop("seed")  # the seed enters the ids as the config's own `seed`
    return s


def pool_group_key(cfg: TTSConfig) -> str:
    """Cells with the same key share a pool (tts.identity.pool_group_key)."""
    return identity.pool_group_key(resolved(cfg), _sampling_key(cfg))


def generation_key(cfg: TTSConfig) -> str:
    """Pools with the same key share one generation, whatever their PRM (tts.identity.generation_group_key)."""
    return identity.generation_group_key(resolved(cfg), _sampling_key(cfg))


def _engine_work(cfg: TTSConfig, builder: Any) -> tuple[str, str | None, str, EngineSpec | None]:
    """(policy key, PRM engine key or None, scorer id, task-local PRM spec or None) for a cell's config."""
    pid = prm_id(cfg)
    rk = prm_key(cfg)
    local = None
    if rk is None:
        local = EngineSpec(f"local:{pid}", cfg.prm.name, None, ((pid, cfg.prm),), cfg.engine, builder)
    return policy_key(cfg), rk, pid, local


def pool_works(
    cells: Sequence[Cell],
    todo: set[str],
    problems_for: Callable[[Cell], list[Problem]],
    stored: Callable[[str], list[dict[str, Any]] | None],
    *,
    sweep: str,
    builder: Any = DEFAULT_BUILDER,
    n_max_override: int | None = None,
    score_override: bool | None = None,
) -> list[Work]:
    """One Work per sample pool that has a cell in `todo` (N_max and scoring decided over all its cells)."""
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        if cell.entry.traits.pool_based or n_max_override is not None:
            groups.setdefault(pool_group_key(cell.config), []).append(cell)
    works = []
    for group in groups.values():
        mine = [c for c in group if c.id in todo]
        if not mine:
            continue
        cfg = group[0].config
        n_max = n_max_override or max(c.n for c in group)
        score = (
            score_override
            if score_override is not None
            else any(c.entry.traits.needs_verifier for c in group)
        )
        per_cell = {c.id: problems_for(c) for c in mine}
        union: dict[str, Problem] = {}
        for c in group:
            for p in problems_for(c):
                union.setdefault(p.id, p)
        problems = tuple(union.values())
        ids = [p.id for p in problems]
        cache_key = identity.generation_key(resolved(cfg), _sampling_key(cfg), ids, n_max)
        pool_id = identity.pool_id(resolved(cfg), _sampling_key(cfg), ids, n_max, score)
        pk, rk, pid, local = _engine_work(cfg, builder)
        rows = stored(pool_id)
        jobs = tuple(
            CellJob(
                c.id,
                c.entry,
                c.n,
                c.config.prm.aggregation,
                tuple(p.id for p in per_cell[c.id]),
                c.config.seed,
                strategy_params(c.config),
            )
            for c in mine
        )
        job = PoolJob(
            uid=pool_id,
            cache_key=cache_key,
            problems=problems,
            cells=jobs,
            n_max=n_max,
            sampling=sampling_settings(cfg),
            seed=cfg.seed,
            score=score,
            meta={
                "sweep": sweep,
                "policy": cfg.policy.name,
                "prm": cfg.prm.name,
                "seeding": seeding_mode(cfg.engine, cfg.policy),
            },
            stored=tuple(rows) if rows is not None else None,
            rules=grading_rules(cfg),
        )
        if rows is not None:  # a stored pool needs no engine
            works.append(Work(job, mine, None, None, pid, None))
        else:
            works.append(Work(job, mine, pk, rk if score else None, pid, local if score else None))
    return works


def search_works(
    cells: Sequence[Cell],
    todo: set[str],
    problems_for: Callable[[Cell], list[Problem]],
    *,
    builder: Any = DEFAULT_BUILDER,
) -> list[Work]:
    works = []
    for cell in cells:
        if cell.entry.traits.pool_based or cell.id not in todo:
            continue
        cfg = cell.config
        problems = tuple(problems_for(cell))
        job = SearchJob(
            uid=cell.id,
            cell=CellJob(
                cell.id, cell.entry, cell.n, cfg.prm.aggregation, tuple(p.id for p in problems), cfg.seed
            ),
            problems=problems,
            sampling=sampling_settings(cfg),
            params=strategy_params(cfg),
            rules=grading_rules(cfg),
        )
        pk, rk, pid, local = _engine_work(cfg, builder)
        works.append(Work(job, [cell], pk, rk, pid, local))
    return works


def order_works(works: list[Work]) -> list[Work]:
    """Group by (policy, PRM) engines so that an engine's work is contiguous and it can be released early."""
    return sorted(works, key=lambda w: (w.policy_key or "", w.prm_key or "", w.uid))


def binning_cells(cells: Sequence[Cell]) -> list[Cell]:
    """One representative cell per (policy, data set, seed, sampling) among cells binned from samples, with the
    bin restriction lifted (the binning pool covers the whole data set)."""
    reps: dict[str, Cell] = {}
    for cell in cells:
        if not needs_binning(cell):
            continue
        cfg = replace(cell.config, difficulty=replace(cell.config.difficulty, bins=None))
        key = json.dumps([pool_group_key(cfg), cfg.difficulty.method, cfg.difficulty.samples], default=str)
        reps.setdefault(key, replace(cell, config=cfg))
    return list(reps.values())


@dataclass(frozen=True)
class CostEstimate:
    """Upper-bound cost of a cell: generations (Snell's unit) and generated tokens; pool cells share a pool."""

    cell_id: str
    problems: int
    generations: int
    tokens: int
    pool: str | None = None  # pool group the cell draws from


def estimate_cost(cells: Sequence[Cell], problems_for: Callable[[Cell], list[Problem]]) -> list[CostEstimate]:
    """Per cell: the strategy's `budget` upper bound x problems (pool-based cells share a pool of N_max,
    counted once by `pool_cost`)."""
    out = []
    for cell in cells:
        cfg = cell.config
        n_problems = len(problems_for(cell))
        gens, tokens = cell.entry.budget(
            cfg.strategy, cell.n, cfg.policy.max_tokens, cfg.policy.step_max_tokens
        )
        pool = generation_key(cfg) if cell.entry.traits.pool_based else None
        out.append(CostEstimate(cell.id, n_problems, gens * n_problems, tokens * n_problems, pool))
    return out


def pool_cost(estimates: Sequence[CostEstimate]) -> tuple[int, int]:
    """(generations, tokens) actually spent on sampling cells: the largest cell per shared generation."""
    best: dict[str, CostEstimate] = {}
    for e in estimates:
        if e.pool is not None and (e.pool not in best or e.generations > best[e.pool].generations):
            best[e.pool] = e
    return sum(e.generations for e in best.values()), sum(e.tokens for e in best.values())
