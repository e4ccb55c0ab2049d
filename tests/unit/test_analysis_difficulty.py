"""Difficulty bins: oracle quantile, absolute thresholds, predicted (no reference answers), dataset level; and
charging the binning's samples to the budget."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tts.analysis.difficulty import bin_counts, bin_warnings, binning_cost, charge_binning
from tts.difficulty import absolute_bins, assign_bins, cross_fit_folds, isotonic_fit, quantile_bins
from tts.results_schema import DIFFICULTY_COLUMNS
from tts.testing.synthetic import SyntheticSpec, SynthPolicy, SynthPRM, samples_frame


def fake_samples(pass_rates: list[float], k: int = 10, policy: str = "p") -> pd.DataFrame:
    """k samples per problem, exactly round(rate * k) of them correct (the first ones)."""
    rows = []
    for i, rate in enumerate(pass_rates):
        for j in range(k):
            rows.append(
                {
                    "policy": policy,
                    "prm": "r",
                    "problem_id": f"q{i:03d}",
                    "dataset": "d",
                    "level": 1 + i % 5,
                    "seed": 0,
                    "sample_idx": j,
                    "correct": j < round(rate * k),
                    "score": rate,
                    "step_scores": [0.5, rate],
                    "tokens_out": 10 + j,
                    "prompt_tokens": 7,
                    "prm_tokens": 20,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def pool() -> pd.DataFrame:
    spec = SyntheticSpec(
        n_problems=300,
        policies=(SynthPolicy("p", 1_000_000, 0.0),),
        prms=(SynthPRM("r", "rule_arithmetic", 0, 0.8),),
        pool_size=16,
    )
    return samples_frame(spec, seed=3)


def test_oracle_quantile_bins_are_monotone_and_balanced() -> None:
    rates = np.linspace(0, 1, 50).round(1).tolist()
    bins = assign_bins(fake_samples(rates), "oracle_quantile", num_bins=5)
    assert list(bins.columns) == list(DIFFICULTY_COLUMNS)
    assert set(bins["bin"]) == {"1", "2", "3", "4", "5"}
    by_bin = bins.groupby("bin")["pass_at_1"]
    assert (
        by_bin.min().sort_index().to_numpy()[:-1] >= by_bin.max().sort_index().to_numpy()[1:]
    ).all()  # 1 easiest
    assert bins.groupby("pass_at_1")["bin"].nunique().max() == 1  # ties share a bin
    assert (bins["samples_used"] == 10).all() and (bins["method"] == "oracle_quantile").all()
    assert quantile_bins(np.arange(10.0), 5).tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]


def test_absolute_thresholds_liu_and_configurable() -> None:
    got = absolute_bins(np.array([0.0, 0.09, 0.1, 0.3, 0.5, 0.51, 1.0]), (0.1, 0.5))
    assert got.tolist() == ["hard", "hard", "medium", "medium", "medium", "easy", "easy"]
    got = absolute_bins(np.array([0.1, 0.3, 0.9]), (0.2, 0.8), labels=["lo", "mid", "hi"])
    assert got.tolist() == ["lo", "mid", "hi"]
    bins = assign_bins(fake_samples([0.0, 0.2, 0.8]), "absolute", thresholds=(0.1, 0.5))
    assert bins["bin"].tolist() == ["hard", "medium", "easy"]
    with pytest.raises(ValueError, match="thresholds"):
        absolute_bins(np.array([0.5]), (0.5, 0.1))


def test_first_k_samples_and_dataset_level() -> None:
    s = fake_samples([0.5, 1.0], k=10)  # problem 0: samples 0-4 correct
    bins = assign_bins(s, "oracle_quantile", num_bins=2, samples_per_problem=4)
    assert bins["pass_at_1"].tolist() == [1.0, 1.0] and (bins["samples_used"] == 4).all()
    dup = pd.concat([s, s])  # the same samples seen twice (two stored pools) count once
    assert (assign_bins(dup, "absolute")["samples_used"] == 10).all()
    lvl = assign_bins(s, "dataset_level")
    assert lvl["bin"].tolist() == ["1", "2"] and (lvl["samples_used"] == 0).all()
    with pytest.raises(ValueError, match="has no level"):
        assign_bins(s.assign(level=None), "dataset_level")
    with pytest.raises(ValueError, match="allowed: dataset_level, oracle_quantile"):
        assign_bins(s, "oracle")


def test_isotonic_fit_is_monotone_least_squares() -> None:
    x, fit = isotonic_fit(np.array([1.0, 2, 3, 4]), np.array([1.0, 3, 2, 4]))
    assert x.tolist() == [1, 2, 3, 4] and fit.tolist() == [1.0, 2.5, 2.5, 4.0]


def _corrupt(df: pd.DataFrame, ids: set[str]) -> pd.DataFrame:
    out = df.copy()
    hit = out["problem_id"].isin(ids)
    out.loc[hit, "correct"] = ~out.loc[hit, "correct"].astype(bool)
    out.loc[hit, "answer"] = "garbage"
    out["reference"] = np.where(hit, "wrong reference", "1")
    out.loc[hit, "text"] = "nonsense"
    return out


def test_predicted_bins_use_no_reference_answers(pool: pd.DataFrame) -> None:
    ids = sorted(pool["problem_id"].unique())
    heldout = pool[pool["problem_id"].isin(ids[:150])]
    target = pool[pool["problem_id"].isin(ids[150:])]
    bins = assign_bins(target, "predicted", heldout=heldout, predicted_scheme="quantile")
    corrupted = assign_bins(
        _corrupt(target, set(ids[150:])), "predicted", heldout=heldout, predicted_scheme="quantile"
    )
    pd.testing.assert_frame_equal(bins, corrupted)
    assert bins["pass_at_1"].isna().all() and (bins["samples_used"] == 16).all()
    # ... yet they track difficulty: predicted bins agree with oracle bins far above chance
    oracle = assign_bins(target, "oracle_quantile")
    both = bins.merge(oracle, on=["policy", "problem_id"])
    close = (both["bin_x"].astype(int) - both["bin_y"].astype(int)).abs() <= 1
    assert close.mean() > 0.75
    # the held-out problems' answers do matter (they set the cut points)
    moved = assign_bins(
        target, "predicted", heldout=_corrupt(heldout, set(ids[:150])), predicted_scheme="quantile"
    )
    assert not moved["bin"].equals(bins["bin"])


def test_predicted_cross_fit_never_reads_a_problems_own_answers(pool: pd.DataFrame) -> None:
    bins = assign_bins(pool, "predicted", folds=2, predicted_scheme="quantile")
    fold0 = {p for p, f in cross_fit_folds(pool["problem_id"].unique(), 2).items() if f == 0}
    assert 140 <= len(fold0) <= 160  # balanced
    again = assign_bins(_corrupt(pool, fold0), "predicted", folds=2, predicted_scheme="quantile")
    mine = bins["problem_id"].isin(fold0)
    pd.testing.assert_frame_equal(bins[mine], again[mine])
    absolute = assign_bins(pool, "predicted", predicted_scheme="absolute", thresholds=(0.1, 0.5))
    assert set(absolute["bin"]) <= {"hard", "medium", "easy"}


def test_binning_cost_and_charge_by_hand() -> None:
    s = fake_samples([0.5, 1.0], k=3)  # tokens_out 10, 11, 12 per problem; prompt 7; PRM 20 per sample
    diff = assign_bins(s, "oracle_quantile", num_bins=2, samples_per_problem=2)
    cost = binning_cost(diff, s)
    assert cost["binning_tokens"].tolist() == [7 + 10 + 11] * 2  # prompt once + the first 2 samples
    assert cost["binning_prm_tokens"].tolist() == [0, 0]  # oracle bins need no PRM
    rows = pd.DataFrame(
        {
            "policy": "p",
            "problem_id": ["q000", "q001"],
            "policy_params": 1000,
            "prm_params": 50,
            "generations": 4,
            "flops": 1e6,
            "flops_policy": 8e5,
        }
    )
    charged = charge_binning(rows, diff, cost)
    assert charged["generations_charged"].tolist() == [6, 6]
    assert charged["binning_flops"].tolist() == [2 * 1000 * 28] * 2
    assert charged["flops_charged"].tolist() == [1e6 + 56_000] * 2
    estimated = charge_binning(rows, diff)  # no pool at hand: samples x policy FLOPs per generation
    assert estimated["binning_flops"].tolist() == [2 * 8e5 / 4] * 2
    pred = assign_bins(s, "predicted")
    assert binning_cost(pred, s)["binning_prm_tokens"].tolist() == [60, 60]  # predicted pays for PRM scoring


def test_snell_predicted_bins_read_no_labels_anywhere(pool: pd.DataFrame) -> None:
    """Snell et al.'s predicted difficulty: quantiles of the mean final score; corrupting every label changes
    nothing, and the bins still track the oracle ones."""
    bins = assign_bins(pool, "predicted")
    corrupted = assign_bins(_corrupt(pool, set(pool["problem_id"])), "predicted")
    pd.testing.assert_frame_equal(bins, corrupted)
    assert sorted(bins["bin"].unique()) == ["1", "2", "3", "4", "5"]
    oracle = assign_bins(pool, "oracle_quantile")
    both = bins.merge(oracle, on=["policy", "problem_id"])
    assert ((both["bin_x"].astype(int) - both["bin_y"].astype(int)).abs() <= 1).mean() > 0.7


def test_ties_stay_in_one_bin_and_empty_bins_are_reported() -> None:
    # 6 of 10 problems tie at pass@1 = 1.0: all in bin 1 (its first member's bin), none split off
    values = np.array([1.0] * 6 + [0.5, 0.4, 0.2, 0.0])
    got = quantile_bins(values, 5)
    assert set(got[:6]) == {1} and got[6:].tolist() == [4, 4, 5, 5]
    bins = pd.DataFrame({"policy": "p", "problem_id": [f"q{i}" for i in range(10)], "bin": got.astype(str)})
    counts = bin_counts(bins, num_bins=5)
    assert counts.set_index("bin")["problems"].to_dict() == {"1": 6, "2": 0, "3": 0, "4": 2, "5": 2}
    lines = bin_warnings(counts)
    assert "policy p: bin 2 is empty (0 problems)" in lines
    assert any(line.startswith("policy p: bin 1 is tiny (6 problems") for line in lines)
