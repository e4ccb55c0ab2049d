"""Column groups the analysis shares: what identifies a configuration, what is a hyperparameter, what is a
compute measure.

Why one place: the summary, the tables and the plots must agree on what "the same configuration" means. A
configuration is a cell with its seed dropped (seeds are repeats), so its accuracy pools every seed's rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# A configuration: every cell column but the seed (and the problem-level outcome columns).
CONFIG_KEYS: tuple[str, ...] = (
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
    "beam_width",
    "max_steps",
    "lookahead",
)
# The strategy's own knobs, shown as "hyperparameters" in the tables.
HYPERPARAMS: tuple[str, ...] = ("aggregation", "temperature", "beam_width", "max_steps", "lookahead")
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
# Baselines the tables report gains over.
BEST_OF_N = "best_of_n"
MAJORITY_VOTE = "majority_vote"
# A bin label covering every problem of a (policy, dataset).
ALL_BIN = "all"


def hyperparams_label(row: dict) -> str:
    """A short human label of a row's hyperparameters: "agg=last, M=4, steps=8" (nulls left out)."""
    short = {
        "aggregation": "agg",
        "temperature": "T",
        "beam_width": "M",
        "max_steps": "steps",
        "lookahead": "k",
    }
    parts = []
    for col in HYPERPARAMS:
        val = row.get(col)
        if val is None or pd.isna(val):
            continue
        if isinstance(val, float | np.floating) and float(val).is_integer() and col != "temperature":
            val = int(val)
        elif isinstance(val, np.generic):
            val = val.item()
        parts.append(f"{short[col]}={val:g}" if isinstance(val, float) else f"{short[col]}={val}")
    return ", ".join(parts)
