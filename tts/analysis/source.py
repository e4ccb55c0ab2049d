"""What the compute-optimal tables and plots read, whichever engine produced it.

Why a small contract: the same table code runs on the materialised summary (fast, repeated queries), on a
DuckDB scan of the raw cell files (first look, no materialisation) and on an in-memory DataFrame (tests,
notebooks). Each produces an `AnalysisData`:

  stats     one row per (configuration, bin) of ONE difficulty method: config_id (tts.analysis.keys), the
            DESCRIPTIVE columns, hyperparams (label), pool (rows carry `expected_correct`: pool-based), bin,
            rows (problem x seed rows), problems, seeds (distinct seeds), y_sum / y_sq (sums of correctness,
            `expected_correct` when present), and `<measure>_sum` for every COMPUTE_COLUMNS measure. Bin ALL_BIN
            covers every problem.
  bins      (policy, problem_id, bin) of that method: the problem sets that folds and the bootstrap split.
  values    config ids (None = all) -> per (problem, seed) (config_id, problem_id, seed, y_sum, rows) for the
            selection and its two-level bootstrap (tts.analysis.bootstrap).
  binning   optional (policy, bin, binning_samples, binning_tokens, binning_prm_tokens) means per problem:
            what assigning the bins cost, charged when the analysis config says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tts.analysis.keys import (
    ALL_BIN,
    COMPUTE_COLUMNS,
    DESCRIPTIVE,
    PARALLEL_FIELD,
    configuration_ids,
    hyperparams,
    row_seeds,
)

if TYPE_CHECKING:
    from tts.analysis.cube import Index

Y_EXPR = "expected_correct if not null, else correct"


@dataclass
class AnalysisData:
    stats: pd.DataFrame
    bins: pd.DataFrame
    values: Callable[[Sequence[str] | None], pd.DataFrame]
    method: str = "none"
    binning: pd.DataFrame | None = None
    # the values coded for the selection (tts.analysis.cube), when the source has it
    index: Index | None = None
    # strategy -> traits, as stored with the results (tts.analysis.io.strategy_traits)
    traits: dict[str, dict[str, bool]] = field(default_factory=dict)

    def trait(self, strategy: object, name: str) -> bool:
        """A strategy's trait (tts.strategies.entry.Traits) as the results recorded it, else as the installed
        entry says; False for a strategy neither knows."""
        stored = self.traits.get(str(strategy))
        if stored is not None:
            return bool(stored.get(name, False))
        from tts.strategies import STRATEGIES

        return strategy in STRATEGIES and bool(getattr(STRATEGIES.get(str(strategy)).traits, name))

    def selection_index(self) -> Index:
        """The values as the selection reads them: the source's own index, else one built from `values`."""
        from tts.analysis.cube import Index

        return self.index if self.index is not None else Index.of(self.values(None))

    def __post_init__(self) -> None:
        # every table reads all values: read them once, and keep the one frame (its integer index,
        # tts.analysis.cube, is cached per frame)
        fetch, memo = self.values, {}

        def values(ids: Sequence[str] | None = None) -> pd.DataFrame:
            if ids is not None:
                return fetch(ids)
            if "all" not in memo:
                memo["all"] = fetch(None)
            return memo["all"]

        self.values = values


def row_y(rows: pd.DataFrame) -> pd.Series:
    """Per-row correctness the analysis averages: `expected_correct` when present (exact over the pool,
    lower variance), else `correct`."""
    y = rows["correct"].astype(float)
    if "expected_correct" in rows.columns:
        y = rows["expected_correct"].astype(float).fillna(y)
    return y


def with_means(stats: pd.DataFrame) -> pd.DataFrame:
    """Add accuracy, its standard error over rows, and per-problem means of every compute measure."""
    out = stats.copy()
    rows = out["rows"].where(out["rows"] > 0)
    out["accuracy"] = out["y_sum"] / rows
    var = (out["y_sq"] / rows - out["accuracy"] ** 2).clip(lower=0)
    out["se"] = np.sqrt(var / rows)
    for m in COMPUTE_COLUMNS:
        out[m] = out[f"{m}_sum"] / rows
    out["tokens"] = out["tokens_in"] - out["tokens_cached"] + out["tokens_out"] + out["prm_tokens"]
    return out


def bin_sort_key(labels: pd.Series) -> pd.Series:
    """Order bins: numeric labels ascending, then easy / medium / hard, then others, ALL_BIN last."""
    named = {"easy": 1000, "medium": 1001, "hard": 1002, ALL_BIN: 10**9}
    num = pd.to_numeric(labels, errors="coerce")
    return num.fillna(labels.map(named)).fillna(5000)


def stats_from_rows(rows: pd.DataFrame, bins: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(stats, per-problem values) from in-memory cell rows and a one-method bins frame (None = ALL_BIN only).
    Rows with status != "ok" are left out."""
    df = rows[rows["status"] == "ok"] if "status" in rows.columns else rows
    df = df.assign(y=row_y(df), config_id=configuration_ids(df), seed=row_seeds(df))
    df = df.assign(y2=df["y"] ** 2)
    cfg = configurations(df)
    agg = {"y_sum": ("y", "sum"), "y_sq": ("y2", "sum"), "rows": ("y", "size")}
    agg |= {f"{m}_sum": (m, "sum") for m in COMPUTE_COLUMNS if m in df.columns}
    values = df.groupby(["config_id", "problem_id", "seed"], sort=True).agg(**agg).reset_index()
    for m in COMPUTE_COLUMNS:
        if f"{m}_sum" not in values.columns:
            values[f"{m}_sum"] = 0.0
    values = values.merge(cfg[["config_id", "policy"]], on="config_id")
    if bins is not None:
        values = values.merge(bins[["policy", "problem_id", "bin"]], on=["policy", "problem_id"], how="left")
        values["bin"] = values["bin"].fillna("unbinned")
    else:
        values["bin"] = ALL_BIN
    stats = aggregate_values(values, cfg)
    return stats, values


def configurations(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per config_id: the DESCRIPTIVE columns, `hyperparams`, `pool` (any row has
    `expected_correct`: the configuration is derived from a sample pool) and `parallel` (PARALLEL_FIELD). Rows must carry config_id."""
    df = rows.assign(hyperparams=hyperparams(rows))
    pool = df["expected_correct"].notna() if "expected_correct" in df.columns else pd.Series(False, df.index)
    df = df.assign(pool=pool.groupby(df["config_id"]).transform("any"))
    for k in DESCRIPTIVE:
        if k not in df.columns:
            df = df.assign(**{k: None})
    # a sequential strategy's parallel chains (tts.analysis.revisions); absent for every other strategy
    df = df.assign(parallel=df[PARALLEL_FIELD] if PARALLEL_FIELD in df.columns else np.nan)
    cols = ["config_id", *DESCRIPTIVE, "hyperparams", "pool", "parallel"]
    return df[cols].drop_duplicates("config_id").sort_values("config_id").reset_index(drop=True)


def aggregate_values(values: pd.DataFrame, cfg: pd.DataFrame) -> pd.DataFrame:
    """Per (problem, seed) values (with a `bin` column) -> per (config, bin) stats, plus the ALL_BIN rows."""
    sums = ["y_sum", "y_sq", "rows", *[f"{m}_sum" for m in COMPUTE_COLUMNS]]

    def per(keys: list[str]) -> pd.DataFrame:
        g = values.groupby(keys, sort=True)
        return g[sums].sum().join(g.agg(problems=("problem_id", "nunique"), seeds=("seed", "nunique")))

    stats = per(["config_id", "bin"]).reset_index()
    if not (stats["bin"] == ALL_BIN).all():
        stats = pd.concat([stats, per(["config_id"]).reset_index().assign(bin=ALL_BIN)], ignore_index=True)
    return stats.merge(cfg, on="config_id", how="left")


def from_rows(
    rows: pd.DataFrame, difficulty: pd.DataFrame | None = None, method: str | None = None
) -> AnalysisData:
    """AnalysisData from in-memory rows (tests, notebooks). `difficulty`: DIFFICULTY_COLUMNS rows; `method`
    picks one of its methods (default: the only one present)."""
    bins = None
    if difficulty is not None and len(difficulty):
        methods = sorted(difficulty["method"].unique())
        method = method or (methods[0] if len(methods) == 1 else None)
        if method not in methods:
            raise ValueError(
                f"method: {method!r} not in the difficulty frame; available: {', '.join(methods)}"
            )
        bins = difficulty.loc[difficulty["method"] == method, ["policy", "problem_id", "bin"]]
    stats, values = stats_from_rows(rows, bins)
    if bins is None:
        bins = values[["policy", "problem_id"]].drop_duplicates().assign(bin=ALL_BIN)

    def fetch(ids: Sequence[str] | None = None) -> pd.DataFrame:
        keep = values if ids is None else values[values["config_id"].isin(list(ids))]
        return keep[["config_id", "problem_id", "seed", "y_sum", "rows"]]

    return AnalysisData(stats=stats, bins=bins, values=fetch, method=method or "none")
