"""Reading a results folder for analysis: cell and sample files from the manifest, the sweep's difficulty
settings, and difficulty.parquet (computed from the sample pools when missing, then stored).

Why: the analysis must read exactly what `tts.store` trusts (files listed in the manifest, latest entry per
id), in bulk (DuckDB over file lists, not row-by-row pandas), and must never change bins a sweep already
used: methods present in difficulty.parquet are kept, missing ones are added.

Cells written under an older results schema are read (missing columns are null) with a warning that names what
changed since (`schema_warning`, SCHEMA_CHANGES): their ids differ from the current ids of the same settings, so
they form configurations of their own rather than merging with current rows. `grading_table` gives, per
configuration, the accuracy of the rows' answers with and without the last-number fallback answers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tts.results_schema import DIFFICULTY_COLUMNS, SCHEMA_VERSION

# What changed in each results schema that alters what a row's numbers mean (tts.results_schema's version list).
SCHEMA_CHANGES: dict[int, str] = {
    5: "grading and prompts changed in results schema 5: rows record how their answer was found "
    "(`extraction`); 'the answer is X' is an explicit answer (it was a last-number fallback); an empty last box "
    "is no answer; an answer inside unfinished thinking is no answer; each cell names its evaluator "
    "(dataset.evaluator); date-bearing chat templates render a pinned date (policy.chat_template_date) instead of "
    "the day of the run; samples are seeded per request (`seeding`: per_request), so a cell recomputes "
    "identically (`tts verify`), where older cells drew from the engine's one stream and do not",
}

SAMPLE_READ = [
    "policy",
    "prm",
    "problem_id",
    "dataset",
    "level",
    "seed",
    "sample_idx",
    "correct",
    "score",
    "step_scores",
    "tokens_out",
    "prompt_tokens",
    "prm_tokens",
]


class NoResultsError(FileNotFoundError):
    """The folder holds no finished result files."""


def connect(threads: int | None = None) -> Any:
    """A DuckDB connection without progress bars (they would clutter `tts analyze` output)."""
    import duckdb

    con = duckdb.connect()
    with contextlib.suppress(duckdb.Error):  # in Jupyter without ipywidgets DuckDB refuses the setting
        con.execute("SET enable_progress_bar = false")
    if threads:
        con.execute(f"SET threads={int(threads)}")
    return con


def sweep_dirs(results_dir: str | Path) -> list[Path]:
    from tts.store import sweep_dirs as store_sweep_dirs

    return store_sweep_dirs(results_dir)


def result_files(results_dir: str | Path, kind: str = "cell") -> list[Path]:
    """Files of `kind` ("cell" | "pool") the manifests list (latest entry per id), sorted; no checksum pass."""
    from tts.store import SweepStore

    root = Path(results_dir)
    dirs = sweep_dirs(root)
    if not dirs:
        raise NoResultsError(
            f"{root}: no results here (no manifest.jsonl in it or its subfolders); run `tts sweep` to produce "
            "results, or point at the sweep's folder, e.g. results/smoke"
        )
    files = []
    for d in dirs:
        entries = SweepStore(d).entries()
        files += [d / e.file for (k, _), e in sorted(entries.items()) if k == kind and e.rows > 0]
    if kind == "cell":
        message = schema_warning(root)
        if message:
            warnings.warn(message, stacklevel=2)
    return files


def schema_versions(results_dir: str | Path) -> dict[int, int]:
    """Finished cells per results schema version (a manifest line without one: version 1)."""
    from tts.store import SweepStore

    counts: dict[int, int] = {}
    for d in sweep_dirs(results_dir):
        for (kind, _), e in SweepStore(d).entries().items():
            if kind == "cell" and e.rows > 0:
                raw = (e.versions or {}).get("results_schema")
                version = int(raw) if raw and str(raw).isdigit() else 1
                counts[version] = counts.get(version, 0) + 1
    return counts


def schema_warning(results_dir: str | Path) -> str | None:
    """A one-paragraph warning when some cells were written under an older results schema whose rows mean
    something else now (SCHEMA_CHANGES), or None."""
    counts = schema_versions(results_dir)
    old = {v: n for v, n in counts.items() if v < SCHEMA_VERSION}
    changes = [SCHEMA_CHANGES[v] for v in sorted(SCHEMA_CHANGES) if old and min(old) < v <= SCHEMA_VERSION]
    if not changes:
        return None
    written = ", ".join(f"{n} under schema {v}" for v, n in sorted(old.items()))
    return (
        f"{sum(old.values())} cells were written by an older release ({written}; current: {SCHEMA_VERSION}). "
        + "; ".join(changes)
        + ". Their configuration ids differ from current rows of the same settings, so they are analysed as "
        "configurations of their own, never merged with current ones; rerun the sweep to recompute them under "
        "the current rules."
    )


def grading_table(results_dir: str | Path) -> pd.DataFrame:
    """Per configuration (finished rows): accuracy of the rows' answers (`correct`), the same with answers taken
    by the last-number fallback counted wrong, the share of such answers, and of rows with no `extraction`
    recorded (written before results schema 5)."""
    files = [str(f) for f in result_files(results_dir, "cell")]
    con = connect()
    names = {
        r[0]
        for r in con.sql(
            "DESCRIBE SELECT * FROM read_parquet($f, union_by_name=true)", params={"f": files}
        ).fetchall()
    }
    kind = "extraction" if "extraction" in names else "NULL::VARCHAR"
    key = "coalesce(config_id, cell_id)" if "config_id" in names else "cell_id"
    fallback = f"(coalesce(fallback_extraction, false) OR coalesce({kind}, '') = 'last_number')"
    return con.sql(
        f"""SELECT {key} AS config_id, any_value(policy) AS policy, any_value(prm) AS prm,
                  any_value(strategy) AS strategy, any_value(n) AS n, count(*) AS rows,
                  avg(correct::DOUBLE) AS accuracy,
                  avg((correct AND NOT {fallback})::DOUBLE) AS accuracy_no_fallback,
                  avg({fallback}::DOUBLE) AS fallback_share,
                  avg(({kind} IS NULL)::DOUBLE) AS unrecorded_share
           FROM read_parquet($f, union_by_name=true)
           WHERE status = 'ok' AND correct IS NOT NULL
           GROUP BY 1 ORDER BY policy, prm, strategy, n""",
        params={"f": files},
    ).df()


def fingerprint(paths: list[Path]) -> str:
    """Cheap identity of a file set: names, sizes and modification times (missing files count as absent)."""
    h = hashlib.sha1()
    for p in sorted(paths):
        st = p.stat() if p.exists() else None
        h.update(f"{p}|{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}\n".encode())
    return h.hexdigest()


def results_stamp(results_dir: str | Path) -> str:
    """Identity of a results folder's content in O(1): the manifests are append-only and list every finished
    file (with its sha256), so their sizes and times change whenever results do; difficulty.parquet too."""
    from tts.store import MANIFEST

    return fingerprint([d / MANIFEST for d in sweep_dirs(results_dir)] + [difficulty_path(results_dir)])


def sweep_settings(results_dir: str | Path) -> dict[str, Any]:
    """The `difficulty` node of the first sweep's sweep.yaml (method, num_bins, thresholds, samples), or {}."""
    from omegaconf import OmegaConf

    for d in sweep_dirs(results_dir) or [Path(results_dir)]:
        path = d / "sweep.yaml"
        if path.is_file():
            cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
            node = cfg.get("difficulty") if isinstance(cfg, dict) else None
            if node is None and isinstance(cfg, dict):  # a sweep preset nests the cell config
                node = (
                    (cfg.get("config") or {}).get("difficulty")
                    if isinstance(cfg.get("config"), dict)
                    else None
                )
            return dict(node or {})
    return {}


def strategy_traits(results_dir: str | Path) -> dict[str, dict[str, bool]]:
    """strategy name -> its traits (tts.strategies.entry.Traits as a dict), as the sweep that wrote the cells
    recorded them in the manifests; a strategy whose cells carry none (written before traits were stored) gets
    the installed entry's, when it is installed. The analysis reads traits from here, so a plugin's cells are
    analyzed alike whether or not the plugin is installed where `tts analyze` runs."""
    import dataclasses

    from tts.store import SweepStore
    from tts.strategies import STRATEGIES

    out: dict[str, dict[str, bool]] = {}
    names: set[str] = set()
    for d in sweep_dirs(results_dir):
        for (kind, _), e in SweepStore(d).entries().items():
            name = (e.config or {}).get("strategy") if kind == "cell" else None
            if isinstance(name, dict):
                name = name.get("name")
            if not name:
                continue
            names.add(str(name))
            if isinstance(e.meta.get("traits"), dict):
                out.setdefault(str(name), {k: bool(v) for k, v in e.meta["traits"].items()})
    for name in names - set(out):
        if name in STRATEGIES:
            out[name] = dataclasses.asdict(STRATEGIES.get(name).traits)
    return out


def read_samples(results_dir: str | Path) -> pd.DataFrame | None:
    """The sample pools (the columns binning needs), or None when the sweep stored none."""
    files = result_files(results_dir, "pool")
    if not files:
        return None
    con = connect()
    names = {
        r[0]
        for r in con.sql(
            "DESCRIBE SELECT * FROM read_parquet($f, union_by_name=true)",
            params={"f": [str(f) for f in files]},
        ).fetchall()
    }
    cols = ", ".join(f'"{c}"' for c in SAMPLE_READ if c in names and c != "step_scores")
    if "step_scores" in names:  # only the last step's score is needed: no Python lists for millions of rows
        cols += ", step_scores[-1] AS final_score"
    return con.sql(
        f"SELECT {cols} FROM read_parquet($f, union_by_name=true)", params={"f": [str(f) for f in files]}
    ).df()


def _levels(results_dir: str | Path, files: Sequence[str] | None = None) -> pd.DataFrame:
    """Distinct (policy, problem_id, level) of the cell files (default all), in (policy, problem_id, level)
    order: the same rows in the same order however the files are scanned."""
    files = [str(f) for f in (files if files is not None else result_files(results_dir, "cell"))]
    return (
        connect()
        .sql(
            "SELECT DISTINCT policy, problem_id, level FROM read_parquet($f, union_by_name=true) "
            "ORDER BY policy, problem_id, level",
            params={"f": files},
        )
        .df()
    )


def compute_difficulty(results_dir: str | Path, *, methods: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Bins by every method the stored data allows (DIFFICULTY_COLUMNS), with the sweep's settings."""
    from tts.difficulty import assign_bins

    k = sweep_settings(results_dir)
    opts = {"num_bins": int(k.get("num_bins", 5)), "thresholds": tuple(k.get("thresholds", (0.1, 0.5)))}
    samples_per_problem = k.get("samples")
    wanted = methods or ("dataset_level", "oracle_quantile", "absolute", "predicted")
    frames = []
    levels = _levels(results_dir) if "dataset_level" in wanted else None
    if levels is not None and len(levels) and levels["level"].notna().all():
        frames.append(assign_bins(levels, "dataset_level"))
    samples = read_samples(results_dir) if set(wanted) - {"dataset_level"} else None
    if samples is not None and len(samples):
        n = int(samples_per_problem) if samples_per_problem else None
        for method in ("oracle_quantile", "absolute"):
            if method in wanted and samples["correct"].notna().all():
                frames.append(assign_bins(samples, method, samples_per_problem=n, **opts))
        scored = "score" in samples.columns and samples["score"].notna().any()
        per_policy = samples.groupby("policy")["problem_id"].nunique()
        if "predicted" in wanted and scored and per_policy.min() >= 4:
            try:
                frames.append(assign_bins(samples, "predicted", samples_per_problem=n, **opts))
            except ValueError as exc:  # too few scored problems to learn cut points: leave the method out
                warnings.warn(f"difficulty: no predicted bins ({exc})", stacklevel=2)
    cols = list(DIFFICULTY_COLUMNS)
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def difficulty_path(results_dir: str | Path) -> Path:
    dirs = sweep_dirs(results_dir)
    return (dirs[0] if len(dirs) == 1 else Path(results_dir)) / "difficulty.parquet"


def ensure_difficulty(results_dir: str | Path, *, rebuild: bool = False) -> pd.DataFrame:
    """difficulty.parquet (all methods the data allows), computing and storing what it lacks.

    Bins stored by someone else (the sweep, when it restricted cells to bins) are kept as they are; methods
    computed here are recomputed when the result files change (fingerprint in summary/difficulty.json). When
    only cell files were added (the sample pools unchanged: a running sweep), only the new files are read: the
    pool-based methods cannot change, and dataset_level gains the (policy, problem) pairs it did not have."""
    path = difficulty_path(results_dir)
    meta_path = path.parent / "summary" / "difficulty.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    have = pd.read_parquet(path) if path.is_file() else pd.DataFrame(columns=list(DIFFICULTY_COLUMNS))
    current = path.is_file() and not rebuild and meta.get("fingerprint") == results_stamp(results_dir)
    if current and "cells" in meta:
        return have
    cells = {str(f): _file_ident(f) for f in result_files(results_dir, "cell")}
    pools = fingerprint(result_files(results_dir, "pool"))
    if current:  # stored by an earlier version: record what the next update compares against
        meta_path.write_text(json.dumps({**meta, "cells": cells, "pools": pools}))
        return have
    known = meta.get("cells")
    added = _cells_added(known, cells)
    if path.is_file() and not rebuild and meta.get("pools") == pools and added is not None:
        out = _with_new_levels(results_dir, have, added, set(meta.get("computed", [])))
        if out is not None:
            return _write_difficulty(
                results_dir, path, meta_path, out, meta.get("computed", []), cells, pools
            )
        meta_path.write_text(json.dumps({**meta, "fingerprint": results_stamp(results_dir), "cells": cells}))
        return have
    keep = have[~have["method"].isin(meta.get("computed", []))]
    new = compute_difficulty(results_dir)
    new = new[~new["method"].isin(set(keep["method"]))]
    out = pd.concat([d for d in (keep, new) if len(d)], ignore_index=True) if len(keep) or len(new) else new
    return _write_difficulty(results_dir, path, meta_path, out, sorted(set(new["method"])), cells, pools)


def _file_ident(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def _cells_added(known: dict[str, str] | None, cells: dict[str, str]) -> list[str] | None:
    """The cell files added since `known` (path -> identity), or None when one was removed or rewritten (or
    nothing is known): then every method is recomputed."""
    if known is None or any(cells.get(f) != ident for f, ident in known.items()):
        return None
    return [f for f in cells if f not in known]


def _with_new_levels(
    results_dir: str | Path, have: pd.DataFrame, added: list[str], computed: set[str]
) -> pd.DataFrame | None:
    """`have` with the dataset_level bins of (policy, problem) pairs that only `added` files have, in the order
    a full computation gives; None when nothing changes."""
    if not added or "dataset_level" not in computed:
        return None
    from tts.difficulty import assign_bins

    levels = _levels(results_dir, added)
    if not len(levels) or levels["level"].isna().any():
        return None
    ours = have[have["method"] == "dataset_level"]
    seen = pd.MultiIndex.from_frame(ours[["policy", "problem_id"]].astype(str))
    fresh = levels[~pd.MultiIndex.from_frame(levels[["policy", "problem_id"]].astype(str)).isin(seen)]
    if not len(fresh):
        return None
    rows = pd.concat([ours, assign_bins(fresh, "dataset_level")[list(DIFFICULTY_COLUMNS)]], ignore_index=True)
    rows = rows.sort_values(["policy", "problem_id"], kind="stable")
    rest = have[have["method"] != "dataset_level"]
    return pd.concat([rows, rest], ignore_index=True)[list(DIFFICULTY_COLUMNS)]


def _write_difficulty(
    results_dir: str | Path,
    path: Path,
    meta_path: Path,
    out: pd.DataFrame,
    computed: list[str],
    cells: dict[str, str],
    pools: str,
) -> pd.DataFrame:
    _store_difficulty(results_dir, path, out)
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    stamp = results_stamp(results_dir)  # after our own write: it appended to the manifest
    meta_path.write_text(
        json.dumps({"fingerprint": stamp, "computed": computed, "cells": cells, "pools": pools})
    )
    return out


def _store_difficulty(results_dir: str | Path, path: Path, table: pd.DataFrame) -> None:
    """Through tts.store (atomic, in the manifest) for one sweep folder; a plain atomic write otherwise."""
    import pyarrow as pa

    arrow = pa.Table.from_pandas(table.reset_index(drop=True), preserve_index=False)
    dirs = sweep_dirs(results_dir)
    if len(dirs) == 1 and path.parent == dirs[0]:
        from tts.store import SweepStore

        SweepStore(dirs[0]).write("difficulty", "difficulty", arrow)
        return
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(arrow, tmp)
    tmp.replace(path)
