"""tts.grid: presets and command-line sweeps expand into validated cells with stable ids."""

from __future__ import annotations

from dataclasses import asdict, replace

import pytest

from tts.config import ConfigError
from tts.grid import Cell, cell_id, expand
from tts.identity import cell_fields


@pytest.fixture(scope="module")
def smoke() -> list[Cell]:
    return list(expand(["+sweep=smollm2"]).cells)


def test_smoke_preset_expands_to_29_cells_with_unique_ids(smoke: list[Cell]) -> None:
    assert len(smoke) == 29
    assert len({c.id for c in smoke}) == 29
    assert {c.strategy for c in smoke} == {"majority_vote", "best_of_n", "weighted_best_of_n", "beam_search"}
    assert {c.config.prm.name for c in smoke} == {"rule-arithmetic", "judge-smollm2-135m"}
    assert sorted({c.n for c in smoke if c.strategy == "best_of_n"}) == [1, 2, 4, 8]
    beams = [c for c in smoke if c.strategy == "beam_search"]
    assert sorted(c.n for c in beams) == [2, 2, 4, 4, 8]  # rule-based at 2, 4, 8; judge at 2, 4
    assert all(c.n % c.config.strategy.beam_width == 0 for c in beams)
    assert all(len(set(c.config.dataset.levels)) >= 2 for c in smoke)


def test_cell_id_is_the_hash_of_the_semantic_config(smoke: list[Cell]) -> None:
    cell = smoke[0]
    assert cell.id == cell_id(cell.config)
    moved = replace(cell.config, results_dir="/elsewhere", cluster=replace(cell.config.cluster, mode="ray"))
    assert cell_id(moved) == cell.id  # where results go and how Ray is reached do not change results
    more = replace(cell.config, n=cell.config.n + 1)
    assert cell_id(more) != cell.id
    assert "results_dir" not in cell_fields(asdict(cell.config))
    assert "difficulty" not in cell_fields(asdict(cell.config))  # no bin restriction: analysis-time choice


def test_ids_are_stable_across_expansions_and_override_order() -> None:
    a = expand(["strategy=best_of_n", "n=1,4", "seed=3"])
    b = expand(["seed=3", "n=1,4", "strategy=best_of_n", "results_dir=/tmp/x"])
    assert [c.id for c in a.cells] == [c.id for c in b.cells]
    assert [c.n for c in a.cells] == [1, 4]


def test_user_sweep_replaces_axis_and_plain_override_removes_it() -> None:
    swept = expand(["+sweep=smollm2", "n=2,4", "prm=rule_arithmetic"])
    assert sorted({c.n for c in swept.cells}) == [2, 4]
    assert {c.config.prm.name for c in swept.cells} == {"rule-arithmetic"}
    assert (
        len(swept.cells) == 3 * 2 + 2
    )  # sampling strategies x 2 budgets + rule-based beam search x 2 budgets
    assert all(dict(c.axes).get("n") in ("2", "4") for c in swept.cells)


def test_range_and_glob_sweeps() -> None:
    ranged = expand(["n=range(1,4)"])
    assert [c.n for c in ranged.cells] == [1, 2, 3]
    globbed = expand(["strategy=glob(*,exclude=budget_forcing)", "n=4"])  # it needs a thinking policy
    names = sorted(c.strategy for c in globbed.cells)
    assert names == sorted(
        [
            "adaptive_majority",
            "beam_search",
            "best_of_n",
            "dvts",
            "lookahead",
            "majority_vote",
            "particle_filtering",
            "rebase",
            "sequential_revision",
            "weighted_best_of_n",
        ]
    )


def test_a_bad_cell_fails_naming_field_and_cell() -> None:
    with pytest.raises(ConfigError) as err:
        expand(["+sweep=smollm2", "n=1,2"])
    msg = str(err.value)
    assert msg.startswith("n:"), msg
    assert "multiple of strategy.beam_width" in msg and "strategy=beam_search" in msg and "n=1" in msg


def test_smoke_preset_is_the_zoo_with_three_bins_of_45_problems() -> None:
    """sweeps/smoke.yaml: two zoo policies, the strong and the weak verifier, the BoN family at N = 1..16 and
    beam search (strong verifier only), levels 2/4/6 with 45 problems each (a 95% CI of about +-0.15 at
    p = 0.5)."""
    cells = list(expand(["+sweep=smoke"]).cells)
    assert {c.config.policy.model for c in cells} == {"embedded:zoo-policy-m", "embedded:zoo-policy-l"}
    assert {c.config.prm.name for c in cells} == {"zoo-judge-l", "zoo-prm-s"}
    assert {c.config.prm.name for c in cells if c.strategy == "beam_search"} == {"zoo-judge-l"}
    assert {c.strategy for c in cells} == {"majority_vote", "best_of_n", "weighted_best_of_n", "beam_search"}
    assert max(c.n for c in cells) == 16
    assert all(
        tuple(c.config.dataset.levels) == (2, 4, 6) and c.config.dataset.per_level == 45 for c in cells
    )
