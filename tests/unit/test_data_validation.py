"""Bad data is stopped at the door: load_problems_checked raises one DataSetError (file, line, field, fix) for
every way a data set can be unusable, a fuzz run of generated malformed files and configs never ends in any
other exception nor writes a file, and dataset_content_hash changes exactly when the data does."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tts.config import DatasetConfig
from tts.data import DataSetError, dataset_content_hash, load_problems_checked

GOOD = [{"id": f"p{i}", "problem": f"{i} + 1", "answer": str(i + 1), "level": 1 + i % 3} for i in range(6)]


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _local(path: Path | str, **kw) -> DatasetConfig:
    return DatasetConfig(name="local", path=str(path), **kw)


def test_a_good_file_loads(tmp_path: Path) -> None:
    problems = load_problems_checked(_local(_jsonl(tmp_path / "p.jsonl", GOOD), levels=[2]))
    assert [p.id for p in problems] == ["local/p1", "local/p4"]


@pytest.mark.parametrize(
    ("case", "field", "where", "says"),
    [
        ("empty", "dataset.path", "p.jsonl", "has no records"),
        ("blank_lines", "dataset.path", "p.jsonl", "has no records"),
        ("bad_json", "dataset.path", "p.jsonl line 3", "not valid JSON"),
        ("not_object", "dataset.path", "p.jsonl line 2", "JSON list, not an object"),
        ("missing_column", "dataset.columns.answer", "p.jsonl line 4", "no column 'answer'"),
        ("null_answer", "dataset.columns.answer", "p.jsonl line 2", "column 'answer' is null"),
        ("empty_question", "dataset.columns.question", "p.jsonl line 3", "column 'problem' is empty"),
        ("duplicate_id", "dataset.columns.id", "p.jsonl line 5", "duplicate problem id 'local/p1'"),
        (
            "levels_99",
            "dataset.levels",
            "p.jsonl",
            "level(s) [99] have no problems; fix: choose from [1, 2, 3]",
        ),
        ("csv", "dataset.path", "p.csv", "unsupported file type '.csv'; fix: convert it to JSONL"),
        ("folder", "dataset.path", "folder", "is a folder, not a file"),
        ("missing_file", "dataset.path", "nope.jsonl", "no such file"),
        ("latin1", "dataset.path", "p.jsonl line 2", "is not UTF-8"),
        ("bad_parquet", "dataset.path", "p.parquet", "not a readable Parquet file"),
        ("limit_0", "dataset.limit", "", "invalid value 0"),
        ("unknown_name", "dataset.name", "", "Did you mean 'arithmetic'?"),
        ("arith_99", "dataset.levels", "", "unknown arithmetic level 99"),
    ],
)
def test_each_bad_input_is_one_typed_line(
    tmp_path: Path, case: str, field: str, where: str, says: str
) -> None:
    path = tmp_path / "p.jsonl"
    rows = [json.dumps(r) for r in GOOD]
    cfg = _local(path)
    if case == "empty":
        path.write_text("")
    elif case == "blank_lines":
        path.write_text("\n  \n\n")
    elif case == "bad_json":
        path.write_text("\n".join([rows[0], rows[1], rows[2][:-3], rows[3]]))
    elif case == "not_object":
        path.write_text(rows[0] + "\n[1, 2]\n")
    elif case == "missing_column":
        path.write_text("\n".join([*rows[:3], json.dumps({"problem": "x"})]))
    elif case == "null_answer":
        path.write_text("\n".join([rows[0], json.dumps({**GOOD[1], "answer": None})]))
    elif case == "empty_question":
        path.write_text(
            "\n\n".join([rows[0], json.dumps({**GOOD[1], "problem": "  "})])
        )  # blank line between
    elif case == "duplicate_id":
        path.write_text("\n".join([*rows[:4], json.dumps({**GOOD[4], "id": "p1"})]))
    elif case == "levels_99":
        _jsonl(path, GOOD)
        cfg = _local(path, levels=[99])
    elif case == "csv":
        (tmp_path / "p.csv").write_text("problem,answer\n1+1,2\n")
        cfg = _local(tmp_path / "p.csv")
    elif case == "folder":
        (tmp_path / "folder").mkdir()
        cfg = _local(tmp_path / "folder")
    elif case == "missing_file":
        cfg = _local(tmp_path / "nope.jsonl")
    elif case == "latin1":
        path.write_bytes(rows[0].encode() + b'\n{"problem": "caf\xe9", "answer": "1"}\n')
    elif case == "bad_parquet":
        (tmp_path / "p.parquet").write_bytes(b"PAR1 not really")
        cfg = _local(tmp_path / "p.parquet")
    elif case == "limit_0":
        _jsonl(path, GOOD)
        cfg = _local(path, limit=0)
    elif case == "unknown_name":
        cfg = DatasetConfig(name="arithmetc")
    elif case == "arith_99":
        cfg = DatasetConfig(name="arithmetic", levels=[1, 99])
    with pytest.raises(DataSetError) as info:
        load_problems_checked(cfg)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(field + ": "), message
    assert info.value.field == field
    assert where in message and says in message, message
    assert "fix: " in message or case == "unknown_name", message


def test_levels_cut_by_a_limit_are_not_missing(tmp_path: Path) -> None:
    cfg = _local(_jsonl(tmp_path / "p.jsonl", GOOD), levels=[1, 2], limit=1)
    assert len(load_problems_checked(cfg)) == 1


def test_hub_loaders_and_parquet_share_the_checks(tmp_path: Path) -> None:
    path = tmp_path / "m.parquet"
    pq.write_table(
        pa.Table.from_pylist([{"problem": "1+1", "answer": "2", "unique_id": "a", "level": 1}]), path
    )
    assert len(load_problems_checked(DatasetConfig(name="math500", path=str(path)))) == 1
    with pytest.raises(
        DataSetError, match=r"^dataset.levels: .*level\(s\) \[4\] have no problems; fix: choose"
    ):
        load_problems_checked(DatasetConfig(name="math500", path=str(path), levels=[4]))


# ------------------------------------------------------------------------------------------ fuzzing
def _mutations(rng: random.Random, tmp: Path, n: int) -> list[DatasetConfig]:
    """n malformed (or accidentally valid) data files and configs."""
    base = "".join(json.dumps(r) + "\n" for r in GOOD)
    cfgs = []
    for i in range(n):
        kind = i % 10
        path = tmp / f"f{i}.jsonl"
        text = base
        if kind == 0:  # truncate anywhere
            text = base[: rng.randrange(len(base))]
        elif kind == 1:  # flip bytes
            b = bytearray(base.encode())
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            path.write_bytes(bytes(b))
            cfgs.append(_local(path))
            continue
        elif kind == 2:  # drop or rename a key in one row
            rows = [dict(r) for r in GOOD]
            row = rng.choice(rows)
            key = rng.choice(list(row))
            value = row.pop(key)
            if rng.random() < 0.5:
                row[key + "_x"] = value
            text = "".join(json.dumps(r) + "\n" for r in rows)
        elif kind == 3:  # wrong value types
            rows = [dict(r) for r in GOOD]
            rng.choice(rows)[rng.choice(["problem", "answer", "level", "id"])] = rng.choice(
                [None, [], {}, {"a": 1}, True, 1.5, "", "  ", -1, 10**30]
            )
            text = "".join(json.dumps(r) + "\n" for r in rows)
        elif kind == 4:  # not objects / arrays / scalars
            text = rng.choice(
                ["[1, 2]\n", "42\n", '"x"\n', "null\n", "[{}]", "[", "{}\n", "[[]]"]
            ) + base * rng.randint(0, 1)
        elif kind == 5:  # bad settings
            path.write_text(base)
            choice = rng.randrange(6)
            settings = [
                {"levels": [rng.randint(-5, 200)]},
                {"limit": rng.choice([0, -3])},
                {"per_level": rng.choice([0, -1])},
                {"levels": []},
                {"columns": {"question": "nope"}},
                {"columns": {rng.choice(["solution", "x"]): "problem"}},
            ][choice]
            cfgs.append(_local(path, **settings))
            continue
        elif kind == 6:  # other file types, folders, missing files
            target = tmp / rng.choice([f"d{i}", f"f{i}.csv", f"f{i}.txt", f"f{i}", f"m{i}.jsonl"])
            if target.suffix == "" and rng.random() < 0.5:
                target.mkdir()
            elif not target.name.startswith("m"):
                target.write_text("problem,answer\n1,2\n")
            cfgs.append(_local(target))
            continue
        elif kind == 7:  # corrupt parquet
            target = tmp / f"f{i}.parquet"
            pq.write_table(pa.Table.from_pylist(GOOD), target)
            data = target.read_bytes()
            target.write_bytes(data[: rng.randrange(len(data))])
            cfgs.append(_local(target))
            continue
        elif kind == 8:  # duplicated ids, blank questions, huge lines
            rows = [dict(r) for r in GOOD] + [dict(rng.choice(GOOD))]
            if rng.random() < 0.5:
                rows[0]["problem"] = "x" * rng.randint(0, 3) if rng.random() < 0.5 else " " * 10
            text = "".join(json.dumps(r) + "\n" for r in rows)
        else:  # generated sets and other loaders with bad settings
            cfgs.append(
                rng.choice(
                    [
                        DatasetConfig(name="arithmetic", levels=[rng.randint(-3, 50)]),
                        DatasetConfig(name="arithmetic", per_level=rng.choice([0, -2])),
                        DatasetConfig(name=rng.choice(["arith", "locl", "math5000", ""])),
                        DatasetConfig(name="code_jsonl", path=str(_jsonl(tmp / f"c{i}.jsonl", GOOD))),
                        DatasetConfig(name="gsm8k", path=str(_jsonl(tmp / f"g{i}.jsonl", [{"q": 1}]))),
                        DatasetConfig(name="local"),
                    ]
                )
            )
            continue
        path.write_text(text)
        cfgs.append(_local(path))
    return cfgs


def test_fuzz_malformed_data_sets(tmp_path: Path) -> None:
    rng = random.Random(12)
    cfgs = _mutations(rng, tmp_path, 300)
    before = sorted(os.listdir(tmp_path))
    rejected, accepted, other = 0, 0, []
    fields: set[str] = set()
    for cfg in cfgs:
        try:
            problems = load_problems_checked(cfg)
        except DataSetError as exc:
            rejected += 1
            message = str(exc)
            assert message.startswith(exc.field + ": ") and exc.field.startswith("dataset."), message
            assert "\n" not in message
            fields.add(exc.field)
        except Exception as exc:  # noqa: BLE001  (the failure this test exists to catch)
            other.append(f"{type(exc).__name__}: {exc}")
        else:
            accepted += 1
            assert problems
    print(
        f"fuzz: {len(cfgs)} inputs, {rejected} rejected with DataSetError, {accepted} valid, {len(other)} other"
    )
    print(f"fields named: {sorted(fields)}")
    assert other == []
    assert len(cfgs) >= 200 and rejected >= 200
    assert sorted(os.listdir(tmp_path)) == before  # nothing written


# ------------------------------------------------------------------------------------------ content hash
def test_content_hash_follows_the_bytes_of_a_local_file(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "p.jsonl", GOOD)
    first = dataset_content_hash(_local(path))
    assert first.startswith("sha256:") and first == dataset_content_hash(_local(path, levels=[1]))
    _jsonl(path, [*GOOD[:-1], {**GOOD[-1], "answer": "99"}])  # same path, edited answer
    assert dataset_content_hash(_local(path)) != first
    with pytest.raises(DataSetError, match="^dataset.path: .*no such file"):
        dataset_content_hash(_local(tmp_path / "gone.jsonl"))


def test_content_hash_of_generated_and_hub_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    a = dataset_content_hash(DatasetConfig(name="arithmetic", per_level=3))
    assert a.startswith("problems:sha256:")
    assert a == dataset_content_hash(DatasetConfig(name="arithmetic", per_level=3))
    assert a != dataset_content_hash(DatasetConfig(name="arithmetic", per_level=3, seed=1))
    from tts.data import validate

    monkeypatch.setattr(validate, "hub_revision", lambda hub_id: "0123abc")
    assert dataset_content_hash(DatasetConfig(name="math500")) == "hub:HuggingFaceH4/MATH-500@0123abc"


def test_data_never_imports_grading() -> None:
    code = (
        "import sys, tts.data, tts.data.local, tts.data.hub, tts.data.code, tts.data.arithmetic, "
        "tts.data.validate\nprint([m for m in sys.modules if m.startswith('tts.grading')])"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"
