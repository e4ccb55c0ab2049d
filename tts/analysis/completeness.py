"""How complete a results folder is: cells finished, failed, corrupt and still missing, per configuration.

Why: `tts analyze` must give a clear answer on any folder state (a sweep that is still running, one whose cells
all failed, one with corrupt files), not a traceback or a table that silently rests on part of the grid. The
facts come from the manifest (one line per written cell, with its status and config) and `sweep.yaml` (how many
cells the sweep expands to), so nothing here reads the Parquet files. A configuration (`config_id`: every field
but the seed) is *incomplete* when one of its cells failed or is corrupt; a sweep is *unfinished* when fewer
cells are recorded than it expands to. Tables flag incomplete configurations; their figures rest on fewer
problems or seeds than the others.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tts import identity
from tts.store import SweepStore, sweep_dirs

_CELLS_LINE = re.compile(r"^cells:\s*(\d+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class FolderState:
    """What a sweep folder holds. `expected` is None when there is no sweep.yaml (files copied by hand)."""

    expected: int | None
    ok: int
    failed: int
    corrupt: int
    errors: list[tuple[str, int]] = field(
        default_factory=list
    )  # first error line -> cells, most common first
    incomplete: dict[str, str] = field(default_factory=dict)  # config_id -> "k of n cells failed/corrupt"

    @property
    def missing(self) -> int | None:
        """Cells of the sweep with no file at all (not started, or the run was stopped)."""
        if self.expected is None:
            return None
        return max(0, self.expected - self.ok - self.failed - self.corrupt)

    @property
    def complete(self) -> bool:
        return not (self.failed or self.corrupt or self.missing)

    def lines(self) -> list[str]:
        """One line per fact, for the console and report.md."""
        total = f" of {self.expected}" if self.expected is not None else ""
        out = [f"{self.ok}{total} cells finished, {self.failed} failed, {self.corrupt} corrupt"]
        if self.missing:
            out[0] += (
                f", {self.missing} not computed yet (an unfinished sweep: rerun its `tts sweep` command)"
            )
        for error, count in self.errors[:3]:
            out.append(f"{count} cell(s) failed with: {error}")
        if self.incomplete:
            out.append(
                f"{len(self.incomplete)} configuration(s) incomplete (some cells failed or are corrupt): "
                "marked (incomplete) in the tables"
            )
        return out


def expected_cells(root: Path) -> int | None:
    """The cell count `tts sweep` wrote into sweep.yaml (`cells: N`), or None."""
    path = root / "sweep.yaml"
    if not path.is_file():
        return None
    match = _CELLS_LINE.search(path.read_text())
    return int(match.group(1)) if match else None


def folder_state(root: str | Path) -> FolderState:
    """Count the cells by status from the manifests (each file sha256-checked) and sweep.yaml, for one sweep
    folder or a folder of sweeps (tts.store.sweep_dirs). `expected` is None unless every sweep states it."""
    ok = failed = corrupt = 0
    expected: int | None = 0
    errors: Counter[str] = Counter()
    per_config: dict[str, list[bool]] = {}
    for folder in sweep_dirs(root):
        store = SweepStore(folder)
        for (kind, _eid), entry in store.entries().items():
            if kind != "cell":
                continue
            usable = store.problem(entry) is None
            corrupt += not usable
            ok += usable and entry.status == "ok"
            if usable and entry.status != "ok":
                failed += 1
                errors[_first_error(entry.meta)] += 1
            if entry.config:
                per_config.setdefault(identity.configuration_id(entry.config), []).append(
                    usable and entry.status == "ok"
                )
        stated = expected_cells(folder)
        expected = None if expected is None or stated is None else expected + stated
    incomplete = {
        cid: f"{flags.count(False)} of {len(flags)} cells failed or corrupt"
        for cid, flags in per_config.items()
        if not all(flags)
    }
    return FolderState(expected, ok, failed, corrupt, errors.most_common(), incomplete)


def _first_error(meta: dict) -> str:
    errors = meta.get("errors") or []
    text = str(meta.get("error") or (errors[-1] if errors else "") or "(no error recorded)")
    return text.strip().splitlines()[0][:200] if text.strip() else "(no error recorded)"
