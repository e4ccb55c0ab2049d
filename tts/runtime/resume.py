"""What a rerun reuses: finished cells still valid, and what it says about the ones it does not reuse.

Why a module of its own: the resume rules (pool versions, content-addressed data, cells of another grid) are
read by the driver once per run and tested on their own; the driver only acts on them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tts import identity
from tts.grid import Grid, resolved

log = logging.getLogger(__name__)


def stale_cells(finished: dict[str, Any], pools: dict[str, Any], ours: set[str]) -> set[str]:
    """Finished pool cells derived from another version of their pool than the manifest's current one (or
    whose pool is gone: it is rebuilt): recomputed, so the folder never mixes two versions of one pool."""
    stale = set()
    for eid, e in finished.items():
        pool_id = e.meta.get("pool_id")
        if e.status != "ok" or eid not in ours or not pool_id:
            continue
        current = pools.get(pool_id)
        recorded = e.meta.get("pool_sha256")
        if current is None or (recorded and recorded != current.sha256):
            now = f"now {current.sha256[:12]}" if current else "which is missing or corrupt: rebuilding it"
            log.warning(
                "cell %s was derived from pool %s version %s (%s): recomputing it from the current pool",
                eid,
                pool_id,
                (recorded or "?")[:12],
                now,
            )
            stale.add(eid)
    return stale


def resume_notes(grid: Grid, root: Path, finished: dict[str, Any], done: set[str]) -> list[str]:
    """What a rerun must say about finished cells it will not reuse. Cells finished before data files entered
    ids by content (results schema 1) cannot be matched to the file as it is now; cells of another grid or of
    an older config match no cell here. Their files stay (tts analyze still reads them): never silent."""
    notes: list[str] = []
    legacy = {
        identity.stable_hash(e.config)
        for e in finished.values()
        if e.status == "ok" and "content" not in (e.config.get("dataset") or {})
    }
    stale = 0
    for cell in grid.cells:
        fields = identity.cell_fields(resolved(cell.config))
        if cell.id in done or "content" not in fields["dataset"]:
            continue
        fields["dataset"].pop("content")
        stale += identity.stable_hash(fields) in legacy
    if stale:
        notes.append(
            f"note: {stale} cells of {root} were computed from a local data file before data sets "
            "were content-addressed (results schema 1): their files stay and `tts analyze` reads them, "
            "but this run recomputes them under content-addressed ids"
        )
    ours = {c.id for c in grid.cells}
    other = sum(1 for eid, e in finished.items() if e.status == "ok" and eid not in ours)
    todo = sum(1 for c in grid.cells if c.id not in done)
    if other and todo:
        notes.append(
            f"note: {other} finished cells of {root} match no cell of this grid (another grid, or "
            "an older config or release whose fields differ, e.g. a strategy option added since): they stay and "
            f"`tts analyze` reads them; this run computes the grid's {todo} unfinished cells"
        )
    return notes
