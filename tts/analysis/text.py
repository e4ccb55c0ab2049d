"""Text forms of the analysis tables: numbers with their CIs, markdown for report.md, fixed width for the terminal.

Why one module: report.md, the terminal summary and every section (compute-optimal tables, revisions, adaptive
allocation) must print a figure and its interval the same way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def fmt_value(value: object, col: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, str):
        return value
    if col.startswith("gain"):
        return f"{round(float(value), 3) + 0.0:+.3f}"  # + 0.0: no "-0.000"
    if "flops" in col and col != "flops_ratio":
        return f"{value:.2e}"
    if col == "flops_ratio":
        return f"{value:.3g}x"
    if isinstance(value, float | np.floating):
        return f"{value:.3f}" if not float(value).is_integer() or "accuracy" in col else f"{int(value)}"
    return str(value)


def ci_text(a: float, lo: float, hi: float, *, sign: bool = False) -> str:
    if a is None or np.isnan(a):
        return "-"
    f = (lambda v: f"{round(float(v), 3) + 0.0:+.3f}") if sign else (lambda v: f"{v:.3f}")
    return f"{f(a)} [{f(lo)}, {f(hi)}]" if not np.isnan(lo) else f(a)


def with_ci_text(df: pd.DataFrame, min_fold: int) -> pd.DataFrame:
    """Text columns: held-out and in-sample accuracy with CIs, each baseline's gain, the fold note."""
    out = df.copy()
    if out.empty:
        return out
    out["acc_ci"] = [ci_text(*v) for v in zip(out["accuracy"], out["ci_low"], out["ci_high"], strict=True)]
    if "in_sample_low" in out.columns:
        out["in_ci"] = [
            ci_text(*v)
            for v in zip(out["in_sample"], out["in_sample_low"], out["in_sample_high"], strict=True)
        ]
    if "gap" in out.columns:
        out["gap_ci"] = [
            ci_text(*v, sign=True) for v in zip(out["gap"], out["gap_low"], out["gap_high"], strict=True)
        ]
    for label in gain_labels(out):
        out[f"gain_ci:{label}"] = [
            ci_text(*v, sign=True)
            for v in zip(
                out[f"gain:{label}"], out[f"gain_low:{label}"], out[f"gain_high:{label}"], strict=True
            )
        ]
    out["fold_note"] = [
        "ok" if ok else f"too small to select on ({n} < {min_fold} problems a fold)"
        for ok, n in zip(out["fold_ok"], out["fold_problems"], strict=True)
    ]
    return out


def gain_labels(df: pd.DataFrame) -> list[str]:
    return [c.removeprefix("gain:") for c in df.columns if c.startswith("gain:")]


def columns_for(df: pd.DataFrame, spec: dict[str, str | None]) -> dict[str, str]:
    """`spec` with its GAINS placeholder expanded into the frame's baseline gain columns."""
    cols: dict[str, str] = {}
    for k, v in spec.items():
        if k == "GAINS":
            cols |= {f"gain_ci:{g}": f"vs {g} (held-out) [CI]" for g in gain_labels(df)}
        elif v is not None:
            cols[k] = v
    return cols


def markdown(df: pd.DataFrame, columns: dict[str, str]) -> str:
    """A GitHub-markdown table of `columns` (source name -> header)."""
    cols = [c for c in columns if c in df.columns]
    lines = ["| " + " | ".join(columns[c] for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for rec in df[cols].itertuples(index=False):
        lines.append("| " + " | ".join(fmt_value(v, c) for v, c in zip(rec, cols, strict=True)) + " |")
    return "\n".join(lines)


def plain(df: pd.DataFrame, columns: dict[str, str]) -> str:
    """A fixed-width text table for the terminal."""
    cols = [c for c in columns if c in df.columns]
    cells = [[columns[c] for c in cols]] + [
        [fmt_value(v, c) for v, c in zip(r, cols, strict=True)] for r in df[cols].itertuples(index=False)
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*row) for row in cells)
