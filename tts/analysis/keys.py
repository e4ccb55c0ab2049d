"""What identifies a configuration, what the tables show about it, and the compute measures they average.

Why one place: the summary, the tables and the plots must agree on what "the same configuration" means. A
configuration is a cell with its seed (and sweep-level settings) dropped: seeds are repeats, so its accuracy
pools every seed's rows. Its id is the row's `config_id` (written by the runtime: a hash of the resolved cell
config minus the seed and sweep-level fields); rows written before that column existed get the same rule
applied here to their flattened "config.<group>.<field>" columns (`configuration_ids`). No hand-written column
list decides identity, so cells that differ in any config field (max_tokens, prompt template, prm.format,
dataset.levels, temperature, ...) stay separate configurations.

Hyperparameters shown in the tables come from the strategy's own config fields ("config.strategy.*" but its
name), plus the PRM aggregation and the sampling temperature: a new strategy's knobs appear without code here.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

CONFIG_PREFIX = "config."
# Flattened config fields that do not make a configuration: the seed (repeats) and sweep-level settings.
NOT_IDENTITY = ("config.seed",)
NOT_IDENTITY_PREFIXES = ("config.cluster.", "config.sweep.", "config.results_dir", "config.progress")
# A row's seed, the unit the bootstrap resamples within a problem: the cell column, else the flattened field.
SEED_COLUMNS = ("seed", "config.seed")
STRATEGY_PREFIX = "config.strategy."
# Descriptive cell columns carried beside config_id into the tables (constant within a configuration).
DESCRIPTIVE: tuple[str, ...] = (
    "policy",
    "policy_params",
    "prm",
    "prm_kind",
    "prm_params",
    "dataset",
    "strategy",
    "n",
    "aggregation",
    "temperature",
)
# A sequential strategy's split of N into parallel chains (Snell's P; N / P attempts per chain): the one
# strategy field the analysis reads by name, as a convention any sequential strategy can follow.
PARALLEL_FIELD = STRATEGY_PREFIX + "parallel"
# Per-problem compute measures, averaged over problems in the tables.
COMPUTE_COLUMNS: tuple[str, ...] = (
    "generations",
    "tokens_in",
    "tokens_cached",
    "tokens_out",
    "prm_tokens",
    "flops_policy",
    "flops_prm",
    "flops",
)
# Longest text value shown in a hyperparameter label (longer ones are cut; config_id still tells them apart).
LABEL_TEXT = 24
# A bin label covering every problem of a (policy, dataset).
ALL_BIN = "all"


def identity_columns(columns: list[str] | pd.Index) -> list[str]:
    """The flattened config columns that identify a configuration (sorted): config.* minus NOT_IDENTITY."""
    return sorted(
        c
        for c in columns
        if c.startswith(CONFIG_PREFIX) and c not in NOT_IDENTITY and not c.startswith(NOT_IDENTITY_PREFIXES)
    )


def row_seeds(df: pd.DataFrame) -> pd.Series:
    """The seed of every row: the first of SEED_COLUMNS that holds a value, else 0 (rows of one seed)."""
    out = pd.Series(np.nan, index=df.index)
    for col in SEED_COLUMNS:
        if col in df.columns:
            out = out.fillna(pd.to_numeric(df[col], errors="coerce"))
    return out.fillna(0).astype("int64").rename("seed")


def _plain(value: object) -> object:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float | np.floating) and np.isnan(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)  # 4 and 4.0 (an int column NULL-filled to float) are one value
    return value


def _distinct(df: pd.DataFrame, cols: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(group code of every row, position of each group's first row) over `cols`, nulls as a value."""
    codes = df.groupby(cols, dropna=False, sort=False).ngroup().to_numpy()
    first = pd.Series(np.arange(len(df))).groupby(codes).first().to_numpy()
    return codes, first


def configuration_ids(df: pd.DataFrame) -> pd.Series:
    """The configuration id of every row: its `config_id` when the runtime wrote one, else the first 16 hex
    digits of sha1 over its identity columns (name=value, sorted, nulls left out). Raises KeyError when a
    row has neither (the frame is not cell rows)."""
    if "config_id" in df.columns and df["config_id"].notna().all():
        return df["config_id"].astype(str)
    cols = identity_columns(df.columns)
    if not cols:
        raise KeyError(
            "configuration_ids: rows carry neither config_id nor flattened config.* columns; "
            "pass cell rows (tts.results_schema) or results written by tts.store"
        )
    codes, first = _distinct(df, cols)
    hashes = []
    for i in first:
        items = {c: _plain(df[c].iloc[i]) for c in cols}
        text = json.dumps({k: v for k, v in items.items() if v is not None}, sort_keys=True, default=str)
        hashes.append(hashlib.sha1(text.encode()).hexdigest()[:16])
    out = pd.Series(np.asarray(hashes, dtype=object)[codes], index=df.index, name="config_id")
    if "config_id" in df.columns:  # a mix of old and new rows: keep the ids that were written, and give an
        # old row the written id of the new rows with the same config.* values (one configuration, not two)
        written = df["config_id"].astype(object)
        known = pd.Series(written.to_numpy(), index=codes).dropna()
        by_code = (
            known.groupby(level=0).agg(lambda v: v.mode().iloc[0]) if len(known) else pd.Series(dtype=object)
        )
        inherited = pd.Series(codes, index=df.index).map(by_code)
        out = written.where(written.notna(), inherited.where(inherited.notna(), out)).astype(str)
    return out


def hyperparameter_columns(columns: list[str] | pd.Index) -> list[str]:
    """The columns a configuration's hyperparameter label is made of: aggregation, temperature, then every
    config.strategy.* field but its name (and its temperature: the row's effective one is shown)."""
    strat = sorted(
        c
        for c in columns
        if c.startswith(STRATEGY_PREFIX)
        and c not in (STRATEGY_PREFIX + "name", STRATEGY_PREFIX + "temperature")
    )
    return [c for c in ("aggregation", "temperature") if c in columns] + strat


def hyperparams_label(row: dict) -> str:
    """A short human label of a row's hyperparameters: "agg=last, T=0.8, beam_width=4" (nulls left out)."""
    short = {"aggregation": "agg", "temperature": "T"}
    parts = []
    for col, val in row.items():
        val = _plain(val)
        if val is None:
            continue
        name = short.get(col, col.removeprefix(STRATEGY_PREFIX))
        if (
            isinstance(val, str) and len(val) > LABEL_TEXT
        ):  # e.g. a revision instruction: config_id tells apart
            val = val[: LABEL_TEXT - 3] + "..."
        parts.append(f"{name}={val:g}" if isinstance(val, float) else f"{name}={val}")
    return ", ".join(parts)


def hyperparams(df: pd.DataFrame) -> pd.Series:
    """`hyperparams_label` of every row, from `hyperparameter_columns` (computed once per distinct value)."""
    cols = hyperparameter_columns(df.columns)
    if not cols:
        return pd.Series("", index=df.index, name="hyperparams")
    codes, first = _distinct(df, cols)
    labels = [hyperparams_label({c: df[c].iloc[i] for c in cols}) for i in first]
    return pd.Series(np.asarray(labels, dtype=object)[codes], index=df.index, name="hyperparams")
