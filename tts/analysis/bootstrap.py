"""Seeded bootstrap resampling over problems, for many configurations at once.

Why: a table row's accuracy is a mean over the problems of a bin, and the uncertainty that matters is which
problems were drawn. Every configuration of one (policy, dataset, bin) is evaluated on the same problems, so one
matrix of resampling weights W (replicates x problems) serves them all: replicate accuracies are
(W @ correct_sums) / (W @ row_counts), a ratio that also handles several seeds per problem and configurations
missing some problems. W depends only on the problem count, the seed and the group key. tts.analysis.selection
builds the tables' CIs on these weights (redoing the selection in every replicate); `bootstrap_ci` is the plain
CI of fixed configurations (notebooks, tests).
"""

from __future__ import annotations

import zlib

import numpy as np

DEFAULT_LEVELS = (0.9, 0.95, 0.99)


def resample_weights(num_problems: int, replicates: int, seed: int, key: str = "") -> np.ndarray:
    """(replicates x num_problems) multinomial counts: how often each problem is drawn in each replicate.
    Seeded by (seed, key) so a group's CI does not depend on what else is computed."""
    if num_problems < 1 or replicates < 1:
        raise ValueError(
            f"bootstrap: need problems >= 1 and replicates >= 1, got {num_problems}, {replicates}"
        )
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    draws = rng.integers(0, num_problems, size=(replicates, num_problems), dtype=np.int64)
    draws += (np.arange(replicates, dtype=np.int64) * num_problems)[:, None]
    counts = np.bincount(draws.ravel(), minlength=replicates * num_problems)
    return counts.reshape(replicates, num_problems).astype(np.float32)


def replicate_means(ys: np.ndarray, cs: np.ndarray, *, replicates: int, seed: int, key: str) -> np.ndarray:
    """(replicates x configs) bootstrap accuracies from (problems x configs) sums and row counts."""
    y = np.where(cs > 0, np.nan_to_num(ys), 0.0).astype(np.float32)
    w = resample_weights(ys.shape[0], replicates, seed, key)
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
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile CI of the mean accuracy per column.

    y_sum: (problems,) or (problems, configs) sums of per-row correctness (or a per-problem accuracy with
      counts = 1); counts: rows behind each sum (0 = problem missing for that config), default all ones.
    Returns (low, high) arrays of shape (configs,) ((1,) for 1-d input)."""
    if not 0 < ci < 1:
        raise ValueError(f"ci: invalid value {ci!r}; must be in (0, 1), e.g. 0.95")
    y = np.asarray(y_sum, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    c = np.ones_like(y) if counts is None else np.asarray(counts, dtype=np.float64).reshape(y.shape)
    return percentile_ci(replicate_means(y, c, replicates=replicates, seed=seed, key=key), ci)
