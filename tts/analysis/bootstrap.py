"""Seeded two-level bootstrap: problems, then the seeds of each drawn problem, for many configurations at once.

Why: a table row's accuracy is a mean over the problems x seeds of a bin. Which problems were drawn matters,
and so, for a stochastic strategy (particle filtering, REBASE, sampled beam search), do the seeds: with few
problems a problem-only bootstrap has few distinct values to draw (one problem: a zero-width CI however much
its seeds disagree). So each replicate draws problems with replacement (`resample_weights`), and every drawn
copy of a problem draws its seeds with replacement (`resample_seeds`). A unit is one (problem, seed): every
configuration of one (policy, dataset, bin) is evaluated on the same problems and paired on seed labels (the
pool of a seed serves every N derived from it), so one matrix of unit weights W (replicates x units) serves
them all: replicate accuracies are (W @ correct_sums) / (W @ row_counts), a ratio that also handles
configurations missing some problems or seeds. With one seed per problem, W is the problem-only weights exactly.

Resampling both levels with replacement is conservative where seeds dominate: its variance is about
(s_problems^2 + 2 s_seeds^2 / m) / P against the truth's (s_problems^2 + s_seeds^2 / m) / P for P problems of
m seeds (Davison & Hinkley 1997, hierarchical data), so at most about sqrt(2) too wide; where problems differ
more than seeds it is close to the problem bootstrap. W depends only on the unit layout, the seed and the group
key. tts.analysis.selection builds the tables' CIs on these weights (redoing the selection in every replicate);
`bootstrap_ci` is the plain CI of fixed configurations (notebooks, tests).
"""

from __future__ import annotations

import zlib

import numpy as np

DEFAULT_LEVELS = (0.9, 0.95, 0.99)


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def resample_weights(num_problems: int, replicates: int, seed: int, key: str = "") -> np.ndarray:
    """(replicates x num_problems) multinomial counts: how often each problem is drawn in each replicate.
    Seeded by (seed, key) so a group's CI does not depend on what else is computed."""
    if num_problems < 1 or replicates < 1:
        raise ValueError(
            f"bootstrap: need problems >= 1 and replicates >= 1, got {num_problems}, {replicates}"
        )
    rng = _rng(seed, key)
    draws = rng.integers(0, num_problems, size=(replicates, num_problems), dtype=np.int64)
    draws += (np.arange(replicates, dtype=np.int64) * num_problems)[:, None]
    counts = np.bincount(draws.ravel(), minlength=replicates * num_problems)
    return counts.reshape(replicates, num_problems).astype(np.float32)


def resample_seeds(w: np.ndarray, problem: np.ndarray, seed: int, key: str) -> np.ndarray:
    """(replicates x units) counts of the second level, from w (replicates x problems) counts of the first:
    a problem drawn k times whose seeds are its m units (`problem`: the problem index of each unit) draws k
    resamples of m seeds with replacement, i.e. Multinomial(k * m, 1/m) over its units. A problem with one unit
    keeps its count and draws no random number, so with one seed per problem this is w[:, problem] exactly.
    Seeded by (seed, key)."""
    problem = np.asarray(problem, dtype=np.int64)
    sizes = np.bincount(problem, minlength=w.shape[1])
    out = w[:, problem].astype(np.float32)
    multi = np.flatnonzero(sizes > 1)
    if not len(multi):
        return out
    rng = _rng(seed, key)
    order, start = np.argsort(problem, kind="stable"), np.cumsum(sizes) - sizes
    for m in np.unique(sizes[multi]):  # ascending: the same draws whatever the order of the units
        ps = multi[sizes[multi] == m]
        units = order[start[ps][:, None] + np.arange(m)]  # (problems with m seeds, m)
        draws = rng.multinomial(w[:, ps].astype(np.int64) * m, np.full(m, 1.0 / m))  # (replicates, ., m)
        out[:, units.ravel()] = draws.reshape(len(w), -1)
    return out


def replicate_means(
    ys: np.ndarray,
    cs: np.ndarray,
    *,
    replicates: int,
    seed: int,
    key: str,
    problem: np.ndarray | None = None,
) -> np.ndarray:
    """(replicates x configs) bootstrap accuracies from (units x configs) sums and row counts; `problem`: the
    problem of each unit (row), default each row its own problem (the problem-only bootstrap)."""
    y = np.where(cs > 0, np.nan_to_num(ys), 0.0).astype(np.float32)
    if problem is None:
        w = resample_weights(ys.shape[0], replicates, seed, key)
    else:
        _, codes = np.unique(np.asarray(problem), return_inverse=True)
        w = resample_weights(int(codes.max()) + 1, replicates, seed, key)
        w = resample_seeds(w, codes, seed, f"{key}|seeds")
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w @ y).astype(np.float64) / (w @ cs.astype(np.float32)).astype(np.float64)


def percentile_ci(reps: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < ci < 1:
        raise ValueError(f"ci: invalid value {ci!r}; must be in (0, 1), e.g. 0.95")
    alpha = (1.0 - ci) / 2.0
    quantile = np.nanquantile if np.isnan(reps).any() else np.quantile
    with np.errstate(invalid="ignore"):
        low, high = quantile(reps, [alpha, 1.0 - alpha], axis=0)
    return low, high


def bootstrap_ci(
    y_sum: np.ndarray,
    counts: np.ndarray | None = None,
    *,
    ci: float = 0.95,
    replicates: int = 1000,
    seed: int = 0,
    key: str = "",
    problem: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile CI of the mean accuracy per column.

    y_sum: (units,) or (units, configs) sums of per-row correctness (or a per-unit accuracy with counts = 1);
      counts: rows behind each sum (0 = unit missing for that config), default all ones; problem: the problem
      (any labels) of each unit, whose units are then its seeds (two-level bootstrap); default each unit its
      own problem (the problem-only bootstrap).
    Returns (low, high) arrays of shape (configs,) ((1,) for 1-d input)."""
    if not 0 < ci < 1:
        raise ValueError(f"ci: invalid value {ci!r}; must be in (0, 1), e.g. 0.95")
    y = np.asarray(y_sum, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    c = np.ones_like(y) if counts is None else np.asarray(counts, dtype=np.float64).reshape(y.shape)
    reps = replicate_means(y, c, replicates=replicates, seed=seed, key=key, problem=problem)
    return percentile_ci(reps, ci)
