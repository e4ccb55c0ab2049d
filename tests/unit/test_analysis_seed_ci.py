"""Seeds in the CIs: a sweep's seed axis makes repeats of one configuration, and the bootstrap resamples problems
and, within each drawn problem, its seeds (tts.analysis.bootstrap). With one seed per problem it is the
problem-only bootstrap exactly; with several it sees seed-to-seed variance the problem-only one misses."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tts.analysis.bootstrap import bootstrap_ci, resample_seeds, resample_weights
from tts.analysis.report import seed_counts
from tts.analysis.selection import Group, Sums, weights
from tts.analysis.settings import AnalysisConfig
from tts.analysis.source import from_rows
from tts.analysis.tables import candidates, generation_matched
from tts.grid import expand
from tts.testing.noisy import noisy_configs

CFG = AnalysisConfig(replicates=200, ci=0.9, charge_binning=False)


def _ci(y: np.ndarray, problem: np.ndarray | None, seed: int, replicates: int = 400) -> tuple[float, float]:
    lo, hi = bootstrap_ci(y, ci=0.9, replicates=replicates, seed=seed, problem=problem)
    return float(lo[0]), float(hi[0])


def _problem_only(y: np.ndarray, problem: np.ndarray, seed: int) -> tuple[float, float]:
    """Today's bootstrap: every seed's rows summed inside a problem, problems resampled."""
    lo, hi = bootstrap_ci(np.bincount(problem, y), np.bincount(problem), ci=0.9, replicates=400, seed=seed)
    return float(lo[0]), float(hi[0])


def _seeded_rows(seeds: int, problems: int = 30) -> pd.DataFrame:
    one = noisy_configs(configs=4, problems=problems, seed=2)
    return pd.concat([one.assign(seed=s, **{"config.seed": s}) for s in range(seeds)], ignore_index=True)


def test_a_seed_axis_expands_into_cells_of_one_configuration() -> None:
    cells = expand(["prm=rule_arithmetic", "dataset.per_level=2", "seed=0,1,2"]).cells
    assert sorted(c.config.seed for c in cells) == [0, 1, 2]
    assert len({c.id for c in cells}) == 3  # separate cells (the seed is part of a cell's identity)
    assert len({c.config_id for c in cells}) == 1  # one configuration: its seeds pool in the tables


def test_one_seed_per_problem_is_exactly_the_problem_bootstrap() -> None:
    rng = np.random.default_rng(0)
    y = rng.random((50, 3))
    # the same weights (asserted exactly below) through a float32 matmul whose summation order may differ
    # with the array's memory layout: equal to float32 rounding
    np.testing.assert_allclose(
        bootstrap_ci(y, ci=0.9, seed=4, key="k", problem=np.arange(50)),
        bootstrap_ci(y, ci=0.9, seed=4, key="k"),
        rtol=0,
        atol=1e-6,
    )
    w = resample_weights(50, 200, 4, "k")
    assert np.array_equal(resample_seeds(w, np.arange(50), 4, "k|seeds"), w)
    strata = np.repeat([0, 1], 25)
    assert np.array_equal(weights(strata, 200, 4, "k", problem=np.arange(50)), weights(strata, 200, 4, "k"))
    # the tables: rows that carry their (single) seed give the numbers of rows that carry none
    rows = noisy_configs(configs=4, problems=30, seed=1)
    seeded, plain = from_rows(rows.assign(seed=7)), from_rows(rows.drop(columns=["config.seed"]))
    pd.testing.assert_frame_equal(
        generation_matched(candidates(seeded, charge=False), seeded, CFG),
        generation_matched(candidates(plain, charge=False), plain, CFG),
        check_exact=True,
    )


def test_seed_resampling_spreads_each_drawn_problem_over_its_seeds() -> None:
    problem = np.array([0, 0, 0, 1, 2, 2])  # 3 seeds, 1 seed, 2 seeds
    w = resample_weights(3, 2000, 0, "k")
    u = resample_seeds(w, problem, 0, "k|seeds")
    for p, m in ((0, 3), (1, 1), (2, 2)):
        assert np.array_equal(u[:, problem == p].sum(1), w[:, p] * m)  # k copies of m seeds each
    assert np.array_equal(u[:, 3], w[:, 1])  # one seed: no second level
    assert np.allclose(u[:, :3].mean(0), w[:, 0].mean(), atol=0.1)  # each seed as likely as the others
    again = resample_seeds(w, problem, 0, "k|seeds")
    assert np.array_equal(u, again)  # seeded by (seed, key)


def test_identical_problems_with_disagreeing_seeds_get_a_ci() -> None:
    # every problem's three seeds score (1, 1, 0) in some order: the problem means are all 2/3, so resampling
    # problems alone gives a zero-width CI, though a fourth seed could as well score 0 or 1
    problems, seeds = 6, 3
    rng = np.random.default_rng(3)
    y = np.concatenate([rng.permutation([1.0, 1.0, 0.0]) for _ in range(problems)])
    problem = np.repeat(np.arange(problems), seeds)
    lo, hi = _problem_only(y, problem, seed=0)
    assert hi - lo < 1e-6
    lo2, hi2 = _ci(y, problem, seed=0)
    assert hi2 - lo2 > 0.2 and lo2 < 2 / 3 < hi2
    # the same through the tables (held-out selection, its CI redoing the choice): one configuration
    rows = noisy_configs(configs=1, problems=problems, seed=0).drop(columns=["config.seed"])
    rows = pd.concat([rows.assign(seed=s) for s in range(seeds)], ignore_index=True)
    rows["correct"] = y.reshape(problems, seeds).T.ravel() > 0.5
    two = generation_matched(candidates(from_rows(rows), charge=False), from_rows(rows), CFG).iloc[0]
    summed = rows.drop(columns=["seed"])  # the seeds' rows summed inside each problem
    one = generation_matched(candidates(from_rows(summed), charge=False), from_rows(summed), CFG).iloc[0]
    assert one["ci_high"] - one["ci_low"] < 1e-6
    assert two["ci_high"] - two["ci_low"] > 0.2 and two["ci_low"] < 2 / 3 < two["ci_high"]


def test_two_level_ci_covers_the_truth_when_seeds_dominate() -> None:
    # 4 problems of the same true accuracy 0.6, 3 seeds each (Bernoulli rows), 200 seeded worlds, a 90% CI:
    # measured coverage 0.93 two-level (conservative, as resampling both levels is) vs 0.725 problem-only
    p, problems, seeds, sims = 0.6, 4, 3, 200
    problem = np.repeat(np.arange(problems), seeds)
    two = one = 0
    for draw in range(sims):
        y = (np.random.default_rng(1000 + draw).random(problems * seeds) < p).astype(float)
        lo, hi = _ci(y, problem, seed=draw)
        two += lo <= p <= hi
        lo, hi = _problem_only(y, problem, seed=draw)
        one += lo <= p <= hi
    assert two / sims >= 0.85  # nominal 0.9, tolerance 0.05 (binomial sd over 200 worlds ~0.02)
    assert two > one + 0.1 * sims  # the problem-only CI undercovers here


def test_more_seeds_narrow_the_ci() -> None:
    # median 90% CI width over 100 worlds of 4 problems (true accuracy 0.6): 1 seed 0.75, 3 seeds 0.50, 9 seeds
    # 0.32 (problem-only: 0.75, 0.33, 0.21)
    problems, sims = 4, 100
    widths = {}
    for seeds in (1, 3, 9):
        problem = np.repeat(np.arange(problems), seeds)
        w = []
        for draw in range(sims):
            y = (np.random.default_rng(2000 + draw).random(problems * seeds) < 0.6).astype(float)
            lo, hi = _ci(y, problem, seed=draw, replicates=300)
            w.append(hi - lo)
        widths[seeds] = float(np.median(w))
    assert widths[1] > widths[3] > widths[9]
    assert widths[9] < 0.75 * widths[1]


def test_seeds_per_configuration_are_counted_and_reported() -> None:
    data = from_rows(_seeded_rows(3))
    assert (data.stats["seeds"] == 3).all() and (data.stats["problems"] == 30).all()
    assert (data.stats["rows"] == 90).all()
    assert set(data.values(None)["seed"]) == {0, 1, 2}
    assert seed_counts(data.stats) == "3 (every configuration)"
    single = _seeded_rows(1)
    single = single[single["config.strategy.width"] == 0].assign(**{"config.n": 8})  # one more configuration
    mixed = pd.concat([_seeded_rows(3), single], ignore_index=True)
    assert seed_counts(from_rows(mixed).stats) == "1 (1 configuration), 3 (4 configurations)"


def test_a_group_holds_one_unit_per_problem_and_seed() -> None:
    data = from_rows(_seeded_rows(3))
    values = data.values(None)
    probs = pd.DataFrame({"problem_id": sorted(values["problem_id"].unique())})
    probs = probs.assign(fold=np.arange(len(probs)) % 2, stratum="all")
    group = Group.build(values, probs, sorted(values["config_id"].unique()))
    assert len(group.unit_y) == 90 and len(group.fold) == 30  # 30 problems x 3 seeds
    assert np.array_equal(group.c, np.full((30, 4), 3.0))
    w = group.weights(200, 0, "g")
    sums = Sums.of(group, w, 2)
    assert np.array_equal(sums.C[:, 0].sum(0), np.full(4, 90.0))  # row 0: the data
    assert np.allclose(sums.C[:, 1:].sum(0), 90.0)  # a resample keeps the problems x seeds count
