"""More engines than the cluster holds at once (tts.runtime.engine_pool `make_room`): the sweep finishes.

2 policies x 2 PRMs on a local Ray of 2 CPUs, each engine needing 1: at most two engines are up at a time. Before
`make_room`, the sweep stalled for ever after the first (policy, PRM) group: both held engines were still needed
by later groups, and every other engine waited for a CPU. A pair that can never run side by side fails its cells
with a message naming the fix instead of waiting. Fake engines (tts.testing.fake_actors) in real Ray actors, in a
subprocess with its own 2-CPU Ray; a stall shows as the subprocess's timeout.
"""

from __future__ import annotations

import pytest

from tests.fixtures.ray_cluster import run_isolated

pytestmark = pytest.mark.integration

CODE = r"""
import json, tempfile
from tts.grid import expand
from tts.runtime.driver import run_sweep
from tts.store import load
from tts.testing.fake_actors import FakeEngineBuilder

def sweep(name, *extra):
    out = tempfile.mkdtemp()
    grid = expand([f"results_dir={out}", f"sweep.name={name}", "engine=cpu", "cluster.num_cpus=2",
                   "dataset=chain", "dataset.levels=[1]", "dataset.per_level=2", "strategy=best_of_n", "n=2",
                   *extra])
    s = run_sweep(grid, builder=FakeEngineBuilder(error_rate=0.0), live=False)
    df = load(f"{out}/{name}")
    errors = sorted(set(df.loc[df["status"] == "failed", "error"].astype(str)))
    return {"cells": len(grid.cells), "computed": s.computed, "failed": s.failed, "loads": s.engine_loads,
            "errors": errors}

res = {
    "crossed": sweep("room", "policy=zoo_policy_s,zoo_policy_m", "prm=zoo_prm_s,zoo_prm_l"),
    "too_big": sweep("too_big", "policy=zoo_policy_s", "prm=zoo_prm_s", "engine.num_cpus=2"),
}
print(json.dumps(res))
"""


@pytest.fixture(scope="module")
def result() -> dict:
    return run_isolated(CODE, timeout=240)


def test_two_policies_by_two_prms_finish_with_room_for_two_engines(result: dict) -> None:
    crossed = result["crossed"]
    assert crossed["cells"] == 4 and crossed["computed"] == 4 and crossed["failed"] == 0, crossed
    assert 4 <= crossed["loads"] <= 6, crossed  # each engine once, plus at most one reload per PRM


def test_a_pair_that_never_fits_fails_its_cells_naming_the_fix(result: dict) -> None:
    too_big = result["too_big"]
    assert too_big["computed"] == 0 and too_big["failed"] == 1, too_big
    (error,) = too_big["errors"]
    assert "cannot start beside" in error and "cluster.num_cpus" in error
