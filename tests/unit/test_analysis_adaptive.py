"""The difficulty-adaptive comparison (tts.analysis.adaptive): the baseline at exactly N = X with its other
hyperparameters chosen held-out, Y and X/Y per replicate, the binning charged once per problem and never in the
curve, the default baselines, the report's section and plot. Worlds from tts.testing.synthetic.binned_world
(stated per-bin accuracies); the paper-level known-answer checks are in tests/conformance/test_snell.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tts.analysis.adaptive import CURVE, allocation, compare, ratio_text, ratios, with_text
from tts.analysis.settings import AnalysisConfig, load_analysis_config
from tts.analysis.source import from_rows
from tts.analysis.tables import candidates
from tts.testing.synthetic import binned_world

CFG = AnalysisConfig(adaptive_baselines={"best-of-N": "best_of_n"}, replicates=200, ci=0.9)


def _data(world):
    return replace(from_rows(world.rows, world.difficulty), binning=world.binning)


def _acc(rows: list[tuple]) -> pd.DataFrame:
    cols = ["strategy", "n", "bin", "q", "aggregation"][: len(rows[0])]
    return pd.DataFrame(rows, columns=cols)


def test_baseline_is_the_strategy_at_exactly_n_not_the_best_up_to_n() -> None:
    # best-of-N over-optimises a weak verifier: N = 16 is worse than N = 4. The baseline at X = 16 is N = 16's
    # accuracy (the old "best configuration with N <= X" gave N = 4's).
    acc = _acc(
        [("best_of_n", n, b, q) for n, q in ((1, 0.4), (4, 0.6), (16, 0.45)) for b in ("1", "2")]
        + [("majority_vote", n, b, 0.3) for n in (4, 16) for b in ("1", "2")]
    )
    world = binned_world(acc, 300, seeds=(0, 1))
    curves = compare(_data(world), CFG).curves.set_index(["curve", "budget"])
    at16, at4 = curves.loc[("best-of-N", 16.0)], curves.loc[("best-of-N", 4.0)]
    assert at16["ci_low"] <= 0.45 <= at16["ci_high"]
    assert at16["ci_high"] < at4["ci_low"]  # not the best configuration with N <= 16
    # the compute-optimal curve still admits every configuration spending <= B
    assert curves.loc[(CURVE, 16.0), "accuracy"] > 0.55


def test_baseline_hyperparameters_are_chosen_held_out_among_n_equal_x() -> None:
    # two aggregations of best-of-N at each N: "last" is the better one; the baseline at X takes it
    acc = _acc(
        [("best_of_n", n, b, q, "last") for n, q in ((2, 0.5), (8, 0.7)) for b in ("1", "2")]
        + [("best_of_n", n, b, q - 0.2, "min") for n, q in ((2, 0.5), (8, 0.7)) for b in ("1", "2")]
    )
    world = binned_world(acc, 300)
    curves = compare(_data(world), CFG).curves.set_index(["curve", "budget"])
    for n, q in ((2.0, 0.5), (8.0, 0.7)):
        row = curves.loc[("best-of-N", n)]
        assert row["ci_low"] <= q <= row["ci_high"], (n, row.to_dict())


def _two_regimes(k_binning: int):
    """Majority vote (cheap) wins the easy bin, beam search (N >= 4) the hard one; best-of-N in between."""
    rows = []
    for k in range(5):
        n = 2**k
        rows += [("best_of_n", n, "1", 0.16 + 0.10 * k), ("best_of_n", n, "2", 0.04 + 0.06 * k)]
        if k >= 1:
            rows += [("majority_vote", n, "1", 0.44 + 0.06 * k), ("majority_vote", n, "2", 0.04 + 0.02 * k)]
        if k >= 2:
            rows += [("beam_search", n, "1", 0.12 + 0.04 * k), ("beam_search", n, "2", 0.10 * k)]
    return binned_world(_acc(rows), 300, seeds=(0, 1), spread=0.04, binning_samples=k_binning)


def test_binning_is_not_charged_in_the_curve_and_charged_once_beside_it() -> None:
    # K = 256 binning samples (snell_prm_search's pool): the old per-configuration charge made every budget
    # below K ineligible; now the curve and Y are the configurations' own spend, and X/(Y + K) is beside them
    cheap, costly = _two_regimes(0), _two_regimes(256)
    a, b = compare(_data(cheap), CFG), compare(_data(costly), CFG)
    pd.testing.assert_frame_equal(a.curves.drop(columns="_reps"), b.curves.drop(columns="_reps"))
    r = b.ratios.set_index("x")
    assert r.loc[16.0, "y"] == 8.0 and r.loc[16.0, "ratio"] == 2.0  # Y < K: no binning in the curve
    assert (r["binning_samples"] == 256).all()
    np.testing.assert_allclose(r["y_charged"], r["y"] + 256)
    np.testing.assert_allclose(r["ratio_charged"], r.index / (r["y"] + 256))
    # per replicate x / (Y + K), Y >= 1: never above x / (1 + K)
    assert (r["ratio_charged_low"] <= r["ratio_charged"]).all()
    assert (r["ratio_charged"] <= r["ratio_charged_high"]).all()
    assert (r["ratio_charged_high"] <= r.index / 257 + 1e-12).all()
    assert a.ratios["ratio_charged"].eq(a.ratios["ratio"]).all()  # K = 0: the two agree
    # the curve reads each configuration's own generations, whatever the candidates were charged
    data = _data(costly)
    charged = allocation(data, candidates(data, charge=True), CFG)
    pd.testing.assert_frame_equal(charged.drop(columns="_reps"), b.curves.drop(columns="_reps"))


def test_no_binning_cost_leaves_the_charged_columns_empty() -> None:
    world = _two_regimes(16)
    out = compare(from_rows(world.rows, world.difficulty), CFG).ratios  # no pools: no binning frame
    assert out["binning_samples"].isna().all() and out["ratio_charged"].isna().all()
    assert out["ratio"].notna().all()


def _curves(
    opt: list[list[float]], base: list[float], budgets=(1.0, 2.0, 4.0), x: float = 4.0
) -> pd.DataFrame:
    rows = [
        {"policy": "p", "prm": "r", "dataset": "d", "budget": b, "curve": CURVE, "_reps": np.array(reps)}
        for b, reps in zip(budgets, opt, strict=True)
    ]
    rows.append(
        {"policy": "p", "prm": "r", "dataset": "d", "budget": x, "curve": "base", "_reps": np.array(base)}
    )
    df = pd.DataFrame(rows)
    df["accuracy"] = [r[0] for r in df["_reps"]]
    return df.assign(ci_low=np.nan, ci_high=np.nan, in_sample=np.nan)


def test_ratios_per_replicate_with_unreached_and_undefined_replicates() -> None:
    # replicates (row 0 = the data): the curve reaches the baseline at 2, at 1, never, at 4, and an undefined
    # baseline (NaN: a fold with nothing to choose on) that is left out
    opt = [[0.4, 0.6, 0.1, 0.1, 0.1], [0.6, 0.6, 0.1, 0.1, 0.1], [0.7, 0.7, 0.2, 0.5, 0.9]]
    base = [0.5, 0.5, 0.5, 0.5, np.nan]
    r = ratios(_curves(opt, base), ci=0.5, binning=pd.Series({"p": 4.0})).iloc[0]
    assert r["y"] == 2.0 and r["ratio"] == 2.0 and r["opt_accuracy"] == 0.6
    assert r["reached"] == pytest.approx(2 / 3)  # of the replicates with a defined baseline
    assert r["ratio_charged"] == pytest.approx(4 / 6)
    assert r["max_budget"] == 4.0
    # replicate ratios 4, 0 (never), 1: the 50% interval spans the unreached one
    assert r["ratio_low"] == pytest.approx(0.5) and r["ratio_high"] == pytest.approx(2.5)
    never = ratios(_curves([[0.1] * 3] * 3, [0.5] * 3), ci=0.9).iloc[0]
    assert np.isnan(never["y"]) and never["ratio"] == 0.0 and np.isnan(never["ratio_charged"])
    text = with_text(pd.DataFrame([never]))
    assert text["y_text"].iloc[0] == "not reached by 4" and text["ratio_ci"].iloc[0] == "<1 [<1, <1]"


def test_ratio_text() -> None:
    assert ratio_text(2.0, 1.0, 4.0, 0.25) == "2 [1, 4]"
    assert ratio_text(0.5, 0.0, 1.0, 0.25) == "0.5 [<0.25, 1]"
    assert ratio_text(4 / 3, np.nan, np.nan, 1.0) == "1.33"
    assert ratio_text(np.nan, np.nan, np.nan, 1.0) == "-"


def test_default_baselines_and_the_removed_line_setting(tmp_path: Path) -> None:
    cfg = load_analysis_config()
    assert cfg.adaptive_baselines == {
        "weighted best-of-N": "weighted_best_of_n",
        "best-of-N": "best_of_n",
        "beam search": "beam_search",
    }
    with pytest.raises(ValueError, match="adaptive_line_baseline was removed"):
        load_analysis_config(overrides=["adaptive_line_baseline=best-of-N"])


def test_report_section_and_plot(tmp_path: Path) -> None:
    from tts.analysis import plots
    from tts.analysis.report import _adaptive_section

    comp = compare(_data(_two_regimes(16)), CFG)
    text = "\n".join(_adaptive_section(comp, [], CFG))
    assert "## Difficulty-adaptive allocation (Snell et al.), by predicted bins" in text
    assert "| X/Y [CI] |" in text and "X/(Y + K) [CI], binning charged once per problem" in text
    assert "| p-1b | prm | best-of-N | 16 |" in text and "| 8 |" in text  # X = 16 reached at Y = 8
    paths = plots.adaptive_allocation(comp.curves, tmp_path, method="predicted", ratios=comp.ratios)
    svg = next(p for p in paths if p.suffix == ".svg").read_text()
    assert "X / Y" in svg and "binning charged once" in svg


def test_analysis_settings_are_a_structured_config_with_one_line_errors() -> None:
    """AnalysisConfig is the schema: its defaults are the only ones (the YAML holds the baselines), and a
    value of the wrong type or an unknown key fails naming the key, the value and what is expected."""
    from tts.analysis.settings import AnalysisConfig, load_analysis_config

    cfg = load_analysis_config()
    assert (cfg.folds, cfg.ci, cfg.replicates) == (AnalysisConfig().folds, AnalysisConfig().ci, 1000)
    assert cfg.baselines  # from conf/analysis/default.yaml
    with pytest.raises(ValueError, match=r"^folds: invalid value 'abc'; expected int$"):
        load_analysis_config(overrides=["folds=abc"])
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['nope'\]"):
        load_analysis_config(overrides=["nope=1"])
    assert load_analysis_config(overrides=["charge_binning=true"]).charge_binning is True
