"""The `tts` command: sweep | analyze | report | ls | repair | verify | demo.

Why argparse and not a Hydra app: `tts sweep` takes Hydra overrides (expanded into cells by tts.grid) but also
needs flags of its own (--dry-run) and sibling commands; heavy modules (Ray, vLLM, analysis) are imported only by
the command that needs them, so `tts --help` and `tts ls` are instant.

    tts sweep +sweep=smoke                       run (or resume) a sweep preset
    tts sweep +sweep=smoke n=1,2 --dry-run       print the cells and their estimated cost, run nothing
    tts ls results                               sweeps under results/, cells ok / failed / corrupt
    tts repair results/smoke                     rebuild a lost manifest.jsonl from the result files
    tts verify results/smoke --cells 2           recompute 2 cells in a scratch folder, compare sample by sample
    tts analyze results/smoke                    difficulty bins, FLOPs, compute-optimal tables, plots
    tts slurm submit +sweep=smoke --nodes 2 --gpus-per-node 8 --time 12:00:00   the same sweep on Slurm
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

SWEEP_EPILOG = """\
overrides use Hydra's syntax: key=value sets a field, key=a,b,c / range(1,5) / glob(*) sweeps it,
+sweep=NAME picks a preset from sweeps/ (its axes become the grid). Examples:
  tts sweep +sweep=smoke
  tts sweep +sweep=smoke n=1,4 prm=rule_arithmetic --dry-run
  tts sweep strategy=best_of_n,majority_vote n=1,2,4,8 dataset.per_level=4
  tts sweep +sweep=snell_prm_search cluster=ray engine=gpu      (inside `ray job submit -- ...`)
A rerun of the same command resumes: finished cells are never recomputed."""


# Commands with parsers of their own: name -> (module:function, help). `main` hands them every argument, "-h"
# included (argparse.REMAINDER in a subparser would drop a leading option).
_FORWARDED = {
    "analyze": ("tts.analysis.report:main", "analyse a results folder (tts.analysis.report)"),
    "report": ("tts.analysis.report:main", "write the report of a results folder (tts.analysis.report)"),
    "demo": ("tts.demo:main", "run one strategy on a few problems and show its search (tts.demo)"),
    "zoo": ("tts.zoo.cli:main", "train the zoo's policies and PRMs: zoo train --out DIR (tts.zoo)"),
    "slurm": ("tts.runtime.slurm:main", "run a sweep on Slurm: slurm submit +sweep=NAME --nodes K ..."),
    "rescore": (
        "tts.runtime.rescore:main",
        "score a sweep's stored pools with another verifier: rescore DIR prm=NAME",
    ),
    "pools": (
        "tts.runtime.pools_io:main",
        "pools export DIR --out FILE | pools import FILE --out DIR (HF datasets Parquet)",
    ),
    "export": ("tts.analysis.export:main", "export DIR --to mlflow|wandb: one tracker run per configuration"),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tts",
        description="Test-time compute sweeps: policy x PRM x strategy x budget x difficulty, on Ray.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser(
        "sweep",
        help="expand a grid into cells and run (or resume) them on Ray",
        epilog=SWEEP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. +sweep=smoke n=1,4,16")
    s.add_argument("--dry-run", action="store_true", help="print the cells and estimated cost; start nothing")
    s.add_argument("--no-live", action="store_true", help="plain log lines instead of the live display")
    s.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging, and the engines' own (vLLM) logs"
    )

    for name, (
        _target,
        what,
    ) in _FORWARDED.items():  # listed here; `main` hands their arguments on as they are
        sub.add_parser(name, help=what, add_help=False)

    ls = sub.add_parser("ls", help="list sweeps under a results folder, or the cells of one sweep")
    ls.add_argument(
        "results_dir", nargs="?", default="results", help="results/ or results/<sweep> (default: results)"
    )

    r = sub.add_parser(
        "repair",
        help="rebuild manifest.jsonl from the result files (after it was lost), so a rerun resumes",
        description="Rebuild a sweep folder's manifest.jsonl from its cells/, samples/ and difficulty.parquet: "
        "each file's own entry (schema metadata), sha256 and rows recomputed; files without metadata "
        "(older tts) are derived from their path and rows; files that do not parse are left out (a rerun "
        "recomputes them). The old manifest, if any, is kept as manifest.jsonl.bak.",
    )
    r.add_argument(
        "results_dir", help="a sweep folder results/<sweep>, or results/ to repair every sweep in it"
    )

    v = sub.add_parser(
        "verify",
        help="recompute finished cells in a scratch folder and compare them sample by sample",
        description="Recompute K finished cells of a sweep folder (a seeded random choice, or the named ones; a "
        "pool cell brings the other cells of its pool) in a scratch folder, compare every row and pool sample "
        "with the stored ones (times, provenance and prefix-cache counts aside), print what differs. Exit status "
        "1 if anything differs, 0 if all is identical.",
    )
    v.add_argument("results_dir", help="a sweep folder, results/<sweep>")
    v.add_argument(
        "--cells",
        default="2",
        help="how many cells to recompute (a number: chosen at random with --seed), or comma-separated cell "
        "ids (`tts ls DIR` lists them); default 2",
    )
    v.add_argument("--seed", type=int, default=0, help="seed of the random choice of cells (default 0)")
    v.add_argument("--scratch", default=None, help="where to recompute (default: a new temporary folder)")

    return p


def _dispatch(target: str, argv: list[str]) -> int:
    module, _, attr = target.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        print(f"error: {target} is not available ({exc})", file=sys.stderr)
        return 2
    return int(fn(argv) or 0)


def cmd_sweep(args: argparse.Namespace) -> int:
    from tts.config import ConfigError
    from tts.grid import expand

    try:
        grid = expand(args.overrides)
        check_results_dir(grid, write=not args.dry_run)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from tts.data import DataSetError
    from tts.runtime.driver import SweepLockedError, SweepNeedsRepairError, run_sweep
    from tts.runtime.stops import EXIT_CLUSTER_LOST, EXIT_SIGTERM, ClusterLostError

    try:
        if args.dry_run:
            print_dry_run(grid)
            return 0
        summary = run_sweep(grid, live=False if args.no_live else None, verbose=args.verbose)
    except (DataSetError, SweepLockedError, SweepNeedsRepairError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ClusterLostError as exc:  # the Ray head (GCS) went away: finished cells are kept
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CLUSTER_LOST
    except KeyboardInterrupt:
        again = " ".join(["tts", "sweep", *args.overrides])
        print(
            f"\ninterrupted: finished cells are kept; resume with: {again}",
            file=sys.stderr,
        )
        return 130
    if summary.stopped:  # SIGTERM (Slurm preemption, time limit): work in flight was finished and written
        again = " ".join(["tts", "sweep", *args.overrides])
        print(f"stopped by {summary.stopped}: finished cells are kept; resume with: {again}", file=sys.stderr)
        return EXIT_SIGTERM
    return 1 if summary.failed else 0


def check_results_dir(grid: object, write: bool = True) -> None:
    """Raise ConfigError (one line) unless the sweep's folder, results_dir/<sweep name>, can be used: no part of
    its path may be a file, and (`write`) its nearest existing folder must be writable. Before Ray starts, and
    nothing is left behind here (a sweep that stops on a bad data set writes nothing)."""
    import os
    import tempfile
    from pathlib import Path

    from tts.config import ConfigError

    folder = Path(str(grid.results_dir)).expanduser().absolute() / grid.name
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"results_dir: {existing} is a file, not a folder; give a folder (results_dir=DIR)")
    if not write:
        return
    try:  # a probe folder, removed at once: permissions, read-only mounts and pseudo file systems alike
        os.rmdir(tempfile.mkdtemp(prefix=".tts-probe-", dir=existing))
    except OSError as exc:
        raise ConfigError(
            f"results_dir: cannot write to {existing} ({exc.strerror or exc}); give a folder you can write"
        ) from exc


def print_dry_run(grid: object) -> None:
    """The cells, their axes and estimated cost; which are finished already."""
    from tts.runtime.driver import sweep_dir
    from tts.runtime.engine_pool import plan_engines
    from tts.runtime.plan import Problems, estimate_cost, pool_cost
    from tts.store import SweepStore

    cells = list(grid.cells)
    problems = Problems()
    problems.load(cells)
    problems.check()
    costs = estimate_cost(cells, problems.for_cell)
    finished, _ = SweepStore(sweep_dir(grid)).verified("cell")
    print(f"sweep {grid.name}: {len(cells)} cells -> {sweep_dir(grid)}")
    print(f"{'cell':16}  {'status':8}  {'problems':>8}  {'gens':>7}  {'tokens<=':>9}  axes")
    for cell, cost in zip(cells, costs, strict=True):
        entry = finished.get(cell.id)
        status = entry.status if entry else "todo"
        print(
            f"{cell.id:16}  {status:8}  {cost.problems:8d}  {cost.generations:7d}  {cost.tokens:9d}  {cell.label()}"
        )
    pool_gens, pool_tokens = pool_cost(costs)
    search = [c for c in costs if c.pool is None]
    total_gens = pool_gens + sum(c.generations for c in search)
    total_tokens = pool_tokens + sum(c.tokens for c in search)
    engines = plan_engines(cells)
    print(
        f"estimated cost: {total_gens} generations, <= {total_tokens} generated tokens "
        f"(sampling cells share pools: {pool_gens} generations); "
        f"{len(engines)} engine(s): {', '.join(_engine_label(s) for s in engines.values())}; "
        f"{sum(1 for c in cells if c.id in finished and finished[c.id].status == 'ok')} cells already finished"
    )


def _engine_label(spec: object) -> str:
    """An engine's dry-run label: endpoint models load nothing (a client actor, no device)."""
    from tts.runtime.actors import endpoint_only

    return f"{spec.label} (endpoint client: no engine load)" if endpoint_only(spec) else spec.label


def cmd_ls(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tts.store import MANIFEST, SweepStore, summarize

    root = Path(args.results_dir)
    if (root / MANIFEST).is_file():
        store = SweepStore(root)
        cells, bad = store.verified("cell")
        print(f"{root}: {len(cells)} cells ({len(bad)} corrupt)")
        for cid, e in sorted(cells.items(), key=lambda kv: kv[1].written_at):
            axes = " ".join(f"{k}={v}" for k, v in (e.meta.get("axes") or {}).items())
            print(f"  {cid}  {e.status:6}  {e.rows:5d} rows  {axes}")
        for cid, why in bad.items():
            print(f"  {cid}  corrupt ({why}): a rerun recomputes it")
        return 0
    rows = summarize(root)
    if not rows:
        print(f"{root}: no sweeps (no {MANIFEST} found); run `tts sweep +sweep=smoke`")
        return 1
    for r in rows:
        print(
            f"{r['sweep']:24} {r['ok']:5d} ok  {r['failed']:4d} failed  {r['corrupt']:3d} corrupt  "
            f"{r['pools']:3d} pools  {r['rows']:7d} rows  {r['path']}"
        )
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    from tts.store import SweepStore
    from tts.store_repair import sweep_folders

    folders = sweep_folders(args.results_dir)
    if not folders:
        print(f"error: {args.results_dir}: no cells/ or samples/ here or in its subfolders", file=sys.stderr)
        return 2
    for folder in folders:
        try:
            report = SweepStore(folder).repair()
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(report.line())
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from tts.config import ConfigError
    from tts.runtime.verify import verify

    spec = args.cells.strip()
    names = [] if spec.isdigit() else [c.strip() for c in spec.split(",") if c.strip()]
    k = int(spec) if spec.isdigit() else 0
    if not names and k < 1:
        print(f"error: --cells: invalid value {spec!r}; give a number >= 1 or cell ids", file=sys.stderr)
        return 2
    try:
        report = verify(args.results_dir, cells=names, k=k, seed=args.seed, scratch=args.scratch)
    except (FileNotFoundError, ValueError, ConfigError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for check in report.checks:
        print(check.line())
    for why in report.skipped:
        print(f"not recomputed: {why}")
    print(
        f"verify {args.results_dir}: {len(report.checks)} cell(s) recomputed in {report.scratch}, "
        f"{report.differences} difference(s)"
    )
    return 1 if report.differences else 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _FORWARDED:
        return _dispatch(_FORWARDED[argv[0]][0], argv[1:])
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if args.command == "sweep":
        return cmd_sweep(args)
    if args.command == "ls":
        return cmd_ls(args)
    if args.command == "repair":
        return cmd_repair(args)
    if args.command == "verify":
        return cmd_verify(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
