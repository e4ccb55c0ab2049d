"""Rebuild a sweep folder's manifest.jsonl from its result files (`tts repair RESULTS_DIR`).

Why: the manifest is what makes a rerun skip finished cells; a sweep folder whose manifest was deleted (or never
copied along with the files) would otherwise be recomputed from scratch. Every file `SweepStore.write` produces
carries its own manifest entry (less sha256 and file) in its Parquet schema metadata (`tts.store.MANIFEST_KEY`)
and page checksums, so the entry is read back, the sha256 and row count recomputed from the bytes as they are,
and the file name taken from where the file lies. Files written before that (no metadata) are "legacy": kind and
id come from the path and the rows' `cell_id` / `pool_id` / `status` columns; they have no config or meta.
Files that do not parse (truncated, bit-flipped pages, bad metadata) are left out and reported: a rerun
recomputes their cells. Entries are ordered by `written_at` (file mtime for legacy files), so where several
versions of one pool are on disk the newest is the current one. The new manifest replaces the old one atomically;
the old one, if any, is kept as manifest.jsonl.bak.

    report = SweepStore("results/smoke").repair()   # RepairReport(restored=29, unreadable=[], legacy=0, ...)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tts.store import MANIFEST, MANIFEST_KEY, ManifestEntry, SweepStore, _atomic_write


@dataclass(frozen=True)
class RepairReport:
    """What `repair` did to one sweep folder."""

    root: str
    restored: int  # manifest lines written (one per readable result file)
    legacy: int  # of those, files without embedded metadata (entry derived from path and rows)
    unreadable: list[str] = field(default_factory=list)  # files left out, "path: why"
    backup: str | None = None  # where the previous manifest went

    def line(self) -> str:
        text = f"{self.root}: restored {self.restored} manifest entries ({self.legacy} legacy files without metadata"
        text += ": kind/id/status derived from path and rows)" if self.legacy else ")"
        if self.unreadable:
            text += f"; {len(self.unreadable)} unreadable file(s) left out, a rerun recomputes them: "
            text += "; ".join(self.unreadable)
        if self.backup:
            text += f"; previous manifest kept as {self.backup}"
        return text


def _kind(rel: Path) -> str:
    return {"cells": "cell", "samples": "pool"}.get(rel.parts[0], "difficulty")


def _legacy(kind: str, path: Path, table: pa.Table) -> dict[str, Any]:
    """An entry for a file without metadata: kind and id from the path and the id / status columns."""

    def column(name: str) -> list[Any]:
        return (
            sorted({v for v in table.column(name).to_pylist() if v is not None})
            if name in table.column_names
            else []
        )

    entry_id, status, meta = path.stem, "ok", {"repaired": "legacy file without metadata"}
    if kind == "cell":
        ids, statuses = column("cell_id"), column("status")
        entry_id = ids[0] if len(ids) == 1 else path.stem
        status = "failed" if "failed" in statuses else "ok"
        pools = column("pool_id")
        if len(pools) == 1:
            meta["pool_id"] = pools[0]
    elif kind == "pool":
        ids = column("pool_id")
        entry_id = ids[0] if len(ids) == 1 else path.stem
    else:
        entry_id = "difficulty"
    return {"kind": kind, "id": entry_id, "status": status, "meta": meta, "written_at": path.stat().st_mtime}


def _entry(store: SweepStore, path: Path) -> tuple[ManifestEntry, bool]:
    """(the file's manifest entry, whether it is legacy); raises ValueError / pyarrow errors when unreadable."""
    data = path.read_bytes()
    if not data:
        raise ValueError("zero bytes")
    table = pq.read_table(pa.BufferReader(data), page_checksum_verification=True)
    rel = path.relative_to(store.root)
    raw = (table.schema.metadata or {}).get(MANIFEST_KEY)
    described = json.loads(raw) if raw is not None else _legacy(_kind(rel), path, table)
    if not isinstance(described, dict) or described.get("kind") not in ("cell", "pool", "difficulty"):
        raise ValueError(f"metadata {MANIFEST_KEY.decode()} is not a manifest entry")
    known = {f for f in ManifestEntry.__dataclass_fields__ if f not in ("file", "sha256", "rows")}
    entry = ManifestEntry(
        **{k: v for k, v in described.items() if k in known},
        file=str(rel),
        rows=table.num_rows,
        sha256=hashlib.sha256(data).hexdigest(),
    )
    return entry, raw is None


def repair(store: SweepStore) -> RepairReport:
    """Rebuild `store`'s manifest.jsonl from cells/*.parquet, samples/*.parquet and difficulty.parquet."""
    from filelock import FileLock, Timeout

    entries: list[ManifestEntry] = []
    unreadable: list[str] = []
    legacy = 0
    lock = FileLock(str(store.root / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout as exc:
        raise RuntimeError(
            f"{store.root}: a `tts sweep` is writing this sweep; repair it once it has finished"
        ) from exc
    try:
        for path in store.result_files():
            try:
                entry, old = _entry(store, path)
            except (pa.ArrowException, OSError, ValueError, TypeError) as exc:
                unreadable.append(
                    f"{path.relative_to(store.root)}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                )
                continue
            entries.append(entry)
            legacy += old
        entries.sort(key=lambda e: (e.written_at, e.file))
        text = "".join(json.dumps(asdict(e), sort_keys=True, default=str) + "\n" for e in entries)
        backup = None
        if store.manifest_path.is_file():
            backup_path = store.root / f"{MANIFEST}.bak"
            _atomic_write(backup_path, store.manifest_path.read_bytes())
            backup = str(backup_path)
        _atomic_write(store.manifest_path, text.encode())
    finally:
        lock.release()
    return RepairReport(str(store.root), len(entries), legacy, unreadable, backup)


def sweep_folders(results_dir: str | Path) -> list[Path]:
    """Folders to repair: `results_dir` itself if it holds cells/ or samples/, else its subfolders that do."""
    root = Path(results_dir)

    def is_sweep(p: Path) -> bool:
        return (p / "cells").is_dir() or (p / "samples").is_dir() or (p / MANIFEST).is_file()

    if is_sweep(root):
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and is_sweep(p)) if root.is_dir() else []
