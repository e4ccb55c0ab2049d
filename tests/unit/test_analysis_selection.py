"""Held-out selection: a winner picked from noise shows a gain in-sample and none held-out; a truly better
configuration is still found; CIs redo the selection inside each bootstrap resample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tts.analysis.selection import assign_folds
from tts.analysis.settings import AnalysisConfig
from tts.analysis.source import from_rows
from tts.analysis.tables import candidates, generation_matched
from tts.testing.noisy import noisy_configs

CFG = AnalysisConfig(baselines={"base": "baseline"}, replicates=400, min_fold_problems=10)


def _table(rows: pd.DataFrame) -> pd.Series:
    data = from_rows(rows)
    gen = generation_matched(candidates(data, charge=False), data, CFG)
    assert len(gen) == 1  # one group, one budget (N = 4)
    return gen.iloc[0]


def test_noise_winner_gains_in_sample_and_not_held_out() -> None:
    rows = noisy_configs(configs=30, problems=200, accuracy=0.5, seed=3)
    truth = rows.groupby("config.strategy.width")["true_p"].mean()
    assert truth.max() - truth.min() < 1e-12  # every configuration is equally good
    row = _table(rows)
    true_acc = truth.iloc[0]
    # in-sample: the argmax of 30 noisy estimates sits well above the truth; its CI (selection redone in
    # every resample) is of the maximum, so it need not cover the truth
    assert row["in_sample"] - true_acc > 0.03
    assert row["optimism"] > 0.03
    # held-out: no gain; the truth is inside the held-out CI, and so is a zero gain over the baseline
    assert row["ci_low"] <= true_acc <= row["ci_high"]
    assert row["gain_low:base"] <= 0.0 <= row["gain_high:base"]
    assert row["fold_ok"] and row["fold_problems"] == 100 and row["candidates"] == 30


def test_truly_better_configuration_is_found_held_out() -> None:
    rows = noisy_configs(configs=30, problems=400, accuracy=0.5, better={7: 0.15}, seed=4)
    row = _table(rows)
    winner = rows.loc[rows["strategy"] == row["strategy"]]
    assert row["hyperparams"].endswith("width=7"), row["hyperparams"]
    assert row["fold_agree"]  # both folds chose it too
    true_best = rows.loc[rows["config.strategy.width"] == 7, "true_p"].mean()
    assert row["ci_low"] <= true_best <= row["ci_high"]
    assert row["gain_low:base"] > 0.0  # the held-out gain over the baseline is real (its CI excludes 0)
    assert len(winner)


def test_small_folds_are_flagged() -> None:
    row = _table(noisy_configs(configs=5, problems=12, seed=1))
    assert row["fold_problems"] == 6 and not row["fold_ok"]


def test_folds_are_stable_stratified_and_balanced() -> None:
    probs = pd.DataFrame(
        {
            "policy": "p",
            "problem_id": [f"q{i}" for i in range(101)],
            "bin": np.repeat(list("abcde"), [21, 20, 20, 20, 20]),
        }
    )
    folds = assign_folds(probs, 2)
    again = assign_folds(probs.sample(frac=1.0, random_state=0), 2).reindex(probs.index)
    pd.testing.assert_series_equal(folds, again)  # order of the input does not matter
    per_bin = probs.assign(fold=folds).groupby("bin")["fold"].agg(["sum", "size"])
    assert ((per_bin["size"] - 2 * per_bin["sum"]).abs() <= 1).all()  # each bin split evenly
    assert abs(int(folds.sum()) - 50) <= 1


@pytest.mark.parametrize(
    "field, values",
    [
        ("config.policy.max_tokens", [256, 512]),
        ("config.policy.prompt_template", ["{question}", "Q: {question}"]),
        ("config.prm.format", ["qwen_math_prm", "rlhflow"]),
        ("config.dataset.levels", ["[1]", "[1, 5]"]),
        ("config.policy.temperature", [0.7, 0.8]),
    ],
)
def test_cells_differing_in_one_config_field_are_separate_configurations(field, values) -> None:
    one = noisy_configs(configs=2, problems=20, seed=0)
    rows = pd.concat([one.assign(**{field: v}) for v in values], ignore_index=True)
    data = from_rows(rows)
    assert data.stats["config_id"].nunique() == 4  # 2 configurations x 2 values of the field
    gen = generation_matched(candidates(data, charge=False), data, CFG)
    assert gen["candidates"].iloc[0] == 4
    # seeds still pool into one configuration
    seeds = pd.concat([one.assign(**{"config.seed": s}) for s in (0, 1)], ignore_index=True)
    assert from_rows(seeds).stats["config_id"].nunique() == 2


def test_written_config_id_wins_over_the_fallback_hash() -> None:
    rows = noisy_configs(configs=3, problems=10).assign(config_id="abc")
    assert set(from_rows(rows).stats["config_id"]) == {"abc"}
