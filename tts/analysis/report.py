"""`tts analyze RESULTS_DIR`: difficulty bins, compute accounting, compute-optimal tables and plots.

    tts analyze results/smoke                       # or: python -m tts.analysis.report results/smoke
    tts analyze results/smoke --method absolute --set ci=0.9 --no-plots

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

import pandas as pd

from tts.analysis.io import NoResultsError, schema_warning
from tts.analysis.keys import ALL_BIN
from tts.analysis.text import columns_for, markdown, plain, with_ci_text

if TYPE_CHECKING:
    pass

WINNER_COLS = {
    "policy": "policy",
    "prm": "PRM",
    "bin": "bin",
    "budget": "budget (generations)",
    "flops_budget": "FLOPs budget",
    "strategy": "chosen strategy",
    "hyperparams": "hyperparameters",
    "n": "N",
    "generations_charged": "generations used",
    "acc_ci": "held-out accuracy [CI]",
    "in_ci": "in-sample (oracle) [CI]",
    "GAINS": None,  # one "vs <baseline> (held-out) [CI]" column per analysis-config baseline
    "flops_charged": "FLOPs used",
    "binning_samples": "binning samples",
    "problems": "problems",
    "fold_note": "fold",
}
CROSS_COLS = {
    "large_policy": "large policy",
    "large_hyperparams": "its single sample",
    "large_accuracy": "its accuracy",
    "policy": "smallest match",
    "prm": "PRM",
    "strategy": "strategy",
    "hyperparams": "hyperparameters",
    "n": "N",
    "acc_ci": "held-out accuracy [CI]",
    "gap_ci": "gap to large (held-out) [CI]",
    "in_sample": "in-sample (oracle)",
    "flops_ratio": "FLOPs ratio small/large",
    "fold_note": "fold",
}


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


def seed_counts(stats: pd.DataFrame) -> str:
    """Seeds per configuration (all problems): "3 (every configuration)" or "1 (4 configurations), 3 (8)"."""
    if "seeds" not in stats.columns:
        return "-"
    per = stats.loc[stats["bin"] == ALL_BIN].drop_duplicates("config_id")["seeds"].value_counts().sort_index()
    if len(per) == 1:
        return f"{int(per.index[0])} (every configuration)"
    return ", ".join(f"{int(k)} ({v} configuration{'s' if v > 1 else ''})" for k, v in per.items())


def write_report(results_dir: Path, parts: dict, meta: dict) -> Path:
    """report.md: how every number was made, bin counts and warnings, the three tables (held-out beside
    in-sample), the adaptive allocation against each baseline at N = X (X/Y with CIs), compute accounting,
    plots."""
    tables, cfg = parts["tables"], parts["cfg"]
    m = cfg.min_fold_problems
    gen, flo, cross = (with_ci_text(t, m) for t in (tables.generation, tables.flops, tables.cross_size))
    pct = int(round(tables.ci * 100))
    small = (
        [
            f"- **{len(parts['small'])} table rows rest on a fold with fewer than {m} problems of their bin: too small "
            "to select on; their held-out figures are shown but are not evidence.**"
        ]
        if len(parts["small"])
        else []
    )
    warn = [f"  - {w}" for w in parts["bin_warnings"]]
    out = [
        f"# Compute-optimal analysis: {meta['sweep']}",
        "",
        f"- results: `{results_dir}` ({meta['rows']:,} result rows, {meta['configs']} configurations, one per "
        "`config_id`: every config field but the seed)",
        f"- difficulty method: **{tables.method}** (available: {', '.join(meta['methods'])}; `--method`); "
        f"problems per bin: {meta['bin_sizes']}; seeds per configuration: {meta.get('seeds', '-')}",
        "- cells: " + "; ".join(parts["state"].lines()),
        *(["- bins to read with care:", *warn] if warn else []),
        "- accuracy: mean over problems x seeds of `expected_correct` (pool-based) else `correct`.",
        *([f"- **older results**: {parts['schema_note']}**"] if parts.get("schema_note") else []),
        f"- **held-out**: problems split into {cfg.folds} folds (stable hash of the id, stratified by bin); the "
        "winner is chosen on the other folds and scored on each fold, so every problem is scored by a choice made "
        "without it. **in-sample (oracle)**: chosen and scored on the same problems (biased upward). "
        f"[CI] = {pct}% percentile bootstrap over problems and, within each drawn problem, its seeds "
        f"({cfg.replicates} replicates, seed {cfg.seed}) that redoes the choice in every resample. Gains are "
        "held-out accuracy minus the baseline strategy's best configuration within the same budget, also chosen "
        "held-out.",
        *small,
        "- budgets are what rows spent: generation budget B admits configurations whose mean actual generations "
        "per problem are <= B; FLOPs = 2 x non-embedding policy params x (uncached prefill + generated tokens) + "
        "2 x non-embedding PRM params x PRM tokens (tts/compute.py)"
        + (
            "; binning samples the configuration does not already draw are charged"
            if meta["charged"]
            else "; binning not charged (oracle bins cannot be computed at test time)"
        ),
        "",
        "## Generation-matched: best configuration per generation budget",
        "",
        markdown(gen, columns_for(gen, WINNER_COLS)) if len(gen) else "_No rows._",
        "",
        "## FLOPs-matched: best configuration within each FLOPs budget (the compute-optimal frontier)",
        "",
        markdown(flo, columns_for(flo, WINNER_COLS)) if len(flo) else "_No rows._",
        "",
        *_tokens_section(tables.tokens, parts["thinking"], m),
        "## Small policy + test-time compute vs a larger policy's single sample (all problems)",
        "",
        markdown(cross, CROSS_COLS)
        if len(cross)
        else "_Only one policy size (or no N=1 cell) in this sweep._",
        "",
        *_fallback_section(parts.get("grading")),
        *parts["revisions"],
        *_adaptive_section(parts["adaptive"], parts["adaptive_notes"], cfg),
        "## Compute accounting per configuration (all problems, per problem)",
        "",
        markdown(
            compute_table(parts["candidates"]), {c: c for c in compute_table(parts["candidates"]).columns}
        ),
        "",
        "## Plots",
        "",
    ]
    out += [
        f"![{p.stem}]({p.relative_to(results_dir).as_posix()})" for p in parts["plots"] if p.suffix == ".png"
    ]
    path = results_dir / "report.md"
    path.write_text("\n".join(out) + "\n")
    return path


def _tokens_section(table: pd.DataFrame, thinking: bool, min_fold: int) -> list[str]:
    """Generated-tokens-matched winners, shown when the sweep has a thinking-budget strategy (its budget axis)."""
    if not thinking:
        return []
    t = with_ci_text(table, min_fold)
    cols = {"tokens_budget": "generated tokens budget", "tokens_out": "generated tokens used"}
    cols |= {k: v for k, v in columns_for(t, WINNER_COLS).items() if k not in ("budget", "flops_budget")}
    return [
        "## Generated-tokens-matched: best configuration within each budget of generated tokens per problem",
        "",
        "Thinking budgets (one long chain) against parallel samples at the same generated tokens.",
        "",
        markdown(t, cols) if len(t) else "_No rows._",
        "",
    ]


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
        "--config", default=None, help="analysis config YAML (default conf/analysis/default.yaml)"
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an analysis config key, e.g. --set folds=3 --set replicates=200 (repeatable)",
    )
    ap.add_argument("--no-plots", action="store_true", help="skip the plots")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the summary even if it is up to date")
    ap.add_argument(
        "--watch",
        nargs="?",
        const=10.0,
        type=float,
        default=None,
        metavar="SECONDS",
        help="keep running: re-render the report whenever new cells land (polls every SECONDS, default 10; "
        "only the new cell files are read); Ctrl-C stops",
    )
    return ap


def _flag_incomplete(tables, incomplete: dict[str, str]):
    """Mark winners whose configuration has failed or corrupt cells: "(incomplete)" after their hyperparameters."""
    if not incomplete:
        return tables
    from dataclasses import fields, replace

    def mark(t: pd.DataFrame) -> pd.DataFrame:
        if not len(t) or "config_id" not in t.columns or "hyperparams" not in t.columns:
            return t
        flag = t["config_id"].isin(list(incomplete))
        return t.assign(
            hyperparams=t["hyperparams"].where(~flag, t["hyperparams"].astype(str) + " (incomplete)")
        )

    frames = {
        f.name: mark(getattr(tables, f.name))
        for f in fields(tables)
        if isinstance(getattr(tables, f.name), pd.DataFrame)
    }
    return replace(tables, **frames)


ADAPTIVE_RATIO_COLS = {
    "policy": "policy",
    "prm": "PRM",
    "baseline": "baseline",
    "x": "X (baseline N)",
    "base_ci": "baseline at N = X (held-out) [CI]",
    "y_text": "Y: compute-optimal reaches it at",
    "opt_accuracy": "compute-optimal accuracy at Y",
    "ratio_ci": "X/Y [CI]",
    "reached_text": "reached (resamples)",
    "binning_samples": "binning samples K per problem",
    "y_charged": "Y + K",
    "ratio_charged_ci": "X/(Y + K) [CI], binning charged once per problem",
}
ADAPTIVE_CURVE_COLS = {
    "policy": "policy",
    "prm": "PRM",
    "budget": "budget",
    "curve": "curve",
    "acc_ci": "held-out accuracy [CI]",
    "in_sample": "in-sample (oracle)",
}


def _adaptive(root: Path, data, cfg, methods: list[str]):
    """The allocation (tts.analysis.adaptive.Comparison), by cfg.adaptive_method bins when the data has them,
    and the notes the section starts with."""
    from tts.analysis.adaptive import compare
    from tts.analysis.summary import load_summary

    method = cfg.adaptive_method if cfg.adaptive_method in methods else data.method
    d = data if method == data.method else load_summary(root, method, build=False)
    notes = []
    if method != cfg.adaptive_method:
        notes.append(
            f"no {cfg.adaptive_method} bins in this sweep: allocated by {method} bins instead "
            "(not deployable when those bins read labels)"
        )
    return compare(d, cfg), notes


def _adaptive_section(comp, notes: list[str], cfg) -> list[str]:
    """report.md's adaptive section: how it is computed, the X/Y table (per baseline and X), the curves."""
    from tts.analysis.adaptive import with_text

    pct = int(round(comp.ci * 100))
    curves = comp.curves.drop(columns="_reps") if len(comp.curves) else comp.curves
    if len(curves):
        curves = with_ci_text(curves.assign(fold_ok=True, fold_problems=0), 0)
    table = with_text(comp.ratios)
    return [
        f"## Difficulty-adaptive allocation (Snell et al.), by {comp.method} bins",
        "",
        *[f"- {n}" for n in notes],
        "- **compute-optimal at budget B**: in each bin, the configuration spending <= B generations per problem "
        "that is most accurate on the bin's problems of the other folds (held-out, as the tables). **Baseline "
        "at X**: the baseline strategy at exactly N = X, its other hyperparameters chosen held-out "
        f"({', '.join(cfg.adaptive_baselines) or 'none configured'}: `adaptive_baselines`). **Y**: the smallest "
        "budget of the sweep at which the compute-optimal curve reaches the baseline's accuracy at X; X/Y > 1 "
        f"means it matches the baseline with X/Y times less compute. [CI] = {pct}% percentile bootstrap that "
        "redoes every choice and Y in each resample; a resample that never reaches the baseline within the "
        "budgets swept counts below X / (largest budget), shown as `<r`.",
        "- **binning cost**: not charged in X/Y (Snell et al.'s convention). X/(Y + K) charges it once per "
        "problem: the adaptive policy spends K samples to bin a problem, then at most Y on it, against the "
        "baseline's X (no reuse of the binning samples credited: an upper bound of its spend).",
        "",
        markdown(table, ADAPTIVE_RATIO_COLS) if len(table) else "_No baseline curve to compare with._",
        "",
        markdown(curves, ADAPTIVE_CURVE_COLS) if len(curves) else "_No binned configurations._",
        "",
    ]


FALLBACK_COLS = {
    "policy": "policy",
    "prm": "PRM",
    "strategy": "strategy",
    "n": "N",
    "accuracy": "accuracy",
    "accuracy_no_fallback": "without fallback answers",
    "fallback_share": "fallback share",
}


def _fallback_section(grading: pd.DataFrame | None) -> list[str]:
    """Accuracy without answers taken by the last-number fallback, beside the accuracy, for every configuration
    where the two differ (tts.analysis.io.grading_table)."""
    if grading is None or not len(grading):
        return []
    differ = grading[(grading["accuracy"] - grading["accuracy_no_fallback"]).abs() > 1e-12]
    head = [
        "## Accuracy without last-number fallback answers",
        "",
        "Accuracy of the rows' answers (`correct`, the answer each row reports; pool rows: the chosen sample, not "
        "the expectation over subsets) beside the same with answers taken from the text's last number (no "
        "`\\boxed{}`, 'the answer is' or `####`; `extraction` = last_number) counted wrong. Whether a fallback "
        "answer counts is the evaluator's rule (`dataset.evaluator`).",
        "",
    ]
    if not len(differ):
        return [*head, "_No correct answer in this sweep came from the fallback: the figures are equal._", ""]
    table = differ.assign(
        **{c: differ[c].map(lambda v: f"{v:.3f}") for c in ("accuracy", "accuracy_no_fallback")}
    )
    table = table.assign(fallback_share=differ["fallback_share"].map(lambda v: f"{v:.1%}"))
    out = [*head, markdown(table, FALLBACK_COLS), ""]
    unrecorded = grading["unrecorded_share"].fillna(0)
    if (unrecorded > 0).any():
        out += [
            f"_{int((unrecorded > 0).sum())} configurations hold rows written before results schema 5: their "
            "fallback flag is the old rule's ('the answer is X' counted as a fallback then)._",
            "",
        ]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    root = Path(args.results_dir)
    if not root.is_dir():
        print(
            f"tts analyze: {root}: no such folder; give a sweep's results folder, e.g. results/smoke",
            file=sys.stderr,
        )
        return 2
    if args.watch is None:
        return analyze(root, args)
    return watch(root, args)


def watch(root: Path, args: argparse.Namespace, *, rounds: int | None = None) -> int:
    """`tts analyze --watch`: analyze, then again each time the folder's results change (manifests and
    difficulty.parquet: tts.analysis.io.results_stamp); the summary reads only the cells that landed since.
    `rounds`: stop after that many analyses (tests)."""
    import time

    from tts.analysis.io import results_stamp

    done, seen, code = 0, None, 0
    try:
        while rounds is None or done < rounds:
            stamp = results_stamp(root) if any(root.rglob("manifest.jsonl")) else None
            if stamp is not None and stamp != seen:
                # the stamp from before: a cell landing mid-analysis is never missed (our own first write of
                # difficulty.parquet costs one extra analysis)
                seen = stamp
                code = analyze(root, args)
                done += 1
                print(f"tts analyze: watching {root} (every {args.watch:g} s; Ctrl-C stops)", flush=True)
            if rounds is None or done < rounds:
                time.sleep(args.watch)
    except KeyboardInterrupt:
        return code
    return code


def analyze(root: Path, args: argparse.Namespace) -> int:
    """One analysis of `root` (what `tts analyze` does once)."""
    import json

    from tts.analysis.completeness import folder_state
    from tts.analysis.difficulty import bin_counts, bin_warnings
    from tts.analysis.revisions import ratio_tables, report_lines
    from tts.analysis.settings import load_analysis_config
    from tts.analysis.summary import build_summary, load_summary
    from tts.analysis.summary import grading as summary_grading
    from tts.analysis.tables import candidates, compute_optimal_tables

    state = folder_state(root)
    if state.ok == 0 and (state.failed or state.corrupt or state.missing):
        print(f"tts analyze: {root}: no finished cells to analyze", file=sys.stderr)
        for line in state.lines():
            print(f"  {line}", file=sys.stderr)
        return 1
    if not state.complete:
        for line in state.lines():
            print(f"tts analyze: warning: {line}", file=sys.stderr)
    try:
        cfg = load_analysis_config(args.config, args.set)
        out = build_summary(root, force=args.rebuild)
        data = load_summary(root, args.method, build=False)
    except (NoResultsError, ValueError) as exc:
        print(f"tts analyze: {exc}", file=sys.stderr)
        return 2
    methods = json.loads((out / "meta.json").read_text())["methods"]
    tables = _flag_incomplete(compute_optimal_tables(data, cfg), state.incomplete)
    cands = candidates(data, charge=cfg.charges(data.method))
    counts = bin_counts(data.bins)
    warnings = bin_warnings(counts)
    for w in warnings:
        print(f"tts analyze: warning: {w}", file=sys.stderr)
    schema_note = schema_warning(root)
    if schema_note:
        print(f"tts analyze: warning: {schema_note}", file=sys.stderr)
    comp, adaptive_notes = _adaptive(root, data, cfg, methods)
    ratios, ratio_winners = ratio_tables(cands, data, cfg)
    paths: list[Path] = []
    if not args.no_plots:
        from tts.analysis import plots as plotting  # matplotlib: imported only when plotting

        paths = plotting.all_plots(cands, tables.flops, root / "plots", method=data.method)
        paths += plotting.revision_ratio(ratios, root / "plots", method=data.method)
        paths += plotting.adaptive_allocation(
            comp.curves, root / "plots", method=comp.method, ratios=comp.ratios
        )
        paths += _coverage(root, data.method)
    small = pd.concat(
        [t[~t["fold_ok"]] for t in (tables.generation, tables.flops) if len(t)] or [pd.DataFrame()]
    )
    meta = {
        "sweep": root.name,
        "rows": int(data.stats.loc[data.stats["bin"] == ALL_BIN, "rows"].sum()),
        "configs": int(data.stats["config_id"].nunique()),
        "seeds": seed_counts(data.stats),
        "methods": methods,
        "charged": cfg.charges(data.method),
        "bin_sizes": "; ".join(
            f"{p}: " + ", ".join(f"{r.bin}={r.problems}" for r in g.itertuples())
            for p, g in counts.groupby("policy")
        ),
    }
    parts = {
        "tables": tables,
        "cfg": cfg,
        "candidates": cands,
        "plots": paths,
        "small": small,
        "bin_warnings": warnings,
        "schema_note": schema_note,
        "grading": summary_grading(root),
        "adaptive": comp,
        "adaptive_notes": adaptive_notes,
        "state": state,
        "revisions": report_lines(ratios, ratio_winners, cfg.ci),
        "thinking": any(data.trait(n, "thinking") for n in cands["strategy"].dropna().unique()),
        "trait": data.trait,
    }
    report = write_report(root, parts, meta)
    data.selection_index().prune_memo()  # sums of groups that changed since the last analysis
    from tts.analysis.html_report import write_html

    page = write_html(root, parts, meta)
    print(
        f"Compute-optimal configurations (generation-matched, held-out; difficulty: {data.method}; "
        f"{int(round(cfg.ci * 100))}% bootstrap CI)\n"
    )
    gen = with_ci_text(tables.generation, cfg.min_fold_problems)
    print(plain(gen, columns_for(gen, WINNER_COLS)) if len(gen) else "(no rows)")
    _print_adaptive(comp, adaptive_notes)
    print(
        f"\nwrote {report}, {page}"
        + (f" and {len(paths)} plot files under {root / 'plots'}" if paths else "")
    )
    return 0


def _print_adaptive(comp, notes: list[str]) -> None:
    """The X/Y table on the terminal (the curves stay in report.md)."""
    from tts.analysis.adaptive import with_text

    if comp.ratios.empty:
        return
    cols = {
        k: v for k, v in ADAPTIVE_RATIO_COLS.items() if k not in ("base_ci", "opt_accuracy", "reached_text")
    }
    print(f"\nDifficulty-adaptive allocation by {comp.method} bins (held-out) vs each baseline at N = X")
    for n in notes:
        print(n)
    print(plain(with_text(comp.ratios), cols))


def _coverage(root: Path, method: str) -> list[Path]:
    """The coverage (pass@k) plot of the sample pools under plots/ (none without pools)."""
    from tts.analysis.coverage import coverage_report

    try:
        _, _, files = coverage_report(root, method=None, out_dir=root / "plots")
    except (FileNotFoundError, ValueError):
        return []
    return [f for f in files if f.suffix in (".png", ".svg")]


if __name__ == "__main__":
    sys.exit(main())
