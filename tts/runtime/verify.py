"""`tts verify DIR`: recompute finished cells in a scratch folder and compare them with the stored ones.

Why: a platform whose cells are "never recomputed" must be able to recompute one and get the same answer. Every
request carries its own seed (tts.strategies.base.request_seed), so a cell's samples depend on its config alone,
not on what else its engine generated; this command checks that claim on a real results folder, cheaply enough
to run after any sweep.

How: K finished cells are picked (named with --cells, or a seeded random choice of K); a pool cell brings every
cell of its pool along (the pool's size N_max and problem set are decided over all of them, so recomputing one
alone would build another pool). Each cell is rebuilt from the overrides its manifest entry recorded and must
have the same id under this version of tts (else it is reported, not compared). They run as one sweep (same
engines, same driver) in a scratch folder; then, per cell, every stored row is compared with its recomputed row
(by problem) and, for pool cells, every stored sample with its recomputed sample (by problem and index).

Compared: what a cell computed (answers, grades, candidates, scores, generations, prompt and generated tokens).
Not compared: times, provenance (git sha, versions) and what depends on the engine's prefix cache (cached prompt
tokens, the PRM's computed tokens, FLOPs): those change with what ran before on the engine, not with the samples.
Scores are compared to 1e-6 (a PRM's float32 outputs), everything else exactly.
"""

from __future__ import annotations

import math
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tts.grid import Cell, Grid, cell_of
from tts.store import SweepStore

# Columns compared: cells (keyed by problem_id) and pool samples (keyed by problem_id, sample_idx).
CELL_COMPARED = (
    "answer",
    "correct",
    "expected_correct",
    "no_answer",
    "fallback_extraction",
    "truncated",
    "generations",
    "tokens_in",
    "tokens_out",
    "candidate_answers",
    "candidate_scores",
    "candidate_correct",
    "candidate_finish_reasons",
    "status",
)
SAMPLE_COMPARED = (
    "text",
    "answer",
    "correct",
    "finish_reason",
    "tokens_out",
    "prompt_tokens",
    "step_scores",
    "score",
)
TOLERANCE = 1e-6  # for float values (PRM scores are float32)
SHOWN = 5  # differences printed per cell


@dataclass
class CellCheck:
    """One recomputed cell against its stored rows."""

    cell_id: str
    label: str
    rows: int = 0
    samples: int = 0
    differences: list[str] = field(default_factory=list)
    count: int = 0  # differences found (only the first SHOWN are kept as text)

    def differ(self, what: str) -> None:
        self.count += 1
        if len(self.differences) < SHOWN:
            self.differences.append(what)

    def line(self) -> str:
        head = f"cell {self.cell_id} ({self.label}): {self.rows} rows"
        head += f", {self.samples} pool samples" if self.samples else ""
        if not self.count:
            return head + ": identical"
        return head + f": {self.count} difference(s)\n" + "\n".join(f"    {d}" for d in self.differences)


@dataclass
class VerifyReport:
    checks: list[CellCheck]
    skipped: list[str]  # cells that could not be recomputed, with why
    scratch: str

    @property
    def differences(self) -> int:
        return sum(c.count for c in self.checks) + len(self.skipped)


def _same(a: Any, b: Any) -> bool:
    """Equal, floats to TOLERANCE, lists element by element, nulls (None / NaN) equal to each other."""
    if hasattr(a, "tolist"):
        a = a.tolist()
    if hasattr(b, "tolist"):
        b = b.tolist()
    if isinstance(a, list | tuple) or isinstance(b, list | tuple):
        if not (isinstance(a, list | tuple) and isinstance(b, list | tuple)) or len(a) != len(b):
            return False
        return all(_same(x, y) for x, y in zip(a, b, strict=True))
    a_null = a is None or (isinstance(a, float) and math.isnan(a))
    b_null = b is None or (isinstance(b, float) and math.isnan(b))
    if a_null or b_null:
        return a_null and b_null
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and abs(a - b) <= TOLERANCE
    return a == b


def _short(v: Any) -> str:
    text = repr(v.tolist() if hasattr(v, "tolist") else v)
    return text if len(text) <= 80 else text[:77] + "..."


def _compare(
    check: CellCheck, old: Any, new: Any, keys: Sequence[str], columns: Sequence[str], what: str
) -> None:
    """Compare two frames row by row on `keys`; every missing, extra or differing value is a difference."""
    old_rows = {tuple(r[k] for k in keys): r for r in old.to_dict("records")}
    new_rows = {tuple(r[k] for k in keys): r for r in new.to_dict("records")}
    for key in sorted(old_rows.keys() | new_rows.keys(), key=str):
        name = f"{what} {'/'.join(str(k) for k in key)}"
        if key not in new_rows:
            check.differ(f"{name}: stored, not recomputed")
            continue
        if key not in old_rows:
            check.differ(f"{name}: recomputed, not stored")
            continue
        for col in columns:
            a, b = old_rows[key].get(col), new_rows[key].get(col)
            if not _same(a, b):
                check.differ(f"{name} {col}: stored {_short(a)} != recomputed {_short(b)}")


def _rebuild(store: SweepStore, cell_ids: Sequence[str], scratch: Path) -> tuple[list[Cell], list[str], Grid]:
    """The cells as this version of tts builds them from their recorded overrides, as one sweep writing to
    `scratch` (the stored sweep's name, its first cell's cluster settings)."""
    entries, _ = store.verified("cell")
    cells: list[Cell] = []
    skipped = []
    base = None
    for cid in cell_ids:
        overrides = list(entries[cid].meta.get("overrides") or [])
        cell, composed = cell_of(overrides)
        base = composed if base is None else base
        if cell.id == cid:
            cells.append(cell)
        else:
            skipped.append(
                f"cell {cid}: its recorded overrides build cell {cell.id} under this version of tts: its config "
                "fields or the identity rule changed since it was written"
            )
    first = cells[0].config if cells else None
    grid = Grid(
        name=store.root.name,
        cells=tuple(cells),
        base=base,
        cluster=first.cluster if first else None,
        results_dir=str(scratch),
    )
    return cells, skipped, grid


def choose_cells(store: SweepStore, names: Sequence[str], k: int, seed: int) -> list[str]:
    """The cells to recompute: the named ones, else K finished ok cells chosen at random with `seed`; a pool
    cell brings every finished cell of its pool."""
    entries, _ = store.verified("cell")
    ok = sorted(cid for cid, e in entries.items() if e.status == "ok")
    if names:
        unknown = [n for n in names if n not in entries]
        if unknown:
            raise ValueError(
                f"--cells: {', '.join(unknown)} not finished in {store.root}; `tts ls {store.root}` lists them"
            )
        chosen = list(names)
    else:
        chosen = random.Random(seed).sample(ok, min(k, len(ok)))
    pools, _ = store.verified("pool")
    out: list[str] = []
    for cid in chosen:
        pool = entries[cid].meta.get("pool_id")
        group = (pools[pool].meta.get("cells") or []) if pool in pools else []
        for c in [cid, *sorted(group)]:
            if c in ok and c not in out:
                out.append(c)
    return out


def verify(
    folder: str | Path,
    *,
    cells: Sequence[str] = (),
    k: int = 2,
    seed: int = 0,
    scratch: str | Path | None = None,
    live: bool | None = False,
    builder: Any = None,
) -> VerifyReport:
    """Recompute cells of a finished sweep folder in `scratch` (a new temporary folder by default) and compare.
    `builder`: how engine actors build engines (None: the real ones; tests pass fakes)."""
    store = SweepStore(folder)
    if not store.manifest_path.is_file():
        raise FileNotFoundError(
            f"{folder}: no {store.manifest_path.name}; point at a sweep folder results/<sweep>"
        )
    ids = choose_cells(store, cells, k, seed)
    if not ids:
        raise ValueError(f"{folder}: no finished cells to verify")
    scratch = Path(scratch) if scratch else Path(tempfile.mkdtemp(prefix="tts-verify-"))
    todo, skipped, grid = _rebuild(store, ids, scratch)
    checks: list[CellCheck] = []
    if todo:
        _run(grid, live, builder)
        new = SweepStore(Path(scratch) / grid.name)
        seen_pools: set[str] = set()
        checks = [_check(store, new, cell, seen_pools) for cell in todo]
    return VerifyReport(checks, skipped, str(scratch))


def _run(grid: Grid, live: bool | None, builder: Any) -> None:
    from tts.runtime.actors import DEFAULT_BUILDER
    from tts.runtime.driver import run_sweep

    summary = run_sweep(grid, live=live, builder=builder or DEFAULT_BUILDER)
    if summary.failed:
        raise RuntimeError(f"{summary.failed} cell(s) failed when recomputed: see {summary.path}")


def _check(old_store: SweepStore, new_store: SweepStore, cell: Cell, seen_pools: set[str]) -> CellCheck:
    """The cell's rows compared; its pool's samples too, once per pool (`seen_pools`)."""
    old_cells, _ = old_store.verified("cell")
    new_cells, _ = new_store.verified("cell")
    axes = old_cells[cell.id].meta.get("axes") or {}
    check = CellCheck(cell.id, " ".join(f"{k}={v}" for k, v in axes.items()) or "no axes")
    old = old_store.read(old_cells[cell.id]).to_pandas()
    new = new_store.read(new_cells[cell.id]).to_pandas()
    check.rows = len(old)
    _compare(check, old, new, ("problem_id",), CELL_COMPARED, "problem")
    pool = old_cells[cell.id].meta.get("pool_id")
    if pool and pool not in seen_pools:
        seen_pools.add(pool)
        old_pools, _ = old_store.verified("pool")
        new_pools, _ = new_store.verified("pool")
        new_pool = new_cells[cell.id].meta.get("pool_id")
        if pool not in old_pools or new_pool not in new_pools:
            check.differ(
                f"pool {pool}: not found (stored: {pool in old_pools}, recomputed: {new_pool in new_pools})"
            )
            return check
        a = old_store.read(old_pools[pool]).to_pandas()
        b = new_store.read(new_pools[new_pool]).to_pandas()
        check.samples = len(a)
        _compare(check, a, b, ("problem_id", "sample_idx"), SAMPLE_COMPARED, "sample")
    return check
