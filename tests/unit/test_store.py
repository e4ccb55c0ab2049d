"""tts.store: atomic files, a checksummed manifest, corruption detected, one DataFrame out."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tts.store import CorruptResultError, SweepStore, config_columns, load, load_samples, summarize


def _rows(cell: str, n: int = 3) -> list[dict]:
    return [
        {
            "sweep": "s",
            "cell_id": cell,
            "problem_id": f"p{i}",
            "correct": i % 2 == 0,
            "n": 4,
            "level": None,
            "flops": 1.5e9,
            "status": "ok",
            "config.strategy.name": "best_of_n",
        }
        for i in range(n)
    ]


@pytest.fixture
def store(tmp_path: Path) -> SweepStore:
    s = SweepStore(tmp_path / "sweep")
    for cid in ("aaaa", "bbbb", "cccc"):
        s.write_rows("cell", cid, _rows(cid), config={"n": 4}, meta={"axes": {"n": "4"}})
    s.write_rows(
        "pool",
        "pool1",
        [
            {
                "pool_id": "pool1",
                "problem_id": "p0",
                "sample_idx": 0,
                "text": "x",
                "step_scores": [0.5, 1.0],
                "score": 1.0,
            }
        ],
    )
    return s


def test_written_files_are_listed_with_checksums_and_read_back(store: SweepStore) -> None:
    good, bad = store.verified("cell")
    assert sorted(good) == ["aaaa", "bbbb", "cccc"] and bad == {}
    entry = good["aaaa"]
    assert entry.rows == 3 and len(entry.sha256) == 64 and entry.file == "cells/aaaa.parquet"
    assert set(entry.versions) == {"tts", "vllm", "ray", "torch", "results_schema"}
    df = load(store.root)
    assert len(df) == 9 and df["level"].isna().all()
    assert df["correct"].dtype == bool and df["n"].dtype == "int64"
    assert list(load_samples(store.root)["step_scores"][0]) == [0.5, 1.0]
    assert not list(store.root.glob("cells/.*tmp*")), "no temporary files left behind"


@pytest.mark.parametrize("damage", ["truncated", "zero_bytes", "bit_flipped", "deleted"])
def test_each_kind_of_damage_is_detected_for_that_file_only(store: SweepStore, damage: str) -> None:
    path = store.root / "cells" / "bbbb.parquet"
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "zero_bytes":
        path.write_bytes(b"")
    elif damage == "bit_flipped":
        flipped = bytearray(data)
        flipped[len(data) // 3] ^= 0x01
        path.write_bytes(bytes(flipped))
    else:
        path.unlink()
    good, bad = store.verified("cell")
    assert sorted(good) == ["aaaa", "cccc"] and list(bad) == ["bbbb"], bad
    with pytest.raises(CorruptResultError, match="bbbb"):
        load(store.root)
    with pytest.warns(UserWarning, match="1 result file"):
        assert len(load(store.root, strict=False)) == 6


def test_torn_manifest_line_is_ignored_and_next_append_is_intact(store: SweepStore) -> None:
    with open(store.manifest_path, "ab") as fh:
        fh.write(b'{"kind": "cell", "id": "dddd", "fi')  # the driver died mid-append
    assert ("cell", "dddd") not in store.entries()
    store.write_rows("cell", "eeee", _rows("eeee"))
    lines = store.manifest_path.read_bytes().split(b"\n")
    assert json.loads(lines[-2])["id"] == "eeee"
    assert ("cell", "eeee") in store.entries()


def test_latest_manifest_line_wins(store: SweepStore) -> None:
    store.write_rows("cell", "aaaa", _rows("aaaa", n=5), status="failed")
    entry = store.entries()[("cell", "aaaa")]
    assert entry.rows == 5 and entry.status == "failed"
    assert summarize(store.root.parent)[0]["failed"] == 1


@dataclass
class _Inner:
    beam_width: int = 4
    levels: list[int] = field(default_factory=lambda: [1, 2])


@dataclass
class _Root:
    strategy: _Inner = field(default_factory=_Inner)
    n: int = 8


def test_config_columns_flatten_every_field() -> None:
    cols = config_columns(_Root())
    assert cols == {"config.strategy.beam_width": 4, "config.strategy.levels": "[1, 2]", "config.n": 8}


def test_load_reads_a_folder_of_sweeps_and_rejects_an_empty_one(store: SweepStore, tmp_path: Path) -> None:
    other = SweepStore(tmp_path / "other")
    other.write_rows("cell", "ffff", _rows("ffff", n=2))
    assert len(load(tmp_path)) == 11
    with pytest.raises(FileNotFoundError, match="tts sweep"):
        load(tmp_path / "nothing")
