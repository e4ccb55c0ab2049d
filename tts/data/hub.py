"""MATH-500, GSM8K and AIME 2024 from the Hugging Face hub (`datasets.load_dataset`), or from a local copy.

Why a local path is accepted too: tests and air-gapped machines read a JSONL/Parquet copy that keeps the hub's
field names (`dataset.path=...`), and both routes go through the same row mapping (`tts.data.local.map_records`),
so the problems are identical either way. Hub fields, as published:

    MATH-500  HuggingFaceH4/MATH-500 (test):     problem, solution, answer, subject, level (1-5), unique_id
    GSM8K     openai/gsm8k, config main (test):  question, answer ("... #### 42")
    AIME 2024 HuggingFaceH4/aime_2024 (train):   id, problem, solution, answer, url, year

`dataset.hub_id` swaps in a mirror with the same fields; `dataset.columns` overrides single fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tts.data.local import REQUIRED, map_records, read_records
from tts.data.problem import Problem

if TYPE_CHECKING:
    from tts.schemas import DatasetConfig


@dataclass(frozen=True)
class HubSource:
    """Where a data set lives on the hub and which of its columns hold the record fields."""

    hub_id: str
    config: str | None
    columns: dict[str, str]


SOURCES: dict[str, HubSource] = {
    "math500": HubSource(
        "HuggingFaceH4/MATH-500",
        None,
        {"id": "unique_id", "question": "problem", "answer": "answer", "level": "level"},
    ),
    "gsm8k": HubSource("openai/gsm8k", "main", {"question": "question", "answer": "answer"}),
    "aime24": HubSource(
        "HuggingFaceH4/aime_2024", None, {"id": "id", "question": "problem", "answer": "answer"}
    ),
}


def hub_records(hub_id: str, config: str | None, split: str) -> list[dict[str, Any]]:
    """The rows of one split of a hub data set (downloaded once into the `datasets` cache)."""
    from datasets import load_dataset

    try:
        data = load_dataset(hub_id, config, split=split) if config else load_dataset(hub_id, split=split)
    except ValueError as exc:  # e.g. an unknown split: say which field to change
        raise ValueError(
            f"dataset.split / dataset.hub_id: cannot load {hub_id!r} split {split!r}: {exc}"
        ) from exc
    return [dict(row) for row in data]


def load_source(source: HubSource, cfg: DatasetConfig) -> list[Problem]:
    """Problems of `source`: from `cfg.path` when set, else from the hub (`cfg.hub_id` overrides the id)."""
    if cfg.path:
        records, where = read_records(cfg.path), str(cfg.path)
    else:
        hub_id = cfg.hub_id or source.hub_id
        records, where = hub_records(hub_id, source.config, cfg.split), f"{hub_id} ({cfg.split})"
    present = set(records[0]) if records else set()
    # the source's optional fields (id, level) are used when the copy has them; required ones always
    columns = {f: c for f, c in source.columns.items() if f in REQUIRED or c in present}
    columns.update(dict(cfg.columns or {}))
    return map_records(
        records,
        dataset=cfg.name,
        split=cfg.split,
        columns=columns,
        levels=list(cfg.levels) if cfg.levels is not None else None,
        limit=cfg.limit,
        per_level=cfg.per_level,
        source=where,
    )


def load_math500(cfg: DatasetConfig) -> list[Problem]:
    """MATH-500 (Lightman et al.'s 500-problem MATH test subset), levels 1-5."""
    return load_source(SOURCES["math500"], cfg)


def load_gsm8k(cfg: DatasetConfig) -> list[Problem]:
    """GSM8K grade-school word problems; the reference is the number after "####"."""
    return load_source(SOURCES["gsm8k"], cfg)


def load_aime24(cfg: DatasetConfig) -> list[Problem]:
    """The 30 AIME 2024 problems (integer answers 0-999); the hub publishes them as split "train"."""
    return load_source(SOURCES["aime24"], cfg)
