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

from tts.data.problem import Problem
from tts.grading.extract import gsm8k_answer

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
    """The rows of a JSONL (one JSON object a line, or a JSON array) or Parquet file, as dicts."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"dataset.path: no such file {str(path)!r}; give a JSONL or Parquet file")
    suffix = p.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        return pq.read_table(p).to_pylist()
    if suffix not in JSONL_SUFFIXES:
        allowed = ", ".join(JSONL_SUFFIXES + PARQUET_SUFFIXES)
        raise ValueError(f"dataset.path: unsupported file type {p.name!r}; allowed suffixes: {allowed}")
    text = p.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        rows = json.loads(text)
    else:
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"dataset.path: {p}: line {number} is not valid JSON ({exc})") from exc
    if not all(isinstance(row, dict) for row in rows):
        raise ValueError(f"dataset.path: {p}: every record must be a JSON object")
    return rows


def resolve_columns(
    available: Iterable[str], columns: Mapping[str, str], source: str
) -> dict[str, str | None]:
    """Record field -> source column: explicit `columns` first, else the first default name present.
    Raises naming the missing column, the available ones and the override to use."""
    available = list(available)
    unknown = sorted(set(columns) - set(FIELDS))
    if unknown:
        raise ValueError(f"dataset.columns: unknown record field(s) {unknown}; allowed: {', '.join(FIELDS)}")
    resolved: dict[str, str | None] = {}
    for name in FIELDS:
        if name in columns:
            if columns[name] not in available:
                raise ValueError(
                    f"dataset.columns.{name}: column {columns[name]!r} not found in {source}; "
                    f"available columns: {', '.join(available)}"
                )
            resolved[name] = columns[name]
            continue
        resolved[name] = next((c for c in DEFAULT_COLUMNS[name] if c in available), None)
        if resolved[name] is None and name in REQUIRED:
            tried = " or ".join(repr(c) for c in DEFAULT_COLUMNS[name])
            raise ValueError(
                f"dataset.columns.{name}: no column {tried} in {source}; available columns: "
                f"{', '.join(available)}; map one with +dataset.columns.{name}=<column>"
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
    for index, row in enumerate(rows):
        missing = [c for f, c in cols.items() if c is not None and f in REQUIRED and c not in row]
        if missing:
            raise ValueError(
                f"dataset: row {index} of {source} has no column {missing[0]!r}; got {sorted(row)}"
            )
        level = parse_level(row.get(cols["level"])) if cols["level"] else None
        if levels is not None and level not in levels:
            continue
        raw_id = row.get(cols["id"]) if cols["id"] else None
        pid = f"{dataset}/{raw_id}" if raw_id is not None else f"{dataset}/{split}/{index:04d}"
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
        raise ValueError(
            "dataset.path: not set; the local loader needs a JSONL or Parquet file, e.g. "
            "dataset=local dataset.path=/data/problems.jsonl"
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
