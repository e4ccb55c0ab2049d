"""Problem sets: the generated arithmetic set, the local JSONL/Parquet loader, and the hub loaders (on local copies
with the hub's field names, and on a fake `load_dataset`; nothing touches the network)."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import pytest

from tts.config import DatasetConfig
from tts.data import DATASETS, DataSetError
from tts.data import hub as hub_module
from tts.data.arithmetic import LEVELS, evaluate, generate
from tts.data.local import map_records, read_records


# ------------------------------------------------------------------------------------------ arithmetic
def test_arithmetic_is_deterministic_for_a_seed() -> None:
    a = generate(sorted(LEVELS), per_level=6, seed=3)
    b = generate(sorted(LEVELS), per_level=6, seed=3)
    assert [(p.id, p.question, p.answer, p.metadata) for p in a] == [
        (p.id, p.question, p.answer, p.metadata) for p in b
    ]
    other = generate(sorted(LEVELS), per_level=6, seed=4)
    assert [p.question for p in a] != [p.question for p in other]


def test_arithmetic_levels_are_independent_of_each_other() -> None:
    alone = generate([5], per_level=4, seed=0)
    together = generate([1, 5], per_level=4, seed=0)
    assert [p.question for p in alone] == [p.question for p in together if p.level == 5]


def test_arithmetic_answers_are_exact_and_match_the_level() -> None:
    problems = generate(sorted(LEVELS), per_level=20, seed=0)
    assert len(problems) == 20 * len(LEVELS)
    for p in problems:
        spec = LEVELS[p.level]
        operands, ops = p.metadata["operands"], p.metadata["ops"]
        assert re.fullmatch(rf"arith/L{p.level}/\d{{4}}", p.id)
        assert p.dataset == "arithmetic" and p.kind == "math"
        assert (
            p.question
            == p.metadata["expression"]
            == " ".join([str(operands[0])] + [f"{op} {x}" for op, x in zip(ops, operands[1:], strict=True)])
        )
        assert tuple(ops) == spec.ops
        assert [len(str(x)) for x in operands] == list(spec.digits)
        assert p.answer == str(evaluate(operands, ops)) == str(eval(p.question))  # our own digits
        for k in range(1, len(operands) + 1):  # every left-to-right intermediate is non-negative
            assert evaluate(operands[:k], ops[: k - 1]) >= 0
    assert len({p.id for p in problems}) == len(problems)
    assert len({p.question for p in problems if p.level == 3}) == 20  # distinct while the level allows


def test_arithmetic_loader_reads_the_config() -> None:
    load = DATASETS.get("arithmetic")
    problems = load(DatasetConfig(name="arithmetic", levels=[2, 4], per_level=5, limit=3, seed=1))
    assert [p.level for p in problems] == [2, 2, 2, 4, 4, 4]
    assert len(load(DatasetConfig(name="arithmetic"))) == 10 * len(LEVELS)


def test_arithmetic_rejects_an_unknown_level() -> None:
    with pytest.raises(
        ValueError, match=r"dataset.levels: unknown arithmetic level 9; fix: choose from \[1, 2"
    ):
        generate([9], per_level=2, seed=0)


# ------------------------------------------------------------------------------------------ local files
def test_local_loader_reads_math500_with_hub_field_names(shared_data: Path) -> None:
    load = DATASETS.get("local")
    problems = load(DatasetConfig(name="local", path=str(shared_data / "math500.jsonl")))
    assert len(problems) == 500
    first = problems[0]
    assert first.id == "local/test/precalculus/807.json"
    assert first.answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert first.level == 2 and first.metadata["subject"] == "Precalculus"
    assert "solution" not in first.metadata  # long columns stay out of the record
    assert {p.level for p in problems} == {1, 2, 3, 4, 5}


def test_local_loader_reads_gsm8k_and_strips_the_solution(shared_data: Path) -> None:
    problems = DATASETS.get("local")(DatasetConfig(name="gsm8k", path=str(shared_data / "gsm8k_test.jsonl")))
    assert len(problems) == 1319
    assert problems[0].id == "gsm8k/test/0000" and problems[0].answer == "18"
    assert problems[0].question.startswith("Janet")
    assert all(re.fullmatch(r"-?\d+(\.\d+)?", p.answer) for p in problems), "every GSM8K answer is a number"
    assert all(p.level is None for p in problems)


def test_hub_loaders_read_a_local_copy_when_given_a_path(shared_data: Path) -> None:
    math = DATASETS.get("math500")(
        DatasetConfig(name="math500", path=str(shared_data / "math500.jsonl"), levels=[1, 5], per_level=3)
    )
    assert sorted(p.level for p in math) == [1, 1, 1, 5, 5, 5]
    assert all(p.id.startswith("math500/test/") for p in math)
    gsm = DATASETS.get("gsm8k")(
        DatasetConfig(name="gsm8k", path=str(shared_data / "gsm8k_test.jsonl"), limit=4)
    )
    assert [p.answer for p in gsm] == ["18", "3", "70000", "540"]


class FakeLoadDataset:
    """Stands in for `datasets.load_dataset`: records its arguments, returns hub-shaped rows."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows
        self.calls: list[tuple] = []

    def __call__(self, path: str, name: str | None = None, split: str | None = None) -> list[dict]:
        self.calls.append((path, name, split))
        return self.rows


def test_hub_loaders_call_load_dataset_with_the_source(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeLoadDataset(
        [
            {
                "problem": "1+1?",
                "solution": "..",
                "answer": "2",
                "subject": "A",
                "level": 1,
                "unique_id": "t/a/1",
            },
            {
                "problem": "2+2?",
                "solution": "..",
                "answer": "4",
                "subject": "A",
                "level": 3,
                "unique_id": "t/a/2",
            },
        ]
    )
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=fake))  # no import cost
    problems = hub_module.load_math500(DatasetConfig(name="math500", levels=[3]))
    assert fake.calls == [("HuggingFaceH4/MATH-500", None, "test")]
    assert [(p.id, p.answer, p.level) for p in problems] == [("math500/t/a/2", "4", 3)]

    fake.rows = [{"question": "q", "answer": "so 6 * 7 = <<6*7=42>>42\n#### 42"}]
    assert hub_module.load_gsm8k(DatasetConfig(name="gsm8k"))[0].answer == "42"
    assert fake.calls[-1] == ("openai/gsm8k", "main", "test")

    fake.rows = [{"id": 60, "problem": "p", "solution": "s", "answer": "204", "url": "u", "year": "2024"}]
    aime = hub_module.load_aime24(DatasetConfig(name="aime24", split="train", hub_id="mirror/aime"))
    assert fake.calls[-1] == ("mirror/aime", None, "train")
    assert (aime[0].id, aime[0].answer, aime[0].metadata["year"]) == ("aime24/60", "204", "2024")


def test_local_loader_maps_custom_columns_from_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "mine.parquet"
    rows = {"prompt": ["a?", "b?", "c?"], "target": [1.0, 2.5, 3], "difficulty": ["Level 2", "Level 1", "?"]}
    pq.write_table(pa.table(rows), path)
    cfg = DatasetConfig(
        name="local",
        path=str(path),
        columns={"question": "prompt", "answer": "target", "level": "difficulty"},
    )
    problems = DATASETS.get("local")(cfg)
    assert [(p.id, p.question, p.answer, p.level) for p in problems] == [
        ("local/test/0000", "a?", "1", 2),
        ("local/test/0001", "b?", "2.5", 1),
        ("local/test/0002", "c?", "3", None),
    ]


def test_local_loader_names_the_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "x", "target": "1"}) + "\n")
    load = DATASETS.get("local")
    with pytest.raises(ValueError, match=r"dataset.columns.question: .*\(available: prompt, target\)"):
        load(DatasetConfig(name="local", path=str(path)))
    with pytest.raises(ValueError, match=r"dataset.columns.answer: .*p.jsonl: column 'answer_col' not found"):
        load(
            DatasetConfig(
                name="local", path=str(path), columns={"question": "prompt", "answer": "answer_col"}
            )
        )
    with pytest.raises(ValueError, match=r"unknown record field\(s\) \['solution'\]"):
        load(DatasetConfig(name="local", path=str(path), columns={"solution": "target"}))


def test_local_loader_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataSetError, match="dataset.path: .*missing.jsonl: no such file"):
        read_records(tmp_path / "missing.jsonl")
    bad = tmp_path / "data.csv"
    bad.write_text("a,b\n")
    with pytest.raises(DataSetError, match="unsupported file type '.csv'; fix: convert it to JSONL"):
        read_records(bad)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": "a", "answer": "1"}\n{"question": \n')
    with pytest.raises(DataSetError, match="broken.jsonl line 2: not valid JSON"):
        read_records(broken)
    with pytest.raises(ValueError, match="dataset.path: not set"):
        DATASETS.get("local")(DatasetConfig(name="local"))


def test_limit_is_per_level_when_per_level_is_set() -> None:
    rows = [{"question": f"q{i}", "answer": str(i), "level": f"Level {1 + i % 2}"} for i in range(10)]
    by_level = map_records(rows, dataset="d", split="test", per_level=4, limit=2)
    assert [p.question for p in by_level] == ["q0", "q1", "q2", "q3"]
    assert len(map_records(rows, dataset="d", split="test", limit=3)) == 3
    assert [p.level for p in map_records(rows, dataset="d", split="test", levels=[2])] == [2] * 5
