"""Units of work (jobs) and what runs inside them: sample pools, search cells, grading, result rows.

Why: the scheduler moves small picklable jobs to light Ray tasks; the task bodies here are plain functions over
a PolicyEngine and a PRMScorer (actor proxies at run time, fakes in unit tests), so they are tested without Ray.

Two kinds of job:
  PoolJob    every pool-based cell (entry trait `pool_based`) that shares a pool: one `build_pool` of N_max
             samples (or the pool stored by an earlier run), then the entry's `select` + `estimate` per cell
             (with the cell's strategy options as keywords); returns the pool's sample rows and each cell's
             per-problem outcomes. When the estimate carries an expected spend (`Estimate.generations`,
             `.tokens_out`: adaptive stopping), the row's `generations` / `tokens_out` are that expectation.
  SearchJob  any other cell (search, ...): the entry's `run` over all its problems (lockstep is its job).
The driver turns outcomes into full result rows (`cell_rows`: config columns, parameter counts, FLOPs).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tts.data.problem import Problem
from tts.engines.aggregation import aggregate
from tts.grading.rules import DEFAULT_RULES, GradingRules
from tts.strategies.base import Candidate, SamplingSettings, StrategyResult
from tts.strategies.entry import StrategyEntry


@dataclass(frozen=True)
class CellJob:
    """One cell's part of a job: what to select / run and over which problems. `entry` is the strategy's
    registry entry, resolved in the driver (so a strategy registered only there still runs in Ray workers)."""

    cell_id: str
    entry: StrategyEntry
    n: int
    aggregation: str
    problem_ids: tuple[str, ...]
    seed: int = 0
    # pool cells: the strategy's own options, passed to its select / estimate as keywords
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PoolJob:
    uid: str  # the pool id
    cache_key: str  # same policy, problems, sampling, seed and N_max -> one generation, whatever the PRM
    problems: tuple[Problem, ...]
    cells: tuple[CellJob, ...]
    n_max: int
    sampling: SamplingSettings
    seed: int
    score: bool
    meta: dict[str, Any] = field(default_factory=dict)  # policy / prm names for the sample rows
    stored: tuple[dict[str, Any], ...] | None = None  # sample rows of a verified stored pool
    rules: GradingRules = DEFAULT_RULES  # how completions are graded (tts.config.grading_rules)


@dataclass(frozen=True)
class SearchJob:
    uid: str  # the cell id
    cell: CellJob
    problems: tuple[Problem, ...]
    sampling: SamplingSettings
    params: dict[str, Any] = field(default_factory=dict)
    rules: GradingRules = DEFAULT_RULES  # how completions are graded (tts.config.grading_rules)


@dataclass
class JobResult:
    uid: str
    outcomes: dict[str, list[dict[str, Any]]]  # cell id -> one dict per problem
    sample_rows: list[dict[str, Any]] | None = None  # a newly built pool
    tokens_generated: int = 0
    wall_s: float = 0.0


# ------------------------------------------------------------------------------------------ grading
def outcomes(
    pairs: Sequence[tuple[Problem, StrategyResult]],
    sampling: SamplingSettings,
    extras: Sequence[dict[str, Any]],
    candidates: bool = False,
    rules: GradingRules = DEFAULT_RULES,
) -> list[dict[str, Any]]:
    """Grade every StrategyResult of a job in one parallel batch (tts.grading.grade_many): the per-problem
    part of each result row. With `candidates` (cells that have no stored sample pool), every final candidate
    is graded too and stored as list columns, so the analysis can re-select (majority, weighted, argmax)
    without regenerating. Every row is graded under `rules`; a math row's answer and flags are the grader's
    (the answer `correct` was judged on: an answer inside unfinished thinking is none)."""
    from tts.grading import grade_many

    todo = [(p, r.text, "length" if r.truncated else "eos") for p, r in pairs]
    spans = []
    for p, r in pairs:
        start = len(todo)
        if candidates:
            todo += [(p, c.text, c.finish_reason) for c in r.candidates]
        spans.append((start, len(todo)))
    graded = grade_many([t[0] for t in todo], [t[1] for t in todo], [t[2] for t in todo], rules=rules)
    grades = graded[: len(pairs)]
    rows = []
    for (problem, result), g, extra, (lo, hi) in zip(pairs, grades, extras, spans, strict=True):
        if candidates:
            cands = result.candidates
            extra = {
                **extra,
                "candidate_answers": [c.answer for c in cands],
                "candidate_scores": [float(c.score) for c in cands],
                "candidate_correct": [bool(x.correct) for x in graded[lo:hi]],
                "candidate_finish_reasons": [c.finish_reason for c in cands],
            }
        rows.append(
            {
                "problem_id": problem.id,
                "dataset": problem.dataset,
                "level": problem.level,
                "kind": problem.kind,
                "answer": _row_answer(problem, result.answer, g),
                "reference": problem.answer,
                "correct": bool(g.correct),
                "no_answer": bool(g.no_answer),
                "fallback_extraction": _row_fallback(problem, result.fallback_extraction, g),
                "extraction": g.extraction,
                "truncated": bool(result.truncated or g.truncated),
                "grade_status": g.status,
                "generations": result.generations,
                "tokens_in": result.tokens_in,
                "tokens_cached": result.tokens_cached,
                "tokens_out": result.tokens_out,
                "prm_tokens": result.prm_tokens,
                "temperature": sampling.temperature,
                **extra,
            }
        )
    return rows


# ------------------------------------------------------------------------------------------ pools
def sample_rows(job: PoolJob, problems: Sequence[Problem], pools: Sequence[Any]) -> list[dict[str, Any]]:
    """SAMPLE_COLUMNS rows of freshly built pools, every sample graded in one parallel batch."""
    from tts.grading import grade_many

    flat = [
        (problem, pool, j, c)
        for problem, pool in zip(problems, pools, strict=True)
        for j, c in enumerate(pool.candidates)
    ]
    grades = grade_many(
        [f[0] for f in flat], [f[3].text for f in flat], [f[3].finish_reason for f in flat], rules=job.rules
    )
    rows = []
    for (problem, pool, j, c), g in zip(flat, grades, strict=True):
        rows.append(
            {
                "pool_id": job.uid,
                "sweep": job.meta.get("sweep"),
                "policy": job.meta.get("policy"),
                "prm": job.meta.get("prm"),
                "problem_id": problem.id,
                "dataset": problem.dataset,
                "level": problem.level,
                "seed": job.seed,
                "seeding": job.meta.get("seeding"),
                "sample_idx": j,
                "text": c.text,
                "answer": _row_answer(problem, c.answer, g),
                "correct": bool(g.correct),
                "grade_status": g.status,
                "no_answer": _row_answer(problem, c.answer, g) is None,
                "fallback_extraction": _row_fallback(problem, bool(pool.fallback[j]), g),
                "extraction": g.extraction,
                "truncated": c.finish_reason == "length",
                "finish_reason": c.finish_reason,
                "tokens_out": c.tokens_out,
                "prompt_tokens": pool.prompt_tokens,
                "cached_prompt_tokens": pool.cached_prompt_tokens,
                "step_scores": list(c.step_scores),
                "score": c.score,
                "prm_tokens": int(pool.prm_tokens[j]),
            }
        )
    return rows


def pools_from_rows(rows: Sequence[dict[str, Any]], sampling: SamplingSettings, seed: int) -> dict[str, Any]:
    """Rebuild ProblemPools (problem id -> pool) from stored sample rows."""
    from tts.strategies.pool import ProblemPool
    from tts.strategies.steps import split_steps

    out = {}
    for pid, rs in _group(rows).items():
        rs.sort(key=lambda r: r["sample_idx"])
        candidates = tuple(
            Candidate(
                text=r["text"],
                steps=split_steps(r["text"], sampling.step_delimiter),
                step_scores=tuple(r["step_scores"] or ()),
                score=aggregate(tuple(r["step_scores"] or ()), sampling.aggregation),
                answer=r["answer"],
                finish_reason=r["finish_reason"],
                tokens_out=int(r["tokens_out"]),
            )
            for r in rs
        )
        out[pid] = ProblemPool(
            problem_id=pid,
            candidates=candidates,
            prompt_tokens=int(rs[0]["prompt_tokens"]),
            cached_prompt_tokens=int(rs[0].get("cached_prompt_tokens") or 0),
            prm_tokens=tuple(int(r["prm_tokens"] or 0) for r in rs),
            fallback=tuple(bool(r["fallback_extraction"]) for r in rs),
            seed=seed,
            greedy=sampling.temperature == 0,
        )
    return out


def run_pool_job(job: PoolJob, policy: Any, prm: Any) -> JobResult:
    """Build (or reload) the pool, then select + grade + estimate for every cell sharing it."""
    from tts.strategies.pool import build_pool

    started = time.monotonic()
    new_rows = None
    generated = 0
    endpoint: dict[str, Any] = {"retries": 0, "endpoint_ignored": None}  # a stored pool made no request
    if job.stored is not None:
        pools = pools_from_rows(job.stored, job.sampling, job.seed)
        correct = {
            pid: [bool(r["correct"]) for r in sorted(rs, key=lambda r: r["sample_idx"])]
            for pid, rs in _group(job.stored).items()
        }
    else:
        tokens_before = getattr(policy, "tokens_out", 0)
        retries_before = _retries(policy, prm)
        built = build_pool(
            job.problems, policy, prm, n_max=job.n_max, sampling=job.sampling, seed=job.seed, score=job.score
        )
        generated = getattr(policy, "tokens_out", 0) - tokens_before
        endpoint["retries"] = _retries(policy, prm) - retries_before
        endpoint["endpoint_ignored"] = _ignored(policy, prm)
        new_rows = sample_rows(job, job.problems, built)
        # select from the pool as its rows store it (the grader's answers), exactly as a later run reloads it
        pools = pools_from_rows(new_rows, job.sampling, job.seed)
        correct = {pid: [bool(r["correct"]) for r in rs] for pid, rs in _group(new_rows).items()}
    build_s = time.monotonic() - started
    by_id = {p.id: p for p in job.problems}
    pairs, extras, owners = [], [], []
    for cell in job.cells:
        for pid in cell.problem_ids:
            pool = pools[pid]
            result = cell.entry.select(pool, cell.n, cell.aggregation, **cell.params)
            est = cell.entry.estimate(
                pool, cell.n, cell.aggregation, correct[pid], seed=cell.seed, **cell.params
            )
            extra: dict[str, Any] = {"expected_correct": float(est.value), **endpoint}
            if est.generations is not None:  # the spend depends on the draw: write its expectation
                extra["generations"] = float(est.generations)
            if est.tokens_out is not None:
                extra["tokens_out"] = round(est.tokens_out)
            spent = extra.get("generations", cell.n)
            extra["wall_time_s"] = build_s * spent / job.n_max / max(len(cell.problem_ids), 1)
            pairs.append((by_id[pid], result))
            extras.append(extra)
            owners.append(cell.cell_id)
    by_cell: dict[str, list[dict[str, Any]]] = {cell.cell_id: [] for cell in job.cells}
    for owner, row in zip(owners, outcomes(pairs, job.sampling, extras, rules=job.rules), strict=True):
        by_cell[owner].append(row)
    return JobResult(job.uid, by_cell, new_rows, generated, time.monotonic() - started)


def _row_answer(problem: Problem, chosen: str | None, g: Any) -> str | None:
    """A row's answer: math, the grader's (what `correct` judged); code, the strategy's execution signature
    when it has one (majority vote groups programs by it), else the grader's program."""
    if problem.kind != "code":
        return g.answer
    return chosen if chosen is not None else g.answer


def _row_fallback(problem: Problem, chosen: bool, g: Any) -> bool:
    """A row's fallback flag: math, the grader's (last-number extraction); code, the strategy's or the grader's."""
    return bool(g.fallback_extraction) if problem.kind != "code" else bool(chosen or g.fallback_extraction)


def _retries(policy: Any, prm: Any) -> int:
    """Endpoint retries the proxies have counted so far (in-process engines and fakes: 0)."""
    return int(getattr(policy, "retries", 0) or 0) + int(getattr(prm, "retries", 0) or 0)


def _ignored(policy: Any, prm: Any) -> str | None:
    """What the endpoints behind the proxies did not honour, comma-joined (None: nothing, or no endpoint)."""
    names = set(getattr(policy, "ignored", ()) or ()) | set(getattr(prm, "ignored", ()) or ())
    return ",".join(sorted(names)) or None


def _group(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["problem_id"], []).append(r)
    return out


# ------------------------------------------------------------------------------------------ search
def run_search_job(job: SearchJob, policy: Any, prm: Any) -> JobResult:
    """Run a search strategy over all the cell's problems (lockstep batching is the strategy's job)."""
    started = time.monotonic()
    tokens_before = getattr(policy, "tokens_out", 0)
    retries_before = _retries(policy, prm)
    results = job.cell.entry.run(
        list(job.problems), policy, prm, n=job.cell.n, sampling=job.sampling, seed=job.cell.seed, **job.params
    )
    if len(results) != len(job.problems):
        raise RuntimeError(
            f"{job.cell.entry.name} returned {len(results)} results for {len(job.problems)} problems"
        )
    wall = time.monotonic() - started
    per = wall / max(len(job.problems), 1)
    pairs = list(zip(job.problems, results, strict=True))
    rows = outcomes(
        pairs,
        job.sampling,
        [
            {
                "expected_correct": None,
                "wall_time_s": per,
                "retries": _retries(policy, prm) - retries_before,
                "endpoint_ignored": _ignored(policy, prm),
            }
        ]
        * len(pairs),
        candidates=True,
        rules=job.rules,
    )
    traced = set(sorted(p.id for p in job.problems)[: trace_limit()])
    for row, (problem, result) in zip(rows, pairs, strict=True):
        row["trace"] = trace_json(result) if problem.id in traced else None
    generated = getattr(policy, "tokens_out", 0) - tokens_before
    return JobResult(job.uid, {job.cell.cell_id: rows}, None, generated, wall)


TRACE_ENV = "TTS_TRACE_PROBLEMS"  # problems per search cell whose trace is stored: an int, or "all"
TRACE_DEFAULT = 20
TRACE_TEXT_CHARS = 600  # a stored step text is cut to this many characters (the bound on a trace's size)


def trace_limit() -> int:
    """How many problems of a search cell get a `trace` (TTS_TRACE_PROBLEMS; default 20, "all": every one).
    Not part of any id: the trace records what a search did, never what it computes."""
    import os

    raw = os.environ.get(TRACE_ENV, str(TRACE_DEFAULT)).strip().lower()
    if raw == "all":
        return 1 << 62
    try:
        return max(int(raw), 0)
    except ValueError:
        raise ValueError(
            f"{TRACE_ENV}={raw!r}: not a number of problems; set an integer >= 0 or 'all'"
        ) from None


def trace_json(result: StrategyResult) -> str:
    """The `trace` column (results schema 6): the strategy's `extra` (a tree search's tree included) and every
    final candidate's steps and step scores, as compact JSON, texts cut to TRACE_TEXT_CHARS."""
    import json

    def cut(text: str) -> str:
        return text if len(text) <= TRACE_TEXT_CHARS else text[:TRACE_TEXT_CHARS] + "…"

    extra = dict(result.extra)
    tree = extra.get("tree")
    if isinstance(tree, dict) and "text" in tree:
        r5 = [None if x is None else round(float(x), 5) for x in tree.get("step_score", [])]
        ranks = [round(float(x), 5) for x in tree.get("rank", [])]
        extra["tree"] = {**tree, "text": [cut(t) for t in tree["text"]], "step_score": r5, "rank": ranks}
    cands = [
        {"steps": [cut(t) for t in c.steps], "step_scores": [round(float(x), 5) for x in c.step_scores]}
        for c in result.candidates
    ]
    return json.dumps({"extra": extra, "candidates": cands}, separators=(",", ":"), default=str)


def run_job(job: PoolJob | SearchJob, policy: Any, prm: Any) -> JobResult:
    return run_pool_job(job, policy, prm) if isinstance(job, PoolJob) else run_search_job(job, policy, prm)


# ------------------------------------------------------------------------------------------ result rows
def cell_rows(
    cell: Any,
    outcomes: Sequence[dict[str, Any]],
    *,
    sweep: str,
    pool_id: str | None,
    policy_params: int,
    pool_sha256: str | None = None,
    prm_params: int,
    policy_model: str | None = None,
    status: str = "ok",
    error: str | None = None,
    seeding: str | None = None,
) -> list[dict[str, Any]]:
    """Full CELL_COLUMNS rows (plus "config.*" columns) for one cell from its per-problem outcomes. `seeding`:
    how its samples were seeded (tts.engines.vllm_common.seeding_mode; None: engine seed only, not reproducible)."""
    from tts import __version__
    from tts.compute import policy_flops, prm_flops
    from tts.store import config_columns, git_sha

    cfg = cell.config
    s = cfg.strategy
    common = {
        "sweep": sweep,
        "cell_id": cell.id,
        "config_id": cell.config_id,
        "pool_id": pool_id,
        "pool_sha256": pool_sha256,
        "policy": cfg.policy.name,
        "policy_model": policy_model or cfg.policy.model,
        "policy_params": policy_params,
        "prm": cfg.prm.name,
        "prm_kind": cfg.prm.kind,
        "prm_model": cfg.prm.model,
        "prm_params": prm_params,
        "aggregation": cfg.prm.aggregation,
        "strategy": s.name,
        "n": cfg.n,
        "seed": cfg.seed,
        "seeding": seeding,
        "status": status,
        "error": error,
        "git_sha": git_sha(),
        "tts_version": __version__,
    }
    config = config_columns(cfg)
    rows = []
    for o in outcomes:
        row = {**common, **o}
        if status == "ok":
            fp = policy_flops(policy_params, o["tokens_in"], o["tokens_cached"], o["tokens_out"])
            fr = prm_flops(prm_params, o["prm_tokens"])
            row.update(flops_policy=fp, flops_prm=fr, flops=fp + fr)
        row.update(config)
        rows.append(row)
    return rows


def failed_outcomes(problems: Sequence[Problem]) -> list[dict[str, Any]]:
    """Per-problem placeholders for a failed cell (one row with no problem when none could be loaded)."""
    if not problems:
        return [{"problem_id": None}]
    return [
        {"problem_id": p.id, "dataset": p.dataset, "level": p.level, "kind": p.kind, "reference": p.answer}
        for p in problems
    ]
