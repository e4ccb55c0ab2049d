"""Problems from any local JSONL or Parquet file, by column mapping; the row mapping the hub loaders share.

Why one mapping for every source: MATH-500, GSM8K and AIME rows (from the hub or from a local copy with the hub's
field names) and a user's own file all become `Problem`s the same way, so a data set read from disk and the same
one read from the hub give identical problems. Record fields map to source columns via `columns`
(e.g. `{"question": "prompt", "answer": "target"}`); unmapped fields default to the usual names:

    id: unique_id | id | problem_id    question: problem | question    answer: answer    level: level

Values are normalised: a GSM8K solution "... #### 42" becomes "42", MATH's "Level 3" becomes 3. A sample row of
../shared/data/gsm8k_test.jsonl: `{"question": "Janet's ducks lay 16 eggs per day. ...", "answer": "Janet sells
16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day. ... #### 18"}` -> `Problem(id="gsm8k/test/0000", question="Janet's
ducks ...", answer="18", dataset="gsm8k")`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tts.data.answers import gsm8k_answer
from tts.data.errors import DataSetError
from tts.data.problem import Problem

if TYPE_CHECKING:
    from tts.schemas import DatasetConfig

FIELDS = ("id", "question", "answer", "level")
REQUIRED = ("question", "answer")
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("unique_id", "id", "problem_id"),
    "question": ("problem", "question"),
    "answer": ("answer",),
    "level": ("level",),
}
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet", ".pq")
METADATA_MAX_CHARS = (
    200  # unmapped columns shorter than this are kept in Problem.metadata (e.g. MATH subject)
)


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSONL (one JSON object a line, or a JSON array) or Parquet file, as dicts. Raises
    DataSetError naming dataset.path, the line and the fix for a missing file, a folder, another file type, an
    unreadable or empty file, a malformed JSON line and a line that is not a JSON object."""
    p = Path(path).expanduser()
    src = str(path)
    if p.is_dir():
        raise DataSetError(
            "dataset.path", "is a folder, not a file", "give one JSONL or Parquet file", source=src
        )
    if not p.is_file():
        raise DataSetError(
            "dataset.path", "no such file", "give an existing JSONL or Parquet file", source=src
        )
    suffix = p.suffix.lower()
    allowed = ", ".join(JSONL_SUFFIXES + PARQUET_SUFFIXES)
    if suffix in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(p).to_pylist()
        except Exception as exc:  # pyarrow raises several types for a corrupt file
            detail = " ".join(str(exc).split())[:200]
            raise DataSetError(
                "dataset.path", f"not a readable Parquet file ({detail})", "rewrite it", source=src
            ) from exc
        return _checked(rows, src, None)
    if suffix not in JSONL_SUFFIXES:
        raise DataSetError(
            "dataset.path",
            f"unsupported file type {suffix or '(none)'!r}",
            f"convert it to JSONL (one JSON object a line) or Parquet; allowed suffixes: {allowed}",
            source=src,
        )
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[: exc.start].count(b"\n") + 1
        raise DataSetError(
            "dataset.path", "is not UTF-8 text", "save it as UTF-8", source=src, line=line
        ) from exc
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataSetError(
                "dataset.path",
                f"not valid JSON ({exc.msg})",
                "fix the JSON array",
                source=src,
                line=exc.lineno,
            ) from exc
        if not isinstance(rows, list):
            raise DataSetError(
                "dataset.path", "not a JSON array of objects", "write one object a line", source=src
            )
        return _checked(rows, src, None)
    rows, lines = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataSetError(
                    "dataset.path",
                    f"not valid JSON ({exc.msg} at column {exc.colno})",
                    "write one JSON object a line",
                    source=src,
                    line=number,
                ) from exc
            lines.append(number)
    return _checked(rows, src, lines)


def _checked(rows: Any, src: str, lines: list[int] | None) -> list[dict[str, Any]]:
    if not rows:
        raise DataSetError(
            "dataset.path", "has no records (the file is empty)", "give a file with problems", source=src
        )
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataSetError(
                "dataset.path",
                f"a record is a JSON {type(row).__name__}, not an object",
                'write objects such as {"problem": ..., "answer": ...}',
                source=src,
                line=lines[index] if lines else None,
                row=None if lines else index,
            )
    return rows


def resolve_columns(
    available: Iterable[str], columns: Mapping[str, str], source: str
) -> dict[str, str | None]:
    """Record field -> source column: explicit `columns` first, else the first default name present.
    Raises naming the missing column, the available ones and the override to use."""
    available = list(available)
    unknown = sorted(set(columns) - set(FIELDS))
    if unknown:
        raise DataSetError(
            "dataset.columns",
            f"unknown record field(s) {unknown}",
            f"use only {', '.join(FIELDS)}",
            source=source,
        )
    resolved: dict[str, str | None] = {}
    for name in FIELDS:
        if name in columns:
            if columns[name] not in available:
                raise DataSetError(
                    f"dataset.columns.{name}",
                    f"column {columns[name]!r} not found (available: {', '.join(map(str, available))})",
                    f"map an existing column with +dataset.columns.{name}=<column>",
                    source=source,
                )
            resolved[name] = columns[name]
            continue
        resolved[name] = next((c for c in DEFAULT_COLUMNS[name] if c in available), None)
        if resolved[name] is None and name in REQUIRED:
            tried = " or ".join(repr(c) for c in DEFAULT_COLUMNS[name])
            raise DataSetError(
                f"dataset.columns.{name}",
                f"no column {tried} (available: {', '.join(map(str, available))})",
                f"map one with +dataset.columns.{name}=<column>",
                source=source,
            )
    return resolved


def parse_answer(value: Any) -> str:
    """A reference answer as a string: GSM8K "... #### 1,234" -> "1234", 3.0 -> "3", else str(value).strip()."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return (gsm8k_answer(text) or text) if "####" in text else text


def parse_level(value: Any) -> int | None:
    """MATH "Level 3" -> 3, 3 -> 3, "3" -> 3; None / "Level ?" -> None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    match = re.search(r"\d+", str(value))
    return int(match.group(0)) if match else None


def map_records(
    records: Iterable[Mapping[str, Any]],
    *,
    dataset: str,
    split: str,
    columns: Mapping[str, str] | None = None,
    levels: list[int] | None = None,
    limit: int | None = None,
    per_level: int | None = None,
    source: str = "the data",
) -> list[Problem]:
    """Rows -> Problems. `levels` keeps only those levels; `limit` keeps the first K problems (per level when
    `per_level` is set, which also caps each level at `per_level`). Ids: "<dataset>/<id column>" or
    "<dataset>/<split>/<row index:04d>" when there is no id column."""
    rows = list(records)
    if not rows:
        return []
    cols = resolve_columns(rows[0].keys(), columns or {}, source)
    used = {c for c in cols.values() if c is not None}
    problems: list[Problem] = []
    ids: dict[str, int] = {}
    for index, row in enumerate(rows):
        for name in REQUIRED:
            column = cols[name]
            value = row.get(column) if isinstance(row, Mapping) else None
            if column is None:
                continue
            if column not in row:
                raise DataSetError(
                    f"dataset.columns.{name}",
                    f"no column {column!r} (got {sorted(map(str, row))})",
                    f"add it to every record, or map another column with +dataset.columns.{name}=<column>",
                    source=source,
                    row=index,
                )
            if value is None or isinstance(value, dict | list) or not str(value).strip():
                raise DataSetError(
                    f"dataset.columns.{name}",
                    f"column {column!r} is {'empty' if value is not None else 'null'}"
                    + (f" ({type(value).__name__})" if isinstance(value, dict | list) else ""),
                    f"give every record a non-empty text {name}",
                    source=source,
                    row=index,
                )
        level = parse_level(row.get(cols["level"])) if cols["level"] else None
        if levels is not None and level not in levels:
            continue
        raw_id = row.get(cols["id"]) if cols["id"] else None
        pid = f"{dataset}/{raw_id}" if raw_id is not None else f"{dataset}/{split}/{index:04d}"
        if pid in ids:
            raise DataSetError(
                "dataset.columns.id",
                f"duplicate problem id {pid!r} (also record {ids[pid] + 1})",
                "give every record a unique id, or map another id column with +dataset.columns.id=<column>",
                source=source,
                row=index,
            )
        ids[pid] = index
        metadata = {
            k: v
            for k, v in row.items()
            if k not in used and isinstance(v, str | int | float | bool) and len(str(v)) <= METADATA_MAX_CHARS
        }
        problems.append(
            Problem(
                id=pid,
                question=str(row[cols["question"]]),
                answer=parse_answer(row[cols["answer"]]),
                dataset=dataset,
                level=level,
                metadata=metadata,
            )
        )
    return _take(problems, limit, per_level)


def _take(problems: list[Problem], limit: int | None, per_level: int | None) -> list[Problem]:
    if per_level is None:
        return problems[:limit] if limit is not None else problems
    cap = per_level if limit is None else min(per_level, limit)
    taken: Counter[int | None] = Counter()
    kept = []
    for problem in problems:
        if taken[problem.level] < cap:
            taken[problem.level] += 1
            kept.append(problem)
    return kept


def load(cfg: DatasetConfig) -> list[Problem]:
    """The DATASETS loader "local": `cfg.path` read with `cfg.columns`, filtered by levels/limit/per_level."""
    if not cfg.path:
        raise DataSetError(
            "dataset.path",
            "not set; the local loader needs a JSONL or Parquet file",
            "dataset=local dataset.path=/data/problems.jsonl",
        )
    return map_records(
        read_records(cfg.path),
        dataset=cfg.name,
        split=cfg.split,
        columns=dict(cfg.columns or {}),
        levels=list(cfg.levels) if cfg.levels is not None else None,
        limit=cfg.limit,
        per_level=cfg.per_level,
        source=str(cfg.path),
    )
