"""The sequential/parallel ratio tables (tts.analysis.revisions) on planted results: easy problems best served
by one long chain of revisions, hard ones by a mix (the shape Snell et al. report), with margins wide enough
that the held-out choice is right by construction."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from tts.analysis.revisions import ratio_tables, sequential
from tts.analysis.settings import AnalysisConfig
from tts.analysis.source import from_rows
from tts.analysis.tables import candidates, generation_matched

CFG = AnalysisConfig(baselines={}, replicates=200, ci=0.9, charge_binning=False)
N = 8
PLANTED = {  # bin -> accuracy per P (parallel chains of N / P attempts)
    "easy": {1: 0.95, 2: 0.80, 4: 0.60, 8: 0.50},
    "hard": {1: 0.10, 2: 0.30, 4: 0.70, 8: 0.40},
}
PROBLEMS = 100  # per bin


def _u(*parts: object) -> float:
    return int.from_bytes(hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()) / 2**64


def _rows(extra_strategy: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    frames, bins = [], []
    for b, accs in PLANTED.items():
        ids = [f"{b}{i}" for i in range(PROBLEMS)]
        bins.append(pd.DataFrame({"policy": "pol", "problem_id": ids, "method": "planted", "bin": b}))
        for p, acc in accs.items():
            frames.append(
                pd.DataFrame(
                    {
                        "problem_id": ids,
                        "policy": "pol",
                        "policy_params": 1e6,
                        "prm": "r",
                        "prm_kind": "vllm_pooling",
                        "prm_params": 1e6,
                        "dataset": "d",
                        "strategy": "sequential_revision",
                        "n": N,
                        "correct": [_u(b, p, i) < acc for i in range(PROBLEMS)],
                        "generations": N,
                        "flops": 1e9,
                        "config.policy.name": "pol",
                        "config.strategy.name": "sequential_revision",
                        "config.strategy.parallel": p,
                        "config.strategy.final_selection": "weighted",
                        "config.n": N,
                    }
                )
            )
        if extra_strategy:  # a non-sequential strategy is not a split of N
            frames.append(frames[-1].assign(**{"strategy": "best_of_n", "config.strategy.name": "best_of_n"}))
            frames[-1] = frames[-1].drop(
                columns=["config.strategy.parallel", "config.strategy.final_selection"]
            )
    return pd.concat(frames, ignore_index=True), pd.concat(bins, ignore_index=True)


@pytest.fixture(scope="module")
def tables():
    rows, bins = _rows(extra_strategy=True)
    data = from_rows(rows, bins)
    s = candidates(data, charge=False)
    return s, data, ratio_tables(s, data, CFG)


def test_only_sequential_configurations_with_their_ratio(tables) -> None:
    s, data, _ = tables
    seq = sequential(s, data)
    assert set(seq["strategy"]) == {"sequential_revision"}
    got = seq.drop_duplicates("parallel").set_index("parallel")
    assert got.loc[1, "ratio"] == 8 and got.loc[2, "ratio"] == 2 and got.loc[8, "ratio"] == 1 / 8
    assert got.loc[4, "attempts"] == 2
    assert seq["setting"].nunique() == 1 and "parallel" not in seq["setting"].iloc[0]


def test_the_held_out_ratio_per_bin_is_the_planted_best(tables) -> None:
    _, _, (table, winners) = tables
    w = winners[winners["bin"] != "all"].set_index("bin")
    assert w.loc["easy", "parallel"] == 1 and w.loc["hard", "parallel"] == 4
    assert w.loc["hard", "ratio"] == pytest.approx(0.5)
    for b, accs in PLANTED.items():
        assert w.loc[b, "ci_low"] <= w.loc[b, "accuracy"] <= w.loc[b, "ci_high"]
        assert w.loc[b, "accuracy"] == pytest.approx(max(accs.values()), abs=0.12)
        assert w.loc[b, "gain"] == pytest.approx(max(accs.values()) - accs[N], abs=0.15)  # vs all parallel
    easy = table[table["bin"] == "easy"].set_index("parallel")
    assert len(easy) == 4 and easy["chosen"].sum() == 1 and easy.loc[1, "chosen"]
    assert (easy["problems"] == PROBLEMS).all()
    assert (easy["ci_low"] <= easy["accuracy"]).all() and (easy["accuracy"] <= easy["ci_high"]).all()
    assert np.allclose(easy["accuracy"], [PLANTED["easy"][p] for p in easy.index], atol=0.12)


def test_the_ratio_is_a_hyperparameter_of_the_compute_optimal_table(tables) -> None:
    s, data, _ = tables
    gen = generation_matched(s, data, CFG).set_index("bin")
    assert "parallel=4" in gen.loc["hard", "hyperparams"]
    assert "parallel=1" in gen.loc["easy", "hyperparams"]


def test_no_sequential_configuration_gives_empty_tables() -> None:
    rows, bins = _rows()
    rows = rows.assign(strategy="best_of_n")
    data = from_rows(rows, bins)
    table, winners = ratio_tables(candidates(data, charge=False), data, CFG)
    assert table.empty and winners.empty


def test_report_section_and_plot(tables, tmp_path) -> None:
    from tts.analysis.plots import revision_ratio
    from tts.analysis.revisions import report_lines

    _, _, (table, winners) = tables
    text = "\n".join(report_lines(table, winners, 0.9))
    assert "## Sequential revisions vs parallel samples" in text
    assert "| 1 x 8 |" in text and "held-out pick" in text  # easy: one chain of 8 attempts
    assert "| 4 x 2 |" in text
    paths = revision_ratio(table, tmp_path, method="planted")
    assert {p.suffix for p in paths} == {".png", ".svg"} and all(p.stat().st_size > 0 for p in paths)
    assert "_No sequential configurations" in "\n".join(report_lines(pd.DataFrame(), pd.DataFrame(), 0.9))


def test_traits_stored_with_the_results_serve_a_strategy_not_installed(tmp_path) -> None:
    """Traits travel in the cells' manifest entries (the driver writes them): a plugin's sequential cells are
    analysed as sequential where the plugin is not installed; a built-in without stored traits falls back to
    its installed entry; a name neither knows has no trait."""
    import pyarrow as pa

    from tts.analysis.io import strategy_traits
    from tts.analysis.source import AnalysisData
    from tts.store import SweepStore

    store = SweepStore(tmp_path)
    table = pa.table({"cell_id": ["a"], "problem_id": ["p"], "status": ["ok"]})
    traits = {
        "pool_based": False,
        "needs_verifier": False,
        "tree": False,
        "sequential": True,
        "thinking": False,
    }
    store.write("cell", "a", table, config={"strategy": "lab_revise_not_installed"}, meta={"traits": traits})
    store.write("cell", "b", table, config={"strategy": "best_of_n"})
    got = strategy_traits(tmp_path)
    assert got["lab_revise_not_installed"]["sequential"] is True
    assert got["best_of_n"]["pool_based"] is True  # not stored: the installed entry's
    data = AnalysisData(
        stats=pd.DataFrame(), bins=pd.DataFrame(), values=lambda ids=None: pd.DataFrame(), traits=got
    )
    assert data.trait("lab_revise_not_installed", "sequential")
    assert not data.trait("nobody_knows_me", "sequential")
