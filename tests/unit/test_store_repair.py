"""tts.store_repair: files carry their own manifest entry; a lost manifest is rebuilt from them; pools versioned."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tts.store import MANIFEST_KEY, SweepStore, load, load_samples
from tts.store_repair import sweep_folders


def _cell(cid: str, status: str = "ok", n: int = 3) -> list[dict]:
    return [
        {"cell_id": cid, "pool_id": "pool1", "problem_id": f"p{i}", "status": status, "n": 4}
        for i in range(n)
    ]


def _pool(text: str = "x") -> list[dict]:
    return [{"pool_id": "pool1", "problem_id": f"p{i}", "sample_idx": 0, "text": text} for i in range(2)]


@pytest.fixture
def store(tmp_path: Path) -> SweepStore:
    s = SweepStore(tmp_path / "sweep")
    s.write_rows("pool", "pool1", _pool())
    s.write_rows(
        "cell", "aaaa", _cell("aaaa"), config={"n": 4}, meta={"axes": {"n": "4"}, "pool_id": "pool1"}
    )
    s.write_rows("cell", "bbbb", _cell("bbbb", "failed"), status="failed", meta={"tries": 3})
    s.write("difficulty", "difficulty", pa.table({"policy": ["p"], "problem_id": ["p0"], "bin": ["1"]}))
    return s


def test_each_file_carries_its_manifest_entry_but_sha256_and_file(store: SweepStore) -> None:
    entry = store.entries()[("cell", "aaaa")]
    described = json.loads(pq.read_schema(store.root / entry.file).metadata[MANIFEST_KEY])
    assert "sha256" not in described and "file" not in described
    assert described == {
        k: v for k, v in json.loads(json.dumps(entry.__dict__)).items() if k not in ("sha256", "file")
    }


def test_pools_are_written_under_content_versioned_names_and_never_overwritten(store: SweepStore) -> None:
    first = store.entries()[("pool", "pool1")]
    second = store.write_rows("pool", "pool1", _pool("y"))
    assert first.file == f"samples/pool1-{first.sha256[:12]}.parquet"
    assert second.file == f"samples/pool1-{second.sha256[:12]}.parquet" != first.file
    assert (store.root / first.file).is_file() and store.problem(first) is None, "old version untouched"
    assert store.entries()[("pool", "pool1")] == second
    assert set(load_samples(store.root)["text"]) == {"y"}


def test_deleted_manifest_is_rebuilt_from_the_files_and_reads_the_same(store: SweepStore) -> None:
    before = store.entries()
    rows = load(store.root).sort_values(["cell_id", "problem_id"], ignore_index=True)
    assert store.unlisted() == []
    store.manifest_path.unlink()
    assert sorted(p.name for p in store.unlisted()) == sorted(Path(e.file).name for e in before.values())
    report = store.repair()
    assert (report.restored, report.legacy, report.unreadable, report.backup) == (4, 0, [], None)
    assert store.entries() == before
    assert store.unlisted() == []
    assert load(store.root).sort_values(["cell_id", "problem_id"], ignore_index=True).equals(rows)


def test_the_newest_pool_version_is_current_after_repair_and_the_old_manifest_kept(store: SweepStore) -> None:
    newest = store.write_rows("pool", "pool1", _pool("y"))
    old = store.manifest_path.read_bytes()
    report = store.repair()
    assert report.restored == 5 and report.backup == str(store.root / "manifest.jsonl.bak")
    assert (store.root / "manifest.jsonl.bak").read_bytes() == old
    assert store.entries()[("pool", "pool1")] == newest
    assert not list(store.root.glob(".*tmp*")), "no temporary files left behind"


def test_legacy_files_without_metadata_are_derived_from_path_and_rows(store: SweepStore) -> None:
    for cid, status in (("cccc", "ok"), ("dddd", "failed")):
        pq.write_table(pa.Table.from_pylist(_cell(cid, status, 5)), store.root / "cells" / f"{cid}.parquet")
    pq.write_table(pa.Table.from_pylist(_pool() * 2), store.root / "samples" / "pool2.parquet")
    store.manifest_path.unlink()
    report = store.repair()
    assert (report.restored, report.legacy) == (7, 3) and "legacy" in report.line()
    entries = store.entries()
    assert entries[("cell", "cccc")].status == "ok" and entries[("cell", "cccc")].rows == 5
    assert entries[("cell", "dddd")].status == "failed"
    assert entries[("cell", "cccc")].meta["pool_id"] == "pool1"
    assert store.problem(entries[("cell", "dddd")]) is None
    legacy_pool = entries[("pool", "pool1")]  # the rows name pool1, newer than the versioned file
    assert legacy_pool.file == "samples/pool2.parquet" and legacy_pool.rows == 4
    assert len(load(store.root)) == 3 + 3 + 5 + 5


@pytest.mark.parametrize("damage", ["truncated", "zero_bytes", "bit_flipped_page"])
def test_files_that_do_not_parse_are_left_out_and_reported(store: SweepStore, damage: str) -> None:
    path = store.root / store.entries()[("cell", "aaaa")].file
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "zero_bytes":
        path.write_bytes(b"")
    else:  # the last byte of the first column chunk: data of its last page, under the page checksum
        chunk = pq.ParquetFile(path).metadata.row_group(0).column(0)
        flipped = bytearray(data)
        flipped[
            (chunk.dictionary_page_offset or chunk.data_page_offset) + chunk.total_compressed_size - 1
        ] ^= 0x01
        path.write_bytes(bytes(flipped))
    store.manifest_path.unlink()
    report = store.repair()
    assert report.restored == 3 and len(report.unreadable) == 1
    assert report.unreadable[0].startswith("cells/aaaa.parquet: ")
    assert ("cell", "aaaa") not in store.entries() and ("cell", "bbbb") in store.entries()


def test_sweep_folders_finds_the_folder_itself_or_its_sweeps(store: SweepStore, tmp_path: Path) -> None:
    store.manifest_path.unlink()
    assert sweep_folders(store.root) == [store.root]
    assert sweep_folders(tmp_path) == [store.root]
    assert sweep_folders(tmp_path / "nothing") == []
