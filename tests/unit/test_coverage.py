"""Coverage curves and Brown et al.'s exponentiated power-law fit on synthetic data with known parameters."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tts.analysis.coverage import (
    coverage_curves,
    fit_curves,
    fit_power_law,
    fits_markdown,
    k_grid,
    plot_coverage,
)


def test_fit_recovers_exact_parameters() -> None:
    k = np.arange(1, 101)
    for a, b in ((-2.0, -0.5), (-0.7, -0.3), (-4.0, -0.8)):
        fit = fit_power_law(k, np.exp(a * k**b))
        assert fit.a == pytest.approx(a, rel=1e-9) and fit.b == pytest.approx(b, rel=1e-9)
        assert fit.r2 == pytest.approx(1.0) and fit.rmse < 1e-12 and fit.points == 100


def test_fit_with_noise_is_close() -> None:
    rng = np.random.default_rng(0)
    k = np.geomspace(1, 1000, 40)
    c = np.clip(np.exp(-3.0 * k**-0.4) + rng.normal(0, 0.01, k.size), 0, 1)
    fit = fit_power_law(k, c)
    assert fit.a == pytest.approx(-3.0, rel=0.05) and fit.b == pytest.approx(-0.4, rel=0.05)
    assert fit.points == 40 and fit.r2 > 0.99 and fit.rmse < 0.015
    assert fit.predict([1.0])[0] == pytest.approx(math.exp(fit.a))


def test_refinement_fits_a_saturating_curve_better_than_the_linearisation() -> None:
    """Near c = 1, log(-log c) amplifies tiny errors: a curve that saturates (here: true law plus small noise,
    then exactly 1) is fitted far better in coverage space after the refinement."""
    k = np.arange(1, 33, dtype=float)
    c = np.exp(-1.2 * k**-1.5)
    c[20:] = 1.0
    c[10:20] = np.minimum(c[10:20] + 0.004, 0.99999)
    linear = fit_power_law(k, c, refine=False)
    refined = fit_power_law(k, c)
    assert refined.rmse < 0.6 * linear.rmse  # measured 0.0057 vs 0.0109
    assert abs(refined.a + 1.2) < abs(linear.a + 1.2) / 3 and abs(refined.b + 1.5) < abs(linear.b + 1.5) / 3
    assert linear.points == 20 and refined.points == 32  # saturated points only inform the refinement


def test_fit_needs_two_usable_points() -> None:
    fit = fit_power_law([1, 2, 4], [0.0, 1.0, 1.0])
    assert math.isnan(fit.a) and fit.points == 0
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([0, 1], [0.5, 0.6])


def test_k_grid() -> None:
    assert k_grid(5) == [1, 2, 3, 4, 5]
    grid = k_grid(1000, points=20)
    assert grid[0] == 1 and grid[-1] == 1000 and len(grid) <= 21 and grid == sorted(set(grid))


def _samples(correct_per_problem: dict[str, list[bool]], policy: str = "p") -> pd.DataFrame:
    rows = [
        {"policy": policy, "dataset": "d", "problem_id": pid, "seed": 0, "sample_idx": j, "correct": ok}
        for pid, oks in correct_per_problem.items()
        for j, ok in enumerate(oks)
    ]
    return pd.DataFrame(rows)


def test_curves_are_mean_unbiased_pass_at_k_per_bin() -> None:
    samples = _samples({"a": [True, False, False, False], "b": [False] * 4, "c": [True] * 4})
    samples = pd.concat([samples, samples.iloc[:2]])  # duplicated rows (two cells' reads) count once
    bins = pd.DataFrame({"policy": ["p"] * 3, "problem_id": ["a", "b", "c"], "bin": ["hard", "hard", "easy"]})
    curves = coverage_curves(samples, bins)
    got = curves.set_index(["bin", "k"])["coverage"]
    # problem a: pass@k = 1 - C(3, k) / C(4, k) = k / 4
    assert got[("all", 1)] == pytest.approx((0.25 + 0 + 1) / 3)
    assert got[("all", 2)] == pytest.approx((0.5 + 0 + 1) / 3)
    assert got[("hard", 4)] == pytest.approx(0.5) and got[("easy", 1)] == 1.0
    assert set(curves["problems"][curves["bin"] == "hard"]) == {2}


def test_synthetic_pools_recover_the_power_law_and_plot(tmp_path: Path) -> None:
    """Problems with per-sample success p_i drawn so that E[pass@k] = exp(a k^b) is known; the fit of the
    curve computed from sampled pools recovers (a, b) roughly."""
    rng = np.random.default_rng(1)
    a, b = -1.5, -0.5
    # coverage of a mixture: c(k) = mean_i (1 - (1 - p_i)^k); pick p_i from a Beta mixture and compare the fit
    # of the sampled curve with the fit of its own exact expectation (the ground truth for these problems)
    p = rng.beta(0.3, 2.0, size=300)
    n = 256
    correct = {f"q{i}": list(rng.random(n) < pi) for i, pi in enumerate(p)}
    curves = coverage_curves(_samples(correct))
    fits = fit_curves(curves)
    ks = curves["k"].to_numpy()
    exact = np.array([np.mean(1 - (1 - p) ** k) for k in ks])
    truth = fit_power_law(ks, exact)
    (row,) = fits.itertuples()
    assert row.a == pytest.approx(truth.a, rel=0.1) and row.b == pytest.approx(truth.b, rel=0.15)
    assert row.r2 > 0.9 and row.k_max == n and row.problems == 300
    assert row.pass_at_1 == pytest.approx(np.mean(p), abs=0.02)
    # and the exact exponentiated power law itself is recovered exactly from its own values
    assert fit_power_law(ks, np.exp(a * ks**b)).b == pytest.approx(b)
    paths = plot_coverage(curves, fits, tmp_path, method="synthetic")
    assert [p.name for p in paths] == ["coverage.png", "coverage.svg"] and all(
        p.stat().st_size > 1000 for p in paths
    )
    assert "| p | d | all | 300 |" in fits_markdown(fits)
