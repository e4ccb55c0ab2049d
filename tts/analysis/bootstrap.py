"""Seeded bootstrap confidence intervals over problems, for many configurations at once.

Why: a table row's accuracy is a mean over the problems of a bin, and the uncertainty that matters is which
problems were drawn. Every configuration of one (policy, dataset, bin) is evaluated on the same problems, so one
matrix of resampling weights W (replicates x problems) serves them all: replicate accuracies are
(W @ correct_sums) / (W @ row_counts), a ratio that also handles several seeds per problem and configurations
missing some problems. W depends only on the bin's sorted problem list, the seed and the group key, so a CI is
the same whether it is computed for one winner at query time or for every configuration when the summary is
materialised.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

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


def group_cis(
    members: Sequence[str] | np.ndarray,
    values: pd.DataFrame,
    *,
    levels: Sequence[float],
    replicates: int,
    seed: int,
    key: str,
) -> pd.DataFrame:
    """CIs of every configuration in `values` over one bin's problems.

    members: the bin's problem ids (the resampled population; sorted here, so order does not matter).
    values: per-problem rows (config_id, problem_id, y_sum, rows); problems outside `members` are ignored and
    members a configuration lacks count as missing. Returns (config_id, ci, ci_low, ci_high) rows."""
    cols = ["config_id", "ci", "ci_low", "ci_high"]
    pool = pd.Index(np.sort(pd.unique(np.asarray(members))))
    if values.empty or not len(pool):
        return pd.DataFrame(columns=cols)
    cfg_codes, cfg_ids = pd.factorize(values["config_id"], sort=True)
    rows = pool.get_indexer(np.asarray(values["problem_id"]))
    keep = rows >= 0
    ys = np.zeros((len(pool), len(cfg_ids)))
    cs = np.zeros_like(ys)
    # one row per (config, problem): the sources aggregate seeds first, so plain assignment suffices
    ys[rows[keep], cfg_codes[keep]] = values["y_sum"].to_numpy(float)[keep]
    cs[rows[keep], cfg_codes[keep]] = values["rows"].to_numpy(float)[keep]
    reps = replicate_means(ys, cs, replicates=replicates, seed=seed, key=key)
    frames = []
    for level in levels:
        low, high = percentile_ci(reps, level)
        frames.append(
            pd.DataFrame({"config_id": np.asarray(cfg_ids), "ci": level, "ci_low": low, "ci_high": high})
        )
    return pd.concat(frames, ignore_index=True)


def bin_members(bins: pd.DataFrame, policy: str, bin_label: str, all_label: str) -> np.ndarray:
    """The problem ids of (policy, bin) in a (policy, problem_id, bin) frame; `all_label` = every bin."""
    sel = bins["policy"] == policy
    if bin_label != all_label:
        sel &= bins["bin"].astype(str) == str(bin_label)
    return np.asarray(bins.loc[sel, "problem_id"])
