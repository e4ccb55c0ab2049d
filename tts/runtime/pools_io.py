"""`tts pools export DIR --out FILE` and `tts pools import FILE --out DIR`: sample pools in and out of tts-sweep.

Why: verifier research wants the candidates (score them with a new verifier elsewhere), and rollouts made
elsewhere (search-and-learn's published best-of-N completions, Large Language Monkeys' samples) should run
through this project's pool estimators and analysis. The exchange format is one Parquet file that Hugging Face
`datasets` loads as is (`load_dataset("parquet", data_files=FILE)`), ONE ROW PER (pool, problem):

    pool_id, problem_id, dataset, level, prompt (the question), reference,
    completions, answers, correct, step_scores (list per completion), scores, finish_reasons, tokens_out,
    grade_status, extraction, prm_tokens (lists, one entry per sample, in sample order),
    prompt_tokens, cached_prompt_tokens, policy, prm, seed, seeding,
    config (JSON: the resolved config of a cell of the pool), overrides (each of its cells' recorded overrides),
    meta (JSON: the pool's manifest meta: N_max, parameter counts), source (JSON: sweep folder, pool sha256).

Import reads that layout, or search-and-learn's (columns `problem`, `answer`, `completions`, `scores`: per-step
scores per completion, `pred_*`, optional `unique_id`, `level`, `completion_tokens`). Either way the samples are
written as stored pools of a new results folder (their manifest meta says where they came from: `imported_from`),
and the pool cells are computed from them by the ordinary driver, which finds a stored pool for every cell and so
starts no engine: ours are the exported cells rebuilt from their overrides (the analysis of the imported folder
equals the original's); search-and-learn's become the cells of every pool-based strategy (best-of-N, weighted
best-of-N, majority vote, ...) at N = 1, 2, 4, ..., N_max over its problems (dataset=local on the problems written beside them, prm kind `stored`, the
completions graded by this project's rules), so their pool estimators and tables come out of `tts analyze`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tts.grid import Cell, Grid, cell_of
from tts.runtime.plan import Problems, pool_works
from tts.store import SweepStore

LIST_COLUMNS = {  # export column -> sample row column
    "completions": "text",
    "answers": "answer",
    "correct": "correct",
    "step_scores": "step_scores",
    "scores": "score",
    "finish_reasons": "finish_reason",
    "tokens_out": "tokens_out",
    "grade_status": "grade_status",
    "extraction": "extraction",
    "prm_tokens": "prm_tokens",
    "no_answer": "no_answer",
    "fallback_extraction": "fallback_extraction",
    "truncated": "truncated",
}


# ------------------------------------------------------------------------------------------------- export
def export_pools(directory: str | Path, out: str | Path) -> int:
    """Write every stored pool of a sweep folder to `out` (Parquet, one row per pool and problem); the rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory = Path(directory)
    store = SweepStore(directory)
    cells, _ = store.verified("cell")
    pools, _ = store.verified("pool")
    overrides: dict[str, list[list[str]]] = {}
    built: dict[str, Cell] = {}
    for _cid, entry in sorted(cells.items()):
        if entry.status != "ok":
            continue
        pid = (store.read(entry).column("pool_id").to_pylist() or [None])[0]
        if pid in pools:
            recorded = list(entry.meta.get("overrides") or [])
            overrides.setdefault(pid, []).append(recorded)
            built.setdefault(pid, cell_of(recorded)[0])
    problems = Problems()
    problems.load(list(built.values()))
    rows = []
    for pid, entry in sorted(pools.items()):
        samples = store.read(entry).to_pylist()
        by_problem: dict[str, list[dict[str, Any]]] = {}
        for r in samples:
            by_problem.setdefault(r["problem_id"], []).append(r)
        cell = built.get(pid)
        questions = {p.id: p for p in problems.for_cell(cell)} if cell is not None else {}
        config = _resolved(cell) if cell is not None else {}
        for problem_id, rs in by_problem.items():
            rs.sort(key=lambda r: r["sample_idx"])
            problem = questions.get(problem_id)
            row = {
                "pool_id": pid,
                "problem_id": problem_id,
                "dataset": rs[0]["dataset"],
                "level": rs[0]["level"],
                "prompt": problem.question if problem else None,
                "reference": problem.answer if problem else None,
                **{col: [r.get(src) for r in rs] for col, src in LIST_COLUMNS.items()},
                "prompt_tokens": rs[0]["prompt_tokens"],
                "cached_prompt_tokens": rs[0].get("cached_prompt_tokens"),
                "policy": rs[0]["policy"],
                "prm": rs[0]["prm"],
                "seed": rs[0]["seed"],
                "seeding": rs[0].get("seeding"),
                "config": json.dumps(config, sort_keys=True, default=str),
                "overrides": overrides.get(pid, []),
                "meta": json.dumps(entry.meta, sort_keys=True, default=str),
                "source": json.dumps({"sweep": str(directory), "pool_sha256": entry.sha256}),
            }
            rows.append(row)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), out)
    return len(rows)


def _resolved(cell: Cell) -> dict[str, Any]:
    from tts.grid import resolved

    return resolved(cell.config)


# ------------------------------------------------------------------------------------------------- import
def import_pools(
    file: str | Path, out: str | Path, *, policy: str = "imported", live: bool | None = False
) -> Any:
    """Import a pools file (this project's export, or search-and-learn's layout) into the sweep folder `out`;
    returns the driver's SweepSummary for the cells computed from the imported pools."""
    import pyarrow.parquet as pq

    from tts.runtime.driver import run_sweep

    file, out = Path(file), Path(out)
    table = pq.read_table(file)
    rows = table.to_pylist()
    if "pool_id" in table.column_names:
        cells = _import_ours(rows, file, out)
    elif {"completions", "scores", "problem", "answer"} <= set(table.column_names):
        cells = _import_search_and_learn(rows, file, out, policy)
    else:
        raise ValueError(
            f"pools import: {file} has neither this project's columns (pool_id, completions, ...) nor "
            "search-and-learn's (problem, answer, completions, scores)"
        )
    _, base = cell_of(list(cells[0].overrides))
    first = cells[0].config
    grid = Grid(
        name=out.name, cells=tuple(cells), base=base, cluster=first.cluster, results_dir=str(out.parent)
    )
    return run_sweep(grid, live=live)


def _sample_rows(row: dict[str, Any], pool_id: str, sweep: str) -> list[dict[str, Any]]:
    n = len(row["completions"])
    return [
        {
            "pool_id": pool_id,
            "sweep": sweep,
            "policy": row["policy"],
            "prm": row["prm"],
            "problem_id": row["problem_id"],
            "dataset": row["dataset"],
            "level": row["level"],
            "seed": row["seed"],
            "seeding": row.get("seeding"),
            "sample_idx": j,
            **{src: row[col][j] for col, src in LIST_COLUMNS.items() if row.get(col) is not None},
            "prompt_tokens": row["prompt_tokens"],
            "cached_prompt_tokens": row.get("cached_prompt_tokens"),
        }
        for j in range(n)
    ]


def _import_ours(rows: list[dict[str, Any]], file: Path, out: Path) -> list[Cell]:
    store = SweepStore(out)
    by_pool: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_pool.setdefault(r["pool_id"], []).append(r)
    cells: dict[str, Cell] = {}
    for pid, rs in by_pool.items():
        samples = [s for r in rs for s in _sample_rows(r, pid, out.name)]
        meta = {**json.loads(rs[0]["meta"] or "{}"), "imported_from": str(file), "source": rs[0]["source"]}
        store.write_rows("pool", pid, samples, meta=meta)
        for recorded in rs[0]["overrides"] or []:
            cell, _ = cell_of(list(recorded))
            cells.setdefault(cell.id, cell)
    if not cells:
        raise ValueError(f"pools import: {file} records no cell overrides; nothing to compute from its pools")
    return list(cells.values())


def _import_search_and_learn(rows: list[dict[str, Any]], file: Path, out: Path, policy: str) -> list[Cell]:
    from tts.config import ConfigError
    from tts.grading import grade_many
    from tts.grading.rules import DEFAULT_RULES
    from tts.strategies import STRATEGIES

    out.mkdir(parents=True, exist_ok=True)
    n_max = min(len(r["completions"]) for r in rows)
    data = out / "problems.jsonl"
    with open(data, "w") as fh:
        for i, r in enumerate(rows):
            record = {
                "id": str(r.get("unique_id") or f"row-{i:05d}"),
                "problem": r["problem"],
                "answer": r["answer"],
            }
            if r.get("level") is not None:
                record["level"] = int(str(r["level"]).removeprefix("Level ").strip() or 0)
            fh.write(json.dumps(record) + "\n")
    ns = [1 << k for k in range(n_max.bit_length()) if (1 << k) <= n_max]
    ns += [n_max] if n_max not in ns else []
    base = [
        "dataset=local",
        f"dataset.path={data}",
        f"policy.name={policy}",
        f"policy.model=imported/{policy}",
        "policy.params=1",
        "prm=none",
        "prm.kind=stored",
        "prm.name=search-and-learn",
        "prm.aggregation=last",
        f"sweep.name={out.name}",
    ]
    cells = []
    for (
        name,
        entry,
    ) in STRATEGIES.items():  # every pool-based strategy that runs on these pools with its defaults
        if not entry.traits.pool_based:
            continue
        for n in ns:
            try:
                cells.append(cell_of([*base, f"strategy={name}", f"n={n}"])[0])
            except ConfigError:
                continue
    problems = Problems()
    problems.load(cells)
    by_question = {p.question: p for p in problems.for_cell(cells[0])}
    works = pool_works(cells, {c.id for c in cells}, problems.for_cell, lambda _: None, sweep=out.name)
    (work,) = works  # one pool: same policy, data set, sampling, seed
    pool_id = work.job.uid
    flat = [(by_question[r["problem"]], r, j) for r in rows for j in range(n_max)]
    texts = [r["completions"][j] for _, r, j in flat]
    grades = grade_many([p for p, _, _ in flat], texts, ["eos"] * len(flat), rules=DEFAULT_RULES)
    samples = []
    for (problem, r, j), text, g in zip(flat, texts, grades, strict=True):
        steps = [float(x) for x in (r["scores"][j] or [])]
        tokens = r.get("completion_tokens")
        samples.append(
            {
                "pool_id": pool_id,
                "sweep": out.name,
                "policy": policy,
                "prm": "search-and-learn",
                "problem_id": problem.id,
                "dataset": problem.dataset,
                "level": problem.level,
                "seed": 0,
                "seeding": None,  # sampled elsewhere: not reproducible here
                "sample_idx": j,
                "text": text,
                "answer": g.answer,
                "correct": bool(g.correct),
                "grade_status": g.status,
                "no_answer": g.answer is None,
                "fallback_extraction": bool(g.fallback_extraction),
                "extraction": g.extraction,
                "truncated": False,
                "finish_reason": "eos",
                "tokens_out": int(tokens[j] if isinstance(tokens, list) else 0),
                "prompt_tokens": 0,
                "cached_prompt_tokens": 0,
                "step_scores": steps,
                "score": steps[-1] if steps else 0.0,
                "prm_tokens": 0,
            }
        )
    meta = {
        "n_max": n_max,
        "imported_from": str(file),
        "layout": "search-and-learn",
        "cells": [c.id for c in cells],
    }
    SweepStore(out).write_rows("pool", pool_id, samples, meta=meta)
    return cells


# ------------------------------------------------------------------------------------------------- cli
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="tts pools", description="Sample pools in and out (HF datasets Parquet)."
    )
    sub = p.add_subparsers(dest="action", required=True)
    e = sub.add_parser("export", help="write a sweep folder's pools to one Parquet file")
    e.add_argument("results_dir")
    e.add_argument("--out", required=True)
    i = sub.add_parser("import", help="import a pools file (ours or search-and-learn's) into a sweep folder")
    i.add_argument("file")
    i.add_argument("--out", required=True, help="the sweep folder to create, results/<name>")
    i.add_argument("--policy", default="imported", help="the policy name for search-and-learn files")
    args = p.parse_args(argv)
    if args.action == "export":
        n = export_pools(args.results_dir, args.out)
        print(f"{n} pool rows -> {args.out}")
        return 0
    summary = import_pools(args.file, args.out, policy=args.policy)
    return 1 if summary.failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
