"""What difficulty binning costs, and which bins are too small to trust: the analysis side of tts.difficulty.

Why here: the bins themselves are cut in tts.difficulty (shared with the runtime); only the analysis needs
their cost in compute and the warnings about empty or tiny bins.

  binning_cost    tokens each problem's binning spent (its first `samples_used` samples)
  charge_binning  rows with that cost added (generations_charged, flops_charged)
  bin_counts      problems per (policy, bin), every expected bin listed (0 = empty), with a warning text
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tts.difficulty import _first_samples, _need

TINY_BIN = 10  # fewer problems than this in a bin: warned about (a bin this small cannot carry a table row)


def binning_cost(difficulty: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """Tokens the binning spent per (policy, method, problem_id): its first `samples_used` samples' prompt
    (prefilled once) plus generated tokens, and the PRM tokens (charged only to `predicted`, the one method
    that needs the PRM). Columns: policy, method, problem_id, samples_used, binning_tokens, binning_prm_tokens."""
    _need(samples, ("policy", "problem_id", "tokens_out"), "binning_cost")
    s = _first_samples(samples, None).sort_values(["policy", "problem_id", "sample_idx"])
    s = s.assign(_rank=s.groupby(["policy", "problem_id"]).cumcount())
    m = difficulty[["policy", "method", "problem_id", "samples_used"]].merge(s, on=["policy", "problem_id"])
    m = m[m["_rank"] < m["samples_used"]]
    prm_tok = m["prm_tokens"].fillna(0) if "prm_tokens" in m.columns else 0
    m = m.assign(_out=m["tokens_out"].fillna(0), _prm=np.where(m["method"] == "predicted", prm_tok, 0))
    g = m.groupby(["policy", "method", "problem_id"], sort=True)
    out = pd.DataFrame(
        {"samples_used": g["samples_used"].first(), "_out": g["_out"].sum(), "_prm": g["_prm"].sum()}
    )
    prompt = g["prompt_tokens"].first().fillna(0) if "prompt_tokens" in m.columns else 0
    out["binning_tokens"] = (out.pop("_out") + prompt).astype("int64")
    out["binning_prm_tokens"] = out.pop("_prm").astype("int64")
    zero = difficulty.loc[difficulty["samples_used"] == 0, ["policy", "method", "problem_id", "samples_used"]]
    return pd.concat(
        [out.reset_index(), zero.assign(binning_tokens=0, binning_prm_tokens=0)], ignore_index=True
    )


def charge_binning(
    rows: pd.DataFrame, difficulty: pd.DataFrame, cost: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Rows (one difficulty method) with the binning charged: bin, binning_samples, binning_flops,
    generations_charged = generations + samples used, flops_charged = flops + binning FLOPs
    (2 x policy_params x binning tokens + 2 x prm_params x binning PRM tokens). Without `cost` (no sample
    pool at hand), binning FLOPs are estimated as samples_used x the row's policy FLOPs per generation."""
    methods = difficulty["method"].unique()
    if len(methods) != 1:
        raise ValueError(f"difficulty: holds methods {sorted(methods)}; pass the rows of one method")
    diff = difficulty[["policy", "problem_id", "bin", "samples_used"]]
    out = rows.merge(diff, on=["policy", "problem_id"], how="left", validate="many_to_one")
    used = out["samples_used"].fillna(0)
    if cost is not None:
        c = cost[cost["method"] == methods[0]][
            ["policy", "problem_id", "binning_tokens", "binning_prm_tokens"]
        ]
        out = out.merge(c, on=["policy", "problem_id"], how="left")
        flops = 2.0 * out["policy_params"] * out["binning_tokens"].fillna(0)
        flops += 2.0 * out["prm_params"].fillna(0) * out["binning_prm_tokens"].fillna(0)
        out = out.drop(columns=["binning_tokens", "binning_prm_tokens"])
    else:
        flops = used * out["flops_policy"] / out["generations"].where(out["generations"] > 0)
    out = out.rename(columns={"samples_used": "binning_samples"})
    out["binning_samples"] = used.astype("int64")
    out["binning_flops"] = flops.fillna(0.0)
    out["generations_charged"] = out["generations"] + out["binning_samples"]
    out["flops_charged"] = out["flops"] + out["binning_flops"]
    return out


def bin_counts(bins: pd.DataFrame, *, num_bins: int | None = None, tiny: int = TINY_BIN) -> pd.DataFrame:
    """Problems per (policy, bin) with `status` "ok" | "tiny" | "empty". Numeric bins 1..num_bins are all
    listed (num_bins defaults to the largest label seen), so a bin that ties emptied shows up with 0."""
    counts = bins.groupby(["policy", "bin"]).size().rename("problems").reset_index()
    labels = pd.to_numeric(counts["bin"], errors="coerce")
    if labels.notna().all() and len(counts):
        top = int(num_bins or labels.max())
        full = pd.MultiIndex.from_product(
            [sorted(counts["policy"].unique()), [str(b) for b in range(1, top + 1)]], names=["policy", "bin"]
        )
        counts = counts.set_index(["policy", "bin"]).reindex(full, fill_value=0).reset_index()
    counts["status"] = np.where(
        counts["problems"] == 0, "empty", np.where(counts["problems"] < tiny, "tiny", "ok")
    )
    return counts


def bin_warnings(counts: pd.DataFrame) -> list[str]:
    """One line per empty or tiny bin: "policy p: bin 2 is empty (0 problems)"."""
    bad = counts[counts["status"] != "ok"]
    return [
        f"policy {r.policy}: bin {r.bin} is {r.status} ({r.problems} problems"
        + (f" < {TINY_BIN})" if r.status == "tiny" else ")")
        for r in bad.itertuples(index=False)
    ]
