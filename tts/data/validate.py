"""Fail fast on bad data, and say what data was read: `load_problems_checked` and `dataset_content_hash`.

Why here and why before Ray: a data set that cannot be used (a missing file, a folder, a `.csv`, a malformed
JSON line, a missing or empty column, `levels=[99]`, an empty set) used to surface only after Ray and the
engines had started, stored in a Parquet column as "1 failed". The driver calls `load_problems_checked(cfg)`
first: it returns the problems, or raises one `DataSetError` (a ValueError) whose one-line message names the
config field, the file and line, and the fix. Any other exception a loader raises on bad input is turned into
a DataSetError too (its type is kept in the message), so a user never sees a traceback for bad data.

`dataset_content_hash(cfg)` is what the identity module hashes for "the contents of the data it read", so an
edited file gives new cell and pool ids:
  - a local file (`dataset.path`, any loader): "sha256:<hex of the file's bytes>";
  - a hub set: "hub:<repo>@<commit sha>" (the revision the hub serves, else the one in the local hub cache);
  - anything else (generated sets such as `arithmetic`, package copies such as HumanEval, or a hub set whose
    revision cannot be found offline): "problems:sha256:<hex>" of the loaded problems' canonical JSON. For a
    generator that is a function of its settings AND its code, so a changed generator is a changed data set.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tts.data.errors import DataSetError
from tts.data.local import JSONL_SUFFIXES
from tts.data.problem import Problem

HUB_IDS = {  # loader name -> default hub repo (tts.data.hub.SOURCES, tts.data.code.MBPP_HUB_ID)
    "math500": "HuggingFaceH4/MATH-500",
    "gsm8k": "openai/gsm8k",
    "aime24": "HuggingFaceH4/aime_2024",
    "mbpp": "google-research-datasets/mbpp",
}


def load_problems_checked(cfg: Any) -> list[Problem]:
    """The problems of data set `cfg` (a DatasetConfig), or DataSetError naming the field, file, line and fix.
    Checks: name registered ("did you mean"), limit / per_level positive integers, levels a non-empty list of
    integers that all have problems, the file (exists, is a file, JSONL/Parquet, UTF-8, valid JSON objects,
    required columns present and non-empty, unique ids), and a non-empty result."""
    from tts.data import DATASETS
    from tts.registry import UnknownNameError

    _check_settings(cfg)
    try:
        loader = DATASETS.get(cfg.name)
    except UnknownNameError as exc:
        raise DataSetError("dataset.name", str(exc), "pick a registered data set") from None
    problems = _load(loader, cfg)
    levels = _get(cfg, "levels")
    if not problems and levels:
        raise _missing_levels(loader, cfg, list(levels))
    if not problems:
        raise _empty(cfg)
    if levels:
        found = {p.level for p in problems}
        missing = [lv for lv in levels if lv not in found]
        if missing and _get(cfg, "limit") is None and _get(cfg, "per_level") is None:
            raise _missing_levels(loader, cfg, missing)
        if missing:  # a limit may have cut them: look again without it
            unlimited = _load(loader, _with(cfg, limit=None, per_level=None))
            missing = [lv for lv in levels if lv not in {p.level for p in unlimited}]
            if missing:
                raise _missing_levels(loader, cfg, missing)
    return problems


def _get(cfg: Any, name: str) -> Any:
    return getattr(cfg, name, None)


def _with(cfg: Any, **changes: Any) -> Any:
    try:
        return replace(cfg, **changes)
    except TypeError:  # an OmegaConf node
        from omegaconf import OmegaConf

        copy = OmegaConf.to_container(cfg, resolve=True)
        copy.update(changes)  # type: ignore[union-attr]
        return OmegaConf.create(copy)


def _check_settings(cfg: Any) -> None:
    name = _get(cfg, "name")
    if not isinstance(name, str) or not name:
        raise DataSetError("dataset.name", "not set", "choose a data set, e.g. dataset=arithmetic")
    for key in ("limit", "per_level"):
        value = _get(cfg, key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise DataSetError(
                f"dataset.{key}", f"invalid value {value!r}", "give a positive integer or omit it"
            )
    levels = _get(cfg, "levels")
    if levels is not None:
        levels = list(levels)
        if not levels:
            raise DataSetError("dataset.levels", "empty list", "omit dataset.levels to keep every level")
        bad = [lv for lv in levels if isinstance(lv, bool) or not isinstance(lv, int)]
        if bad:
            raise DataSetError(
                "dataset.levels", f"not integers: {bad!r}", "give levels as integers, e.g. [1,2]"
            )
    path = _get(cfg, "path")
    if path is not None and (not isinstance(path, str) or not path.strip()):
        raise DataSetError("dataset.path", f"invalid value {path!r}", "give a JSONL or Parquet file path")


def _load(loader: Any, cfg: Any) -> list[Problem]:
    try:
        return list(loader(cfg))
    except DataSetError as exc:
        raise _with_line(exc) from None
    except ImportError as exc:
        raise DataSetError(
            "dataset.name", f"needs a package that is not installed ({exc})", "install it"
        ) from exc
    except Exception as exc:  # noqa: BLE001  (bad data must not end in a traceback)
        text = " ".join(str(exc).split())[:300]
        field, _, rest = text.partition(": ")
        if not field.startswith("dataset.") or " " in field:
            field, rest = "dataset.path", text
        raise DataSetError(field, f"{rest} ({type(exc).__name__})", source=_get(cfg, "path")) from exc


def _with_line(exc: DataSetError) -> DataSetError:
    """A record index -> its line number, for JSONL files (the loaders only know the index)."""
    if exc.row is None or exc.line is not None or not exc.source:
        return exc
    path = Path(exc.source).expanduser()
    if path.suffix.lower() not in JSONL_SUFFIXES or not path.is_file():
        return exc
    text = path.read_text(encoding="utf-8-sig")
    if text.lstrip().startswith("["):
        return exc
    lines = [n for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    return exc.at_line(lines[exc.row]) if exc.row < len(lines) else exc


def _empty(cfg: Any) -> DataSetError:
    src = _get(cfg, "path") or _get(cfg, "hub_id") or _get(cfg, "name")
    if _get(cfg, "ids") is not None:
        return DataSetError(
            "dataset.ids", "selects no problems", "give ids that exist or omit it", source=src
        )
    if _get(cfg, "levels"):
        return DataSetError("dataset.levels", "keeps no problems", "choose levels the data has", source=src)
    return DataSetError(
        "dataset.path", "has no problems", "give a data set with at least one problem", source=src
    )


def _missing_levels(loader: Any, cfg: Any, missing: list[int]) -> DataSetError:
    try:
        everything = _load(loader, _with(cfg, levels=None, limit=None, per_level=None))
        present = sorted({p.level for p in everything if p.level is not None})
    except DataSetError:
        present = []
    fix = f"choose from {present}" if present else "this data set has no levels: omit dataset.levels"
    src = _get(cfg, "path") or _get(cfg, "hub_id") or _get(cfg, "name")
    return DataSetError("dataset.levels", f"level(s) {missing} have no problems", fix, source=src)


# ------------------------------------------------------------------------------------------ content hash
def dataset_content_hash(cfg: Any, problems: Sequence[Problem] | None = None) -> str:
    """What the data set's contents are, as one string (module docstring): "sha256:..." for a local file,
    "hub:<repo>@<sha>" for a hub set, else "problems:sha256:..." of `problems` (loaded with
    `load_problems_checked` when not given). Raises DataSetError when a local file is missing."""
    path = _get(cfg, "path")
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise DataSetError(
                "dataset.path", "no such file", "give an existing JSONL or Parquet file", source=path
            )
        digest = hashlib.sha256()
        with open(p, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        return "sha256:" + digest.hexdigest()
    hub_id = _get(cfg, "hub_id") or HUB_IDS.get(_get(cfg, "name"))
    if hub_id:
        revision = _get(cfg, "revision") or hub_revision(hub_id)
        if revision:
            return f"hub:{hub_id}@{revision}"
    return problems_hash(problems if problems is not None else load_problems_checked(cfg))


def problems_hash(problems: Sequence[Problem]) -> str:
    """sha256 of the problems' canonical JSON (id, question, answer, dataset, level, kind, metadata)."""
    digest = hashlib.sha256()
    for p in problems:
        record = [p.id, p.question, p.answer, p.dataset, p.level, p.kind, p.metadata]
        digest.update(json.dumps(record, sort_keys=True, default=str).encode() + b"\n")
    return "problems:sha256:" + digest.hexdigest()


def hub_revision(hub_id: str) -> str | None:
    """The commit sha the hub serves for dataset `hub_id`, else the newest one in the local hub cache, else
    None (offline and never downloaded)."""
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(hub_id, timeout=10).sha
    except Exception:  # noqa: BLE001  (offline, no package, private repo)
        pass
    try:
        from huggingface_hub import scan_cache_dir

        for repo in scan_cache_dir().repos:
            if repo.repo_type == "dataset" and repo.repo_id == hub_id and repo.revisions:
                return max(repo.revisions, key=lambda r: r.last_modified).commit_hash
    except Exception:  # noqa: BLE001
        pass
    return None
