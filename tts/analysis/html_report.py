"""report.html: the report as one self-contained page: sortable, filterable tables, hover charts, a trace viewer.

    tts analyze results/smoke          # writes report.md and report.html side by side

Why a page beside report.md: the markdown tables are too wide to read and cannot be sorted or filtered, and the
static plots cannot say which configuration a point is. The page holds the same tables (text from
tts.analysis.text, so every figure and CI reads as in report.md; incomplete configurations and too-small folds
marked), the curves as SVG charts drawn in the browser (hover: configuration, CI, problems, budget spent), and a
viewer for the traces search cells store (results schema 6, `trace`: tree, steps, step scores, votes).

Self-contained: the data is one JSON payload and the script and style (static/report.js, static/report.css,
package data) are inlined, so the file opens offline, is mailed as is, and makes no network request.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from tts.analysis.keys import ALL_BIN
from tts.analysis.text import columns_for, fmt_value, with_ci_text

FILTER_KEYS = ("policy", "prm", "bin", "budget", "flops_budget", "tokens_budget", "strategy")
PAGE_TRACES = 400  # traces in one page at most (about 5 KB each): report.html stays well under 5 MB
TRACE_COLUMNS = [
    "config_id", "policy", "prm", "strategy", "n", "problem_id", "level", "answer", "reference", "correct",
    "candidate_answers", "candidate_scores", "candidate_correct", "candidate_finish_reasons", "trace",
]  # fmt: skip


def write_html(results_dir: Path, parts: dict, meta: dict) -> Path:
    """Write <results>/report.html from what report.md was made of (tts.analysis.report.analyze's `parts`)."""
    data = payload(results_dir, parts, meta)
    path = results_dir / "report.html"
    path.write_text(render(data))
    return path


def _finite(value: Any) -> Any:
    """The payload with NaN and infinite floats as null (JSON has no NaN; a cell's `extra`, a score or a CI
    bound may hold one), lists, tuples and dicts walked."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def render(data: dict[str, Any]) -> str:
    """The page: static HTML shell, the payload as JSON (every `<` written as \\u003c, so no model text can
    close or open a script), the inlined style and script."""
    static = resources.files("tts.analysis") / "static"
    css, js = (static / "report.css").read_text(), (static / "report.js").read_text()
    blob = json.dumps(_finite(data), separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in data["notes"])
    title = html.escape(data["title"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{css}</style></head>
<body>
<header><h1>{title}</h1><div class="meta">{html.escape(data["subtitle"])}</div></header>
<nav><button class="active" data-tab="tab-tables">Tables</button><button data-tab="tab-charts">Charts</button>
<button data-tab="tab-traces">Trace viewer</button><button data-tab="tab-notes">How the numbers were made</button></nav>
<main>
<section class="tab active" id="tab-tables"><div id="tables"></div></section>
<section class="tab" id="tab-charts"><div id="charts"></div></section>
<section class="tab" id="tab-traces"><h2>Search traces</h2><div id="traces"></div></section>
<section class="tab" id="tab-notes"><ul class="note">{notes}</ul></section>
</main>
<div id="tooltip"></div>
<script type="application/json" id="report-data">{blob}</script>
<script>{js}</script>
</body></html>
"""


def payload(results_dir: Path, parts: dict, meta: dict) -> dict[str, Any]:
    """The JSON the page draws: title, the notes of report.md's header, the tables, the chart points, the
    traces."""
    from tts.analysis.report import ADAPTIVE_RATIO_COLS, CROSS_COLS, WINNER_COLS, compute_table

    tables, cfg = parts["tables"], parts["cfg"]
    m = cfg.min_fold_problems
    gen, flo, cross = (with_ci_text(t, m) for t in (tables.generation, tables.flops, tables.cross_size))
    cands = parts["candidates"]
    out = [
        _table("generation", "Generation-matched: best configuration per generation budget (held-out)", gen,
               columns_for(gen, WINNER_COLS)),
        _table("flops", "FLOPs-matched: best configuration within each FLOPs budget (the frontier)", flo,
               columns_for(flo, WINNER_COLS)),
        _table("cross", "Small policy + test-time compute vs a larger policy's single sample", cross, CROSS_COLS),
        _table("compute", "Compute accounting per configuration (all problems, per problem)",
               compute_table(cands), {c: c for c in compute_table(cands).columns}),
    ]  # fmt: skip
    comp = parts.get("adaptive")
    if comp is not None and len(comp.ratios):
        from tts.analysis.adaptive import with_text

        out.append(_table("adaptive", "Difficulty-adaptive allocation vs each baseline at N = X",
                          with_text(comp.ratios), ADAPTIVE_RATIO_COLS))  # fmt: skip
    traces, note = _traces(results_dir, cands)
    return {
        "title": f"Compute-optimal analysis: {meta['sweep']}",
        "subtitle": f"{meta['rows']:,} result rows · {meta['configs']} configurations · difficulty: "
        f"{tables.method} · {int(round(tables.ci * 100))}% bootstrap CIs · {results_dir}",
        "notes": _notes(results_dir),
        "tables": [t for t in out if t is not None],
        "charts": _charts(cands, tables.flops, tables.generation, parts["trait"]),
        "traces": traces,
        "trace_note": note,
    }


def _notes(results_dir: Path) -> list[str]:
    """report.md's header bullets (how every number was made), as plain text."""
    path = results_dir / "report.md"
    if not path.exists():
        return []
    lines = path.read_text().split("\n## ")[0].splitlines()
    return [
        ln.lstrip("- ").replace("**", "").replace("`", "") for ln in lines if ln.startswith(("- ", "  - "))
    ]


def _table(tid: str, title: str, df: pd.DataFrame, columns: dict[str, str]) -> dict[str, Any] | None:
    """One table as text cells (fmt_value: as report.md prints them), its filter columns and row flags."""
    cols = [c for c in columns if c in df.columns]
    rows = []
    for rec in df.to_dict("records") if len(df) else []:
        flags = []
        if "(incomplete)" in str(rec.get("hyperparams", "")):
            flags.append("incomplete")
        if "fold_ok" in rec and not bool(rec["fold_ok"]):
            flags.append("smallfold")
        rows.append({"cells": [fmt_value(rec[c], c) for c in cols], "flags": flags})
    return {
        "id": tid,
        "title": title,
        "columns": [{"key": c, "label": columns[c]} for c in cols],
        "filters": [i for i, c in enumerate(cols) if c in FILTER_KEYS],
        "rows": rows,
        "note": "Rows marked incomplete belong to a configuration with failed or corrupt cells; grey rows rest on "
        "a fold too small to select on."
        if tid in ("generation", "flops")
        else "",
    }


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else f


def _charts(
    cands: pd.DataFrame, flops: pd.DataFrame, generation: pd.DataFrame, trait: Callable[[object, str], bool]
) -> list[dict[str, Any]]:
    """Chart points: every configuration's accuracy against the generations it spent (normal CI from its standard
    error), and the held-out compute-optimal curves against the FLOPs and generation budgets (bootstrap CIs)."""
    pts = []
    for r in cands.to_dict("records"):
        acc, se = _num(r.get("accuracy")), _num(r.get("se")) or 0.0
        if acc is None:
            continue
        series = f"{r['policy']} · {r['prm']} · {r['strategy']}"
        if not trait(r["strategy"], "pool_based"):  # pool strategies differ by N only: one series each
            series += f" · {r['hyperparams']}"
        pts.append({
            "bin": str(r["bin"]), "series": series, "x": _num(r.get("generations")) or 0.0, "y": acc,
            "lo": max(acc - 1.96 * se, 0.0), "hi": min(acc + 1.96 * se, 1.0),
            "tip": f"{r['policy']} · PRM {r['prm']} · {r['strategy']} N={r['n']}\n{r['hyperparams']}\n"
            f"accuracy {acc:.3f} [{max(acc - 1.96 * se, 0):.3f}, {min(acc + 1.96 * se, 1):.3f}] (normal 95%)\n"
            f"problems {r['problems']} · seeds {r.get('seeds', '-')}\n"
            f"spent per problem: {r['generations']:.2f} generations, {r['flops']:.3g} FLOPs, {r['tokens']:.0f} tokens",
        })  # fmt: skip
    charts = [
        {
            "id": "configs",
            "title": "Accuracy against generations spent, every configuration",
            "note": "Bars: 95% normal interval from the standard error over problems x seeds. Click a legend entry "
            "to hide it.",
            "xlabel": "generations per problem (actually spent, log scale)",
            "ylabel": "accuracy",
            "xlog": True,
            "defaultBin": ALL_BIN,
            "points": pts,
        }
    ]
    for cid, table, xcol, label in (
        ("frontier-flops", flops, "flops_budget", "FLOPs budget per problem (log scale)"),
        ("frontier-generations", generation, "budget", "generation budget per problem (log scale)"),
    ):
        fp = []
        for r in table.to_dict("records") if len(table) else []:
            acc = _num(r.get("accuracy"))
            if acc is None or _num(r.get(xcol)) is None:
                continue
            fp.append({
                "bin": str(r["bin"]), "series": f"{r['policy']} · {r['prm']}", "x": _num(r[xcol]), "y": acc,
                "lo": _num(r.get("ci_low")), "hi": _num(r.get("ci_high")),
                "tip": f"budget {fmt_value(r[xcol], xcol)}: {r['strategy']} N={r['n']}\n{r['hyperparams']}\n"
                f"held-out accuracy {fmt_value(acc, 'accuracy')} [{fmt_value(r.get('ci_low'), 'accuracy')}, "
                f"{fmt_value(r.get('ci_high'), 'accuracy')}]\nproblems {r['problems']}\n"
                f"spent: {r['generations']:.2f} generations, {r['flops']:.3g} FLOPs per problem",
            })  # fmt: skip
        charts.append({
            "id": cid,
            "title": f"Compute-optimal (held-out) against the {'FLOPs' if xcol != 'budget' else 'generation'} budget",
            "note": "Each point: the configuration chosen on the other folds at that budget, scored held-out; bars: "
            "bootstrap CI.",
            "xlabel": label, "ylabel": "held-out accuracy", "xlog": True, "defaultBin": ALL_BIN, "points": fp,
        })  # fmt: skip
    return charts


def _traces(results_dir: Path, cands: pd.DataFrame) -> tuple[list[dict[str, Any]], str]:
    """Every stored trace (search cell rows with a `trace`, results schema >= 6), with the row's grade and final
    candidates, labelled by configuration; and the note the viewer shows."""
    from tts.analysis.io import connect, result_files

    hyper = cands.drop_duplicates("config_id").set_index("config_id")["hyperparams"].to_dict()
    files = [str(f) for f in result_files(results_dir, "cell")]
    out: list[dict[str, Any]] = []
    stored = 0
    con = connect()
    scan = "read_parquet($f, union_by_name=true)"
    names = (
        {r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {scan}", params={"f": files}).fetchall()}
        if files
        else ()
    )
    if "trace" in names:
        # one scan for the counts, one for the rows the page can show (the first problems of every
        # configuration, in file order on ties): the traces are read and parsed only for those
        label_cols = ["config_id", "policy", "prm", "strategy", "n"]
        counts = con.sql(
            f"SELECT {', '.join(label_cols)}, count(*) AS k FROM {scan} WHERE trace IS NOT NULL GROUP BY ALL",
            params={"f": files},
        ).df()
        labels = {
            f"{r.policy} · {r.prm} · {r.strategy} N={r.n} · {hyper.get(r.config_id, '')}"
            for r in counts.itertuples()
        }
        stored = int(counts["k"].sum())
        limit = max(PAGE_TRACES // len(labels), 1) if stored > PAGE_TRACES else stored
        cols = ", ".join(f'"{c}"' for c in TRACE_COLUMNS if c in names)
        rows = con.sql(
            f"SELECT {cols} FROM {scan} WHERE trace IS NOT NULL QUALIFY row_number() OVER "
            f"(PARTITION BY config_id ORDER BY problem_id, file_index) <= {limit} ORDER BY file_index, problem_id",
            params={"f": files},
        ).df()
        for r in rows.to_dict("records"):
            label = (
                f"{r['policy']} · {r['prm']} · {r['strategy']} N={r['n']} · {hyper.get(r['config_id'], '')}"
            )
            out.append({
                "config": label, "config_id": r["config_id"], "strategy": r["strategy"], "n": int(r["n"]),
                "problem_id": r["problem_id"], "level": None if pd.isna(r["level"]) else int(r["level"]),
                "answer": r["answer"], "reference": r["reference"], "correct": bool(r["correct"]),
                "cand_answers": _list(r.get("candidate_answers")), "cand_scores": _list(r.get("candidate_scores")),
                "cand_correct": _list(r.get("candidate_correct")),
                "cand_finish": _list(r.get("candidate_finish_reasons")),
                "trace": json.loads(r["trace"]),
            })  # fmt: skip
    out.sort(key=lambda d: (d["config"], d["problem_id"]))
    if stored > PAGE_TRACES:  # the page stays small: the same number of problems from every configuration
        per = max(PAGE_TRACES // len({d["config"] for d in out}), 1)
        kept: list[dict[str, Any]] = []
        counts: dict[str, int] = {}
        for d in out:
            counts[d["config"]] = counts.get(d["config"], 0) + 1
            if counts[d["config"]] <= per:
                kept.append(d)
        out = kept
    note = (
        f"{len(out)} of {stored} stored traces shown (search cells keep the first TTS_TRACE_PROBLEMS problems of "
        f"each cell, default 20, set TTS_TRACE_PROBLEMS=all before the sweep for every one; the page shows at "
        f"most {PAGE_TRACES}, the first problems of every configuration)."
        if out
        else "No trace stored: this folder has no search cell written with results schema 6 or later "
        "(traces are recorded by tts sweep since then; pool-based strategies store their samples instead)."
    )
    return out, note


def _list(v: Any) -> list:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return []
    items = v.tolist() if hasattr(v, "tolist") else list(v)
    return [None if isinstance(x, float) and math.isnan(x) else x for x in items]
