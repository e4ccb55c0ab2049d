"""Cells for the runtime's planning tests: the smollm2 preset (1 policy, a judge and a rule PRM, 12 + 12 pool
cells and 5 search cells) at two problems per level."""

from __future__ import annotations

import pytest

from tts.grid import Cell, expand
from tts.runtime.plan import Problems


@pytest.fixture(scope="session")
def smollm2_cells() -> list[Cell]:
    return list(expand(["+sweep=smollm2", "dataset.per_level=2"]).cells)


@pytest.fixture(scope="session")
def problems(smollm2_cells: list[Cell]) -> Problems:
    p = Problems()
    p.load(smollm2_cells)
    return p
