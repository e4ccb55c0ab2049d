"""`tts rescore DIR prm=<verifier>`: score a sweep's stored sample pools with another verifier, generating nothing.

Why: comparing verifiers is fairest on identical candidates (ThinkPRM's users ask for exactly that), and a pool
of N_max samples costs far more to generate than to score. A stored pool's samples depend only on its generation
key (tts.identity.generation_group_key: policy, prompt, data set, sampling, seed, engine: not the PRM), so the
pool the same sweep would build with another verifier has the same samples; only the step scores differ.

How: every finished pool-based cell of DIR (best-of-N, weighted best-of-N, majority vote, adaptive...) is rebuilt
from the overrides its manifest entry recorded, plus the given overrides (prm=<verifier>, any prm.* field). The
new cells run as one sweep into DIR itself, through the ordinary driver, with one difference: the policy actor
is a `ReplayPolicy` that loads no model and answers each pool's generate call with that pool's stored samples
(their text, token counts, finish reasons and prompt tokens), keyed by the generation key the actor's generation
cache already uses. So the verifier scores exactly the stored candidates; the new pool is a new pool version
under the id the sweep with that verifier would give it (identity: the stored pool's generation + the verifier),
its cells are the cells that sweep would write, and the run charges zero generated tokens (the generate call is
a cache hit; `ReplayPolicy.generate` itself refuses). `tts analyze DIR` then shows both verifiers side by side.

Limits: cells restricted to difficulty bins computed from samples (oracle bins) are rescored only when their bins
are stored; search cells (beam search, ...) cannot be rescored (their candidates depend on the verifier) and are
left out, said so.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tts.engines.protocols import Completion, Generation, GenerationRequest
from tts.grid import Cell, Grid, cell_of
from tts.runtime.actors import DEFAULT_BUILDER, EngineSpec, resolve
from tts.runtime.plan import Problems, pool_works
from tts.store import SweepStore

log = logging.getLogger(__name__)


class ReplayPolicy:
    """A PolicyEngine that generates nothing: `preloaded` maps a generation key to the stored Generations the
    engine actor serves from its generation cache (tts.runtime.actors.EngineActor)."""

    def __init__(self, preloaded: dict[str, list[Generation]], params: int, model: str) -> None:
        self.preloaded = preloaded
        self.param_count = params
        self.model_path = model

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        raise RuntimeError(
            "rescore: a generate call that no stored pool answers (the pool's generation key changed?); "
            "rescoring never generates"
        )


@dataclass
class ReplayBuilder:
    """The engine builder of a rescore run: policies replay stored pools, verifiers are built as usual."""

    preloaded: dict[str, dict[str, list[Generation]]]  # policy name -> generation key -> generations
    params: dict[str, int] = field(default_factory=dict)  # policy name -> parameter count (from the rows)
    models: dict[str, str] = field(default_factory=dict)
    inner: Any = DEFAULT_BUILDER

    def __call__(self, spec: EngineSpec) -> tuple[Any, dict[str, Any]]:
        inner = resolve(self.inner) if isinstance(self.inner, str) else self.inner
        _, prms = inner(EngineSpec(spec.key, spec.label, None, spec.prms, spec.engine, spec.builder))
        policy = None
        if spec.policy is not None:
            name = spec.policy.name
            model = self.models.get(name, spec.policy.model)
            policy = ReplayPolicy(self.preloaded.get(name, {}), self.params.get(name, 0), model)
        return policy, prms


def generations_of(rows: Sequence[dict[str, Any]], problem_ids: Sequence[str]) -> list[Generation]:
    """A stored pool's sample rows as the Generations of its one generate call (one per problem, in order)."""
    by_problem: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_problem.setdefault(r["problem_id"], []).append(r)
    out = []
    for pid in problem_ids:
        rs = sorted(by_problem[pid], key=lambda r: r["sample_idx"])
        completions = tuple(Completion(r["text"], int(r["tokens_out"]), r["finish_reason"], None) for r in rs)
        out.append(
            Generation(completions, int(rs[0]["prompt_tokens"]), int(rs[0].get("cached_prompt_tokens") or 0))
        )
    return out


def plan(directory: Path, overrides: Sequence[str]) -> tuple[Grid, ReplayBuilder, list[str]]:
    """The rescore sweep (new cells into `directory`), its replay builder, and what was left out (with why)."""
    store = SweepStore(directory)
    entries, _ = store.verified("cell")
    pools, _ = store.verified("pool")
    old: list[Cell] = []
    new: dict[str, Cell] = {}
    skipped: list[str] = []
    base = None
    for cid, entry in sorted(entries.items()):
        if entry.status != "ok":
            continue
        recorded = list(entry.meta.get("overrides") or [])
        cell, _ = cell_of(recorded)
        if not cell.entry.traits.pool_based:
            skipped.append(
                f"cell {cid} ({cell.config.strategy.name}): not pool-based, its candidates need the policy"
            )
            continue
        if cell.id != cid:
            skipped.append(f"cell {cid}: its recorded overrides build {cell.id} under this version of tts")
            continue
        old.append(cell)
        rescored, composed = cell_of([*_without(recorded, overrides), *overrides])
        base = composed if base is None else base
        if rescored.id != cid:
            new.setdefault(rescored.id, rescored)
    if not new:
        raise ValueError(f"rescore: no pool-based cell of {directory} changes under {' '.join(overrides)}")

    problems = Problems()
    problems.load([*old, *new.values()])

    def stored(pool_id: str) -> list[dict[str, Any]] | None:
        entry = pools.get(pool_id)
        return store.read(entry).to_pylist() if entry is not None else None

    by_key: dict[str, tuple[Any, list[dict[str, Any]]]] = {}
    for work in pool_works(old, {c.id for c in old}, problems.for_cell, stored, sweep=directory.name):
        if work.job.stored is not None:
            by_key[work.job.cache_key] = (work.job, list(work.job.stored))
    builder = ReplayBuilder(preloaded={})
    cells = list(new.values())
    for work in pool_works(cells, set(new), problems.for_cell, lambda _: None, sweep=directory.name):
        job = work.job
        if job.cache_key not in by_key:
            for c in work.cells:
                skipped.append(f"cell {c.id}: no stored pool holds its samples (generation {job.cache_key})")
            cells = [c for c in cells if c not in work.cells]
            continue
        _, rows = by_key[job.cache_key]
        name = work.cells[0].config.policy.name
        builder.preloaded.setdefault(name, {})[job.cache_key] = generations_of(
            rows, [p.id for p in job.problems]
        )
    _params_from_rows(store, entries, builder)
    first = cells[0].config
    grid = Grid(
        name=directory.name,
        cells=tuple(cells),
        base=base,
        cluster=first.cluster,
        results_dir=str(directory.parent),
    )
    return grid, builder, skipped


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _without(recorded: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """The recorded overrides less those the new ones replace (a new prm=<name> replaces every prm* one)."""
    keys = {_key(o) for o in overrides}
    if "prm" in keys:
        return [o for o in recorded if not (_key(o) == "prm" or _key(o).startswith("prm."))]
    return [o for o in recorded if _key(o) not in keys]


def _params_from_rows(store: SweepStore, entries: dict[str, Any], builder: ReplayBuilder) -> None:
    """Each policy's parameter count and model path from one of its stored cell files (FLOPs as the sweep's)."""
    seen: set[str] = set()
    for entry in entries.values():
        if entry.status != "ok":
            continue
        table = store.read(entry)
        names = table.column("policy").to_pylist()
        if not names or names[0] in seen:
            continue
        seen.add(names[0])
        builder.params[names[0]] = int(table.column("policy_params").to_pylist()[0] or 0)
        builder.models[names[0]] = str(table.column("policy_model").to_pylist()[0])


def rescore(directory: str | Path, overrides: Sequence[str], *, live: bool | None = False) -> Any:
    """Run the rescore sweep; returns its SweepSummary (its `tokens`: generated tokens, 0)."""
    from tts.runtime.driver import run_sweep

    directory = Path(directory)
    grid, builder, skipped = plan(directory, overrides)
    for line in skipped:
        log.warning("rescore: %s", line)
    return run_sweep(grid, builder=builder, live=live)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="tts rescore",
        description="Score the stored sample pools of a sweep folder with another verifier (no generation); "
        "the pool-based cells for that verifier are written into the same folder.",
    )
    p.add_argument("results_dir", help="a sweep folder, results/<sweep>")
    p.add_argument("overrides", nargs="+", help="the verifier: prm=<name> and any prm.* overrides")
    p.add_argument("--no-live", action="store_true", help="plain log lines instead of the live display")
    args = p.parse_args(argv)
    bad = [o for o in args.overrides if not o.lstrip("+").startswith("prm")]
    if bad:
        print(
            f"error: rescore takes prm=... / prm.*=... overrides only, not {' '.join(bad)}", file=sys.stderr
        )
        return 2
    summary = rescore(args.results_dir, args.overrides, live=not args.no_live)  # the driver prints its line
    return 1 if summary.failed else 0
