"""`tts analyze RESULTS_DIR`: difficulty bins, compute accounting, compute-optimal tables and plots.

    tts analyze results/smoke                       # or: python -m tts.analysis.report results/smoke
    tts analyze results/smoke --method absolute --ci 0.9 --no-plots

Writes <results>/report.md (tables, linked plots) and <results>/plots/*.png|svg, materialises the summary
(<results>/summary/, reused while the result files are unchanged) and prints the generation-matched
compute-optimal table to the terminal. Why a module of its own: the CLI only dispatches here
(tts.cli -> "tts.analysis.report:main"), so the analysis stack is imported only when asked for.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tts.analysis.io import NoResultsError
from tts.analysis.keys import ALL_BIN

if TYPE_CHECKING:
    from tts.analysis.tables import Tables

GEN_COLS = {
    "policy": "policy",
    "prm": "PRM",
    "bin": "bin",
    "n": "N",
    "strategy": "best strategy",
    "hyperparams": "hyperparameters",
    "acc_ci": "accuracy [CI]",
    "gain_vs_best_of_n": "vs best-of-N",
    "gain_vs_majority": "vs majority",
    "flops": "FLOPs/problem",
    "problems": "problems",
}
FLOPS_COLS = {
    "policy": "policy",
    "prm": "PRM",
    "bin": "bin",
    "flops_budget": "FLOPs budget",
    "strategy": "best strategy",
    "hyperparams": "hyperparameters",
    "n": "N",
    "acc_ci": "accuracy [CI]",
    "flops_charged": "FLOPs used",
    "gain_vs_best_of_n": "vs best-of-N",
    "gain_vs_majority": "vs majority",
}
CROSS_COLS = {
    "bin": "bin",
    "large_policy": "large policy",
    "large_accuracy": "its N=1 accuracy",
    "policy": "smallest match",
    "prm": "PRM",
    "strategy": "strategy",
    "hyperparams": "hyperparameters",
    "n": "N",
    "acc_ci": "accuracy [CI]",
    "flops_ratio": "FLOPs ratio small/large",
}


def _fmt(value: object, col: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if col.startswith("gain"):
        return f"{round(float(value), 3) + 0.0:+.3f}"  # + 0.0: no "-0.000"
    if "flops" in col and col != "flops_ratio":
        return f"{value:.2e}"
    if col == "flops_ratio":
        return f"{value:.3g}x"
    if isinstance(value, float | np.floating):
        return f"{value:.3f}" if not float(value).is_integer() or "accuracy" in col else f"{int(value)}"
    return str(value)


def with_ci_text(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["acc_ci"] = [
        "-" if np.isnan(a) else (f"{a:.3f} [{lo:.3f}, {hi:.3f}]" if not np.isnan(lo) else f"{a:.3f}")
        for a, lo, hi in zip(
            out["accuracy"].astype(float),
            out["ci_low"].astype(float),
            out["ci_high"].astype(float),
            strict=True,
        )
    ]
    return out


def markdown(df: pd.DataFrame, columns: dict[str, str]) -> str:
    """A GitHub-markdown table of `columns` (source name -> header)."""
    cols = [c for c in columns if c in df.columns]
    lines = ["| " + " | ".join(columns[c] for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for rec in df[cols].itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v, c) for v, c in zip(rec, cols, strict=True)) + " |")
    return "\n".join(lines)


def plain(df: pd.DataFrame, columns: dict[str, str]) -> str:
    """A fixed-width text table for the terminal."""
    cols = [c for c in columns if c in df.columns]
    cells = [[columns[c] for c in cols]] + [
        [_fmt(v, c) for v, c in zip(r, cols, strict=True)] for r in df[cols].itertuples(index=False)
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*row) for row in cells)


def compute_table(candidates: pd.DataFrame) -> pd.DataFrame:
    """Compute accounting per configuration over all problems: generations, tokens, FLOPs per problem."""
    c = candidates[candidates["bin"] == ALL_BIN]
    cols = [
        "policy",
        "prm",
        "strategy",
        "hyperparams",
        "n",
        "generations",
        "tokens",
        "flops_policy",
        "flops_prm",
        "flops",
        "accuracy",
    ]
    return c.sort_values(["policy", "prm", "strategy", "hyperparams", "n"])[cols].drop_duplicates()


def write_report(
    results_dir: Path, tables: Tables, candidates: pd.DataFrame, plots: list[Path], meta: dict
) -> Path:
    """report.md: a header saying how every number was made, the three tables, compute accounting, plots."""
    gen, flo, cross = (with_ci_text(t) for t in (tables.generation, tables.flops, tables.cross_size))
    pct = int(round(tables.ci * 100))
    parts = [
        f"# Compute-optimal analysis: {meta['sweep']}",
        "",
        f"- results: `{results_dir}` ({meta['rows']:,} result rows, {meta['configs']} configurations)",
        f"- difficulty method: **{tables.method}** (available: {', '.join(meta['methods'])}; choose with "
        "`--method`); bin sizes per policy: " + meta["bin_sizes"],
        f"- accuracy: mean over problems x seeds of `expected_correct` (pool strategies) else `correct`; "
        f"[CI] = {pct}% percentile bootstrap over the bin's problems ({meta['replicates']} replicates, seed "
        f"{meta['seed']})",
        "- FLOPs = 2 x policy params x (uncached prefill + generated tokens) + 2 x PRM params x PRM-read tokens, "
        "per problem"
        + (" ; FLOPs-matched budgets include the samples spent on binning" if meta["charged"] else ""),
        "",
        "## Generation-matched: best strategy per budget N",
        "",
        markdown(gen, GEN_COLS),
        "",
        "## FLOPs-matched: best strategy within each FLOPs budget (the compute-optimal frontier)",
        "",
        markdown(flo, FLOPS_COLS),
        "",
        "## Small policy + test-time compute vs a larger policy's single sample",
        "",
        markdown(cross, CROSS_COLS) if len(cross) else "_Only one policy size in this sweep._",
        "",
        "## Compute accounting per configuration (all problems, per problem)",
        "",
        markdown(compute_table(candidates), {c: c for c in compute_table(candidates).columns}),
        "",
        "## Plots",
        "",
    ]
    parts += [f"![{p.stem}]({p.relative_to(results_dir).as_posix()})" for p in plots if p.suffix == ".png"]
    path = results_dir / "report.md"
    path.write_text("\n".join(parts) + "\n")
    return path


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="tts analyze", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("results_dir", help="a sweep's results folder (holds manifest.jsonl), e.g. results/smoke")
    ap.add_argument(
        "--method",
        default=None,
        help="difficulty method: oracle_quantile | absolute | predicted | dataset_level "
        "(default: the sweep's when it restricted cells to bins, else oracle_quantile when sample pools "
        "exist, else dataset_level)",
    )
    ap.add_argument(
        "--ci", type=float, default=0.95, help="confidence level of the bootstrap CIs (default 0.95)"
    )
    ap.add_argument("--replicates", type=int, default=1000, help="bootstrap replicates (default 1000)")
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    ap.add_argument("--grid-step", type=float, default=1.0, help="octaves between FLOPs budgets (default 1)")
    ap.add_argument(
        "--no-charge-binning", action="store_true", help="leave binning samples out of FLOPs budgets"
    )
    ap.add_argument("--no-plots", action="store_true", help="skip the plots")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the summary even if it is up to date")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    root = Path(args.results_dir)
    if not root.is_dir():
        print(
            f"tts analyze: {root}: no such folder; give a sweep's results folder, e.g. results/smoke",
            file=sys.stderr,
        )
        return 2
    from tts.analysis import plots as plotting
    from tts.analysis.summary import build_summary, load_summary
    from tts.analysis.tables import candidates as make_candidates
    from tts.analysis.tables import compute_optimal_tables

    try:
        out = build_summary(root, force=args.rebuild)
        data = load_summary(root, args.method, build=False)
    except NoResultsError as exc:
        print(f"tts analyze: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"tts analyze: {exc}", file=sys.stderr)
        return 2
    charged = not args.no_charge_binning
    tables = compute_optimal_tables(
        data,
        ci=args.ci,
        replicates=args.replicates,
        seed=args.seed,
        grid_step=args.grid_step,
        charge_binning=charged,
    )
    cands = make_candidates(data, charge_binning=charged)
    paths = (
        [] if args.no_plots else plotting.all_plots(cands, tables.flops, root / "plots", method=data.method)
    )
    import json

    methods = json.loads((out / "meta.json").read_text())["methods"]
    sizes = data.bins.groupby(["policy", "bin"]).size()
    meta = {
        "sweep": root.name,
        "rows": int(data.stats.loc[data.stats["bin"] == ALL_BIN, "rows"].sum()),
        "configs": int(data.stats["config_id"].nunique()),
        "methods": methods,
        "replicates": args.replicates,
        "seed": args.seed,
        "charged": charged,
        "bin_sizes": "; ".join(
            f"{p}: " + ", ".join(f"{b}={n}" for b, n in s.droplevel(0).items())
            for p, s in sizes.groupby(level=0)
        ),
    }
    report = write_report(root, tables, cands, paths, meta)
    print(
        f"Compute-optimal strategies (generation-matched; difficulty: {data.method}; "
        f"{int(round(args.ci * 100))}% bootstrap CI)\n"
    )
    print(plain(with_ci_text(tables.generation), GEN_COLS))
    print(f"\nwrote {report}" + (f" and {len(paths)} plot files under {root / 'plots'}" if paths else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
