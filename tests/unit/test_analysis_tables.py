"""Compute-optimal tables on synthetic results with a known answer; bootstrap CI coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tts.analysis.bootstrap import bootstrap_ci, group_cis
from tts.compute import policy_flops, prm_flops
from tts.difficulty import assign_bins
from tts.analysis.keys import ALL_BIN
from tts.analysis.source import from_rows
from tts.testing.synthetic import TREE, SyntheticSpec, SynthPolicy, SynthPRM, SynthStrategy, generate
from tts.analysis.tables import candidates, compute_optimal_tables, cross_size, flops_matched

SPEC = SyntheticSpec(
    n_problems=600,
    policies=(SynthPolicy("p-1b", 1_000_000_000, 0.0),),
    prms=(SynthPRM("prm", "vllm_pooling", 1_000_000_000, 0.9),),
    strategies=(
        SynthStrategy("majority_vote"),
        SynthStrategy("best_of_n"),
        SynthStrategy("beam_search", TREE),
    ),
    budgets=(4, 16),
    seeds=(0, 1, 2, 3),
)


@pytest.fixture(scope="module")
def world():
    res = generate(SPEC, seed=1)
    bins = assign_bins(res.samples, "oracle_quantile")
    tables = compute_optimal_tables(from_rows(res.cells, bins), ci=0.9, replicates=400)
    truth = res.truth.merge(
        res.cells[["cell_id", "problem_id", "strategy", "n"]].drop_duplicates(), on=["cell_id", "problem_id"]
    )
    truth = truth.merge(bins[["problem_id", "bin"]], on="problem_id")
    true_acc = truth.groupby(["bin", "n", "strategy"])["q"].mean().unstack()
    return res, bins, tables, true_acc


def test_table_picks_the_known_optimal_strategy_per_bin(world) -> None:
    _, _, tables, true_acc = world
    gen = tables.generation[tables.generation["bin"] != ALL_BIN].set_index(["bin", "n"])
    checked = 0
    for (bin_, n), row in true_acc.iterrows():
        ranked = row.sort_values(ascending=False)
        if ranked.iloc[0] - ranked.iloc[1] > 0.025:  # a clear truth: the table must find it
            assert gen.loc[(bin_, n), "strategy"] == ranked.index[0], (bin_, n, ranked.to_dict())
            checked += 1
    assert checked >= 6
    # the known shape (Snell et al.): majority vote on the easiest bin, search on the hardest
    assert set(gen.loc["1", "strategy"]) == {"majority_vote"}
    assert set(gen.loc["5", "strategy"]) == {"beam_search"}


def test_gains_and_ci_columns(world) -> None:
    _, _, tables, true_acc = world
    gen = tables.generation
    np.testing.assert_allclose(gen["gain_vs_best_of_n"], gen["accuracy"] - gen["best_of_n"])
    np.testing.assert_allclose(gen["gain_vs_majority"], gen["accuracy"] - gen["majority_vote"])
    assert (gen["ci_low"] <= gen["accuracy"]).all() and (gen["accuracy"] <= gen["ci_high"]).all()
    hard = gen[(gen["bin"] == "5") & (gen["n"] == 16)].iloc[0]
    assert hard["gain_vs_majority"] > 0.2  # search is far ahead of voting on hard problems
    assert hard["ci_low"] <= true_acc.loc[("5", 16), "beam_search"] <= hard["ci_high"]


def test_flops_match_hand_computation(world) -> None:
    res, bins, tables, _ = world
    row = res.cells.iloc[123]
    hand = policy_flops(row.policy_params, row.tokens_in, row.tokens_cached, row.tokens_out) + prm_flops(
        row.prm_params, row.prm_tokens
    )
    assert row.flops == pytest.approx(hand)
    # a table row's FLOPs = the mean over its bin's problems x seeds of the rows' FLOPs
    pick = tables.generation[(tables.generation["bin"] == "3") & (tables.generation["n"] == 16)].iloc[0]
    mine = res.cells.merge(bins[["problem_id", "bin"]], on="problem_id")
    mine = mine[(mine["bin"] == "3") & (mine["n"] == 16) & (mine["strategy"] == pick["strategy"])]
    assert pick["flops"] == pytest.approx(mine["flops"].mean())
    assert pick["accuracy"] == pytest.approx(
        mine["expected_correct"].fillna(mine["correct"].astype(float)).mean()
    )


def test_flops_matched_is_the_best_within_budget(world) -> None:
    res, bins, tables, _ = world
    cands = candidates(from_rows(res.cells, bins))
    flo = tables.flops
    assert (flo["flops_charged"] <= flo["flops_budget"]).all()
    for _, row in flo.sample(20, random_state=0).iterrows():  # brute force
        fit = cands[(cands["bin"] == row["bin"]) & (cands["flops_charged"] <= row["flops_budget"])]
        assert row["accuracy"] == pytest.approx(fit["accuracy"].max())
    for _, grp in flo.groupby("bin"):
        assert grp.sort_values("flops_budget")["accuracy"].is_monotonic_increasing
    budgets = np.log2(flo["flops_budget"].unique())
    np.testing.assert_allclose(budgets, np.round(budgets))  # a log2 grid


def _stats(rows: list[dict]) -> pd.DataFrame:
    base = {
        "prm": "r",
        "prm_kind": "rule_arithmetic",
        "prm_params": 0,
        "dataset": "d",
        "aggregation": "last",
        "temperature": 0.8,
        "beam_width": np.nan,
        "max_steps": np.nan,
        "lookahead": np.nan,
        "bin": ALL_BIN,
        "config_id": 0,
        "flops_charged": 0.0,
        "hyperparams": "",
        "binning_flops": 0.0,
    }
    df = pd.DataFrame([{**base, **r} for r in rows])
    df["config_id"] = np.arange(len(df))
    df["flops_charged"] = df["flops"]
    return df


def test_cross_size_smallest_matching_policy_and_flops_ratio() -> None:
    fields = ("policy", "policy_params", "strategy", "n", "accuracy", "flops")
    table = [
        ("big", 7e9, "majority_vote", 1, 0.60, 1e12),
        ("mid", 1e9, "majority_vote", 1, 0.40, 2e11),
        ("mid", 1e9, "beam_search", 16, 0.65, 4e12),
        ("tiny", 1e8, "majority_vote", 1, 0.20, 1e10),
        ("tiny", 1e8, "best_of_n", 64, 0.61, 5e11),
        ("tiny", 1e8, "beam_search", 64, 0.70, 9e11),
    ]
    s = _stats([dict(zip(fields, row, strict=True)) for row in table])
    out = cross_size(s).set_index("large_policy")
    assert out.loc["big", "policy"] == "tiny" and out.loc["big", "strategy"] == "best_of_n"  # cheapest match
    assert out.loc["big", "flops_ratio"] == pytest.approx(0.5)
    assert out.loc["mid", "policy"] == "tiny" and out.loc["mid", "strategy"] == "best_of_n"
    assert "tiny" not in out.index  # nothing smaller to compare with


def test_prm_free_configurations_join_every_prm_group(world) -> None:
    res, bins, _, _ = world
    free = res.cells[res.cells["strategy"] == "majority_vote"].assign(
        prm="none", prm_kind="none", prm_params=0
    )
    rows = pd.concat([res.cells[res.cells["strategy"] != "majority_vote"], free], ignore_index=True)
    gen = compute_optimal_tables(from_rows(rows, bins), replicates=50).generation
    easy = gen[(gen["prm"] == "prm") & (gen["bin"] == "1")]
    assert set(easy["strategy"]) == {"majority_vote"} and easy["majority_vote"].notna().all()
    with pytest.raises(ValueError, match="grid_step"):
        flops_matched(candidates(from_rows(rows, bins)), grid_step=0)


def test_bootstrap_ci_covers_the_truth_at_the_stated_rate() -> None:
    rng = np.random.default_rng(2024)
    covered = 0
    for draw in range(200):  # problems drawn from a population with mean accuracy 0.4
        q = rng.beta(2, 3, size=150)
        y = (rng.random(150) < q).astype(float)
        low, high = bootstrap_ci(y, ci=0.9, replicates=400, seed=draw)
        covered += bool(low[0] <= 0.4 <= high[0])
    assert 0.85 <= covered / 200 <= 0.95


def test_group_cis_handle_seeds_and_missing_problems() -> None:
    vals = pd.DataFrame(
        {"config_id": [1, 1, 2], "problem_id": ["a", "b", "a"], "y_sum": [2.0, 0.0, 1.0], "rows": [2, 2, 1]}
    )
    cis = group_cis(["a", "b", "c"], vals, levels=[0.95], replicates=200, seed=0, key="k").set_index(
        "config_id"
    )
    assert cis.loc[1, "ci_low"] <= 0.5 <= cis.loc[1, "ci_high"]
    assert cis.loc[2, "ci_low"] == cis.loc[2, "ci_high"] == 1.0  # its only problem is always right
    again = group_cis(["c", "b", "a"], vals, levels=[0.95], replicates=200, seed=0, key="k").set_index(
        "config_id"
    )
    pd.testing.assert_frame_equal(cis, again)  # member order does not matter; seeded
    with pytest.raises(ValueError, match="ci"):
        bootstrap_ci(np.ones(3), ci=1.5)
