"""Results written before results schema 5 (before grading recorded `extraction` and prompts pinned their date)
are analysed with a warning that names what changed; the report shows accuracy without last-number fallback
answers beside the accuracy when the two differ."""

from __future__ import annotations

import warnings
from pathlib import Path

import pyarrow as pa
import pytest

from tts import store
from tts.analysis import io
from tts.analysis.report import _fallback_section
from tts.store import SweepStore
from tts.testing.synthetic import DEFAULT_STRATEGIES, SyntheticSpec, SynthPolicy, SynthPRM, write_results

SPEC = SyntheticSpec(
    sweep="old",
    n_problems=12,
    policies=(SynthPolicy("small", 100_000_000, -0.5),),
    prms=(SynthPRM("prm", "vllm_pooling", 500_000_000, 0.9),),
    strategies=DEFAULT_STRATEGIES,
    budgets=(1, 4),
    seeds=(0,),
    pool_size=4,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_results(tmp_path_factory.mktemp("old") / "old", SPEC)


def _rewrite_first_cell(folder: Path, version: str | None, change: dict[str, object]) -> None:
    """Rewrite one cell as `version` of the results schema wrote it, with some columns changed."""
    st = SweepStore(folder)
    eid, entry = next((eid, e) for (kind, eid), e in sorted(st.entries().items()) if kind == "cell")
    table = st.read(entry)
    for name, value in change.items():
        i = table.column_names.index(name)
        table = table.set_column(i, name, pa.array([value] * table.num_rows, table.schema.field(name).type))
    if version is None:
        st.write("cell", eid, table, status=entry.status, config=entry.config)
        return
    original = store.versions()
    old = {**original, "results_schema": version}
    store.versions.cache_clear()
    try:
        import unittest.mock

        with unittest.mock.patch.object(store, "versions", lambda: old):
            st.write("cell", eid, table, status=entry.status, config=entry.config)
    finally:
        store.versions.cache_clear()


def test_current_results_give_no_warning(folder: Path) -> None:
    assert io.schema_warning(folder) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        io.result_files(folder, "cell")


def test_schema_4_cells_are_read_with_a_warning_naming_what_changed(tmp_path: Path, folder: Path) -> None:
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(folder, copy)
    _rewrite_first_cell(copy, "4", {})
    assert io.schema_versions(copy)[4] == 1
    message = io.schema_warning(copy)
    assert message is not None
    for named in ("1 under schema 4", "extraction", "the answer is X", "unfinished thinking", "pinned date"):
        assert named in message, named
    with pytest.warns(UserWarning, match="older release"):
        files = io.result_files(copy, "cell")
    assert len(files) == len(io.result_files(folder, "cell"))  # read, not dropped


def test_accuracy_without_fallback_answers(tmp_path: Path, folder: Path) -> None:
    import shutil

    copy = tmp_path / "fb"
    shutil.copytree(folder, copy)
    table = io.grading_table(copy)
    assert (table["accuracy"] == table["accuracy_no_fallback"]).all()
    assert "_No correct answer in this sweep came from the fallback" in "\n".join(_fallback_section(table))
    # one cell's answers all came from the last number: its correct rows no longer count without them
    _rewrite_first_cell(copy, None, {"fallback_extraction": True, "correct": True})
    table = io.grading_table(copy)
    hit = table[table["fallback_share"] == 1.0]
    assert len(hit) == 1
    assert hit["accuracy"].iloc[0] == 1.0 and hit["accuracy_no_fallback"].iloc[0] == 0.0
    section = "\n".join(_fallback_section(table))
    assert "without fallback answers" in section and "| 1.000 | 0.000 | 100.0% |" in section
