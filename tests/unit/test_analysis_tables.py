"""Compute-optimal tables on synthetic results with a known answer; budgets from actual spend; cross-size;
bootstrap CI coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tts.analysis.bootstrap import bootstrap_ci
from tts.analysis.keys import ALL_BIN
from tts.analysis.settings import AnalysisConfig
from tts.analysis.source import from_rows
from tts.analysis.tables import candidates, compute_optimal_tables, cross_size, generation_matched
from tts.compute import policy_flops, prm_flops
from tts.difficulty import assign_bins
from tts.testing.noisy import noisy_configs
from tts.testing.synthetic import TREE, SyntheticSpec, SynthPolicy, SynthPRM, SynthStrategy, generate

CFG = AnalysisConfig(
    baselines={"best-of-N": "best_of_n", "majority": "majority_vote"},
    replicates=200,
    ci=0.9,
    charge_binning=False,
)

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
    tables = compute_optimal_tables(from_rows(res.cells, bins), CFG)
    truth = res.truth.merge(
        res.cells[["cell_id", "problem_id", "strategy", "n"]].drop_duplicates(), on=["cell_id", "problem_id"]
    )
    truth = truth.merge(bins[["problem_id", "bin"]], on="problem_id")
    true_acc = truth.groupby(["bin", "n", "strategy"])["q"].mean()
    return res, bins, tables, true_acc


def test_table_picks_the_known_optimal_strategy_per_bin(world) -> None:
    _, _, tables, true_acc = world
    gen = tables.generation[tables.generation["bin"] != ALL_BIN].set_index(["bin", "budget"])
    checked = 0
    for (bin_, budget), row in gen.iterrows():
        truth = true_acc.loc[bin_]
        ranked = truth[truth.index.get_level_values("n") <= budget].sort_values(ascending=False)
        if ranked.iloc[0] - ranked.iloc[1] > 0.025:  # a clear truth: held-out selection must find it
            assert (row["n"], row["strategy"]) == ranked.index[0], (bin_, budget, ranked.head(3).to_dict())
            checked += 1
    assert checked >= 6
    # the known shape (Snell et al.): majority vote on the easiest bin, search on the hardest
    assert set(gen.loc["1", "strategy"]) == {"majority_vote"}
    assert set(gen.loc["5", "strategy"]) == {"beam_search"}


def test_gains_and_ci_columns(world) -> None:
    _, _, tables, true_acc = world
    gen = tables.generation
    np.testing.assert_allclose(gen["gain:best-of-N"], gen["accuracy"] - gen["base:best-of-N"])
    np.testing.assert_allclose(gen["gain:majority"], gen["accuracy"] - gen["base:majority"])
    assert (gen["ci_low"] <= gen["accuracy"]).all() and (gen["accuracy"] <= gen["ci_high"]).all()
    hard = gen[(gen["bin"] == "5") & (gen["budget"] == 16)].iloc[0]
    assert hard["gain_low:majority"] > 0.1  # search is far ahead of voting on hard problems, held out
    assert hard["ci_low"] <= true_acc.loc[("5", 16, "beam_search")] <= hard["ci_high"]
    assert gen["fold_ok"].all()  # 120 problems a bin: 60 a fold


def test_flops_match_hand_computation(world) -> None:
    res, bins, tables, _ = world
    row = res.cells.iloc[123]
    hand = policy_flops(row.policy_params, row.tokens_in, row.tokens_cached, row.tokens_out) + prm_flops(
        row.prm_params, row.prm_tokens
    )
    assert row.flops == pytest.approx(hand)
    # a table row's FLOPs = the mean over its bin's problems x seeds of the rows' FLOPs
    pick = tables.generation[(tables.generation["bin"] == "3") & (tables.generation["budget"] == 16)].iloc[0]
    mine = res.cells.merge(bins[["problem_id", "bin"]], on="problem_id")
    mine = mine[(mine["bin"] == "3") & (mine["n"] == pick["n"]) & (mine["strategy"] == pick["strategy"])]
    assert pick["flops"] == pytest.approx(mine["flops"].mean())
    assert pick["in_sample"] == pytest.approx(
        mine["expected_correct"].fillna(mine["correct"].astype(float)).mean()
    )


def test_flops_matched_is_the_best_within_budget(world) -> None:
    res, bins, tables, _ = world
    cands = candidates(from_rows(res.cells, bins), charge=False)
    flo = tables.flops
    assert (flo["flops_charged"] <= flo["flops_budget"]).all()
    for _, row in flo.sample(20, random_state=0).iterrows():  # brute force: the in-sample pick is the max
        fit = cands[(cands["bin"] == row["bin"]) & (cands["flops_charged"] <= row["flops_budget"])]
        assert row["in_sample"] == pytest.approx(fit["accuracy"].max())
    for _, grp in flo.groupby("bin"):
        assert grp.sort_values("flops_budget")["in_sample"].is_monotonic_increasing
    budgets = np.log2(flo["flops_budget"].unique())
    np.testing.assert_allclose(budgets, np.round(budgets))  # a log2 grid


def test_generation_budget_is_matched_on_actual_generations() -> None:
    rows = noisy_configs(configs=3, problems=60, better={2: 0.3}, seed=0)
    rows.loc[rows["config.strategy.width"] == 2, "generations"] = 12  # e.g. lookahead: N(k+1) at n=4
    data = from_rows(rows)
    gen = generation_matched(candidates(data, charge=False), data, CFG)
    assert gen["budget"].tolist() == [4.0]  # the sweep's N values
    assert gen.iloc[0]["candidates"] == 2 and not gen.iloc[0]["hyperparams"].endswith("width=2")


def _cell(policy: str, params: float, strategy: str, n: int, acc: float, flops: float) -> pd.DataFrame:
    """40 problems at exactly `acc` (expected_correct): every fold sees the same accuracy."""
    return pd.DataFrame(
        {
            "problem_id": [f"q{i}" for i in range(40)],
            "policy": policy,
            "policy_params": params,
            "prm": "r",
            "prm_kind": "rule_arithmetic",
            "prm_params": 0,
            "dataset": "d",
            "strategy": strategy,
            "n": n,
            "correct": acc > 0.5,
            "expected_correct": acc,
            "generations": n,
            "flops": flops,
            "config.policy.name": policy,
            "config.strategy.name": strategy,
            "config.n": n,
        }
    )


def test_cross_size_smallest_matching_policy_and_flops_ratio() -> None:
    table = [
        ("big", 7e9, "majority_vote", 1, 0.60, 1e12),
        ("mid", 1e9, "majority_vote", 1, 0.40, 2e11),
        ("mid", 1e9, "beam_search", 16, 0.65, 4e12),
        ("tiny", 1e8, "majority_vote", 1, 0.20, 1e10),
        ("tiny", 1e8, "best_of_n", 64, 0.61, 5e11),
        ("tiny", 1e8, "beam_search", 64, 0.70, 9e11),
    ]
    data = from_rows(pd.concat([_cell(*row) for row in table], ignore_index=True))
    out = cross_size(candidates(data, charge=False), data, CFG).set_index("large_policy")
    assert out.loc["big", "policy"] == "tiny" and out.loc["big", "strategy"] == "best_of_n"  # cheapest match
    assert out.loc["big", "flops_ratio"] == pytest.approx(0.5)
    assert out.loc["big", "gap"] == pytest.approx(0.01) and out.loc["big", "accuracy"] == pytest.approx(0.61)
    assert out.loc["mid", "policy"] == "tiny" and out.loc["mid", "strategy"] == "best_of_n"
    assert "tiny" not in out.index  # nothing smaller to compare with


def test_cross_size_lists_one_single_sample_reached_by_several_strategies_once() -> None:
    table = [
        ("big", 7e9, "majority_vote", 1, 0.60, 1e12),
        ("big", 7e9, "best_of_n", 1, 0.60, 1.5e12),  # the same sample at N = 1, scored by a PRM: costlier
        (
            "big",
            7e9,
            "weighted_best_of_n",
            1,
            0.55,
            1.5e12,
        ),  # another sample (differs): a reference of its own
        ("tiny", 1e8, "best_of_n", 64, 0.61, 5e11),
    ]
    data = from_rows(pd.concat([_cell(*row) for row in table], ignore_index=True))
    out = cross_size(candidates(data, charge=False), data, CFG)
    assert sorted(out["large_accuracy"].round(2)) == [0.55, 0.60]
    assert out.loc[out["large_accuracy"].round(2) == 0.60, "large_strategy"].tolist() == ["majority_vote"]


def test_prm_free_configurations_join_every_prm_group(world) -> None:
    res, bins, _, _ = world
    free = res.cells[res.cells["strategy"] == "majority_vote"].assign(
        prm="none", prm_kind="none", prm_params=0, **{"config.prm.name": "none"}
    )
    rows = pd.concat([res.cells[res.cells["strategy"] != "majority_vote"], free], ignore_index=True)
    cfg = AnalysisConfig(baselines=CFG.baselines, replicates=50)
    gen = compute_optimal_tables(from_rows(rows, bins), cfg).generation
    easy = gen[(gen["prm"] == "prm") & (gen["bin"] == "1")]
    assert set(easy["strategy"]) == {"majority_vote"} and easy["base:majority"].notna().all()
    with pytest.raises(ValueError, match="grid_step"):
        AnalysisConfig(grid_step=0)


def test_bootstrap_ci_covers_the_truth_at_the_stated_rate() -> None:
    rng = np.random.default_rng(2024)
    covered = 0
    for draw in range(200):  # problems drawn from a population with mean accuracy 0.4
        q = rng.beta(2, 3, size=150)
        y = (rng.random(150) < q).astype(float)
        low, high = bootstrap_ci(y, ci=0.9, replicates=400, seed=draw)
        covered += bool(low[0] <= 0.4 <= high[0])
    assert 0.85 <= covered / 200 <= 0.95
    with pytest.raises(ValueError, match="ci"):
        bootstrap_ci(np.ones(3), ci=1.5)


def test_tokens_matched_is_the_best_within_each_generated_tokens_budget() -> None:
    """A long single chain (1 generation, 400 tokens) against short samples (8 x 50 = 400 tokens): matched on
    generated tokens they compete at 512, not before; generation-matched would put the chain at budget 1."""
    from tts.analysis.tables import tokens_matched

    table = [
        ("p", 1e8, "budget_forcing", 1, 0.70, 1e10),
        ("p", 1e8, "majority_vote", 8, 0.60, 1e10),
        ("p", 1e8, "majority_vote", 1, 0.30, 1e9),
    ]
    rows = pd.concat([_cell(*row) for row in table], ignore_index=True)
    rows["tokens_out"] = np.select(
        [rows["strategy"] == "budget_forcing", rows["n"] == 8], [400.0, 400.0], default=50.0
    )
    data = from_rows(rows)
    tok = tokens_matched(candidates(data, charge=False), data, CFG).set_index("tokens_budget")
    assert tok.loc[64.0, "strategy"] == "majority_vote" and tok.loc[64.0, "n"] == 1
    assert tok.loc[512.0, "strategy"] == "budget_forcing" and tok.loc[512.0, "tokens_out"] == 400
    assert tok.loc[512.0, "accuracy"] == pytest.approx(0.70)
