"""Sweep grid: command-line overrides + a preset's axes -> validated cells with stable ids.

Why here: every cell of a sweep is composed, typed and validated before Ray starts or a file is written, so a
bad value fails in a second with a message naming the field, not after an hour of engine start-up. Axes use
Hydra's own sweep grammar (`1,4,16`, `range(1,5)`, `choice(a,b)`, `glob(*)`) through its override parser.

A preset (sweeps/NAME.yaml, `# @package _global_`) declares
    sweep.axes:  {key: "grammar"}               the grid, crossed with every sub-grid
    sweep.grids: {name: {key: "grammar"}}       optional sub-grids (e.g. sampling vs search strategies whose
                                                budgets differ); the cells are the union of axes x each grid
Command-line overrides win: `n=4` removes the `n` axis, `n=1,2` replaces it.

Composing with Hydra costs ~0.2 s, so we compose once per distinct set of config-group choices (`strategy=...`,
`prm=...`) and apply plain value overrides (`n=8`) to a copy with OmegaConf, as Hydra itself does after
composition. A cell's id is the `tts.identity.cell_id` projection of its resolved config. Sweep-level fields
(`results_dir`, `sweep.*`, `cluster.*`: where results go, how Ray is reached, retries) describe the whole
sweep, not a cell: sweeping one is rejected before anything starts.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from tts import identity
from tts.config import ConfigError, TTSConfig, conf_dir, register_configs, validate
from tts.engines.chat_template import chat_template_sha
from tts.registry import did_you_mean

SWEEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Cell:
    """One grid point: a typed, validated config and the overrides that compose it.

    id: 16 hex chars of sha256 over the semantic config (stable across runs, machines and override order).
    axes: the (key, value) pairs that distinguish this cell from its siblings, for display.
    """

    id: str
    overrides: tuple[str, ...]
    config: TTSConfig = field(compare=False, hash=False, repr=False)
    axes: tuple[tuple[str, str], ...] = ()
    config_id: str = ""  # the configuration this cell is a seed of (tts.identity.configuration_id)

    @property
    def strategy(self) -> str:
        return self.config.strategy.name

    @property
    def n(self) -> int:
        return self.config.n

    @property
    def entry(self) -> Any:
        """The strategy's registry entry (tts.strategies.entry.StrategyEntry): its traits, run, selection."""
        from tts.strategies import STRATEGIES

        return STRATEGIES.get(self.config.strategy.name)

    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.axes) or self.id


@dataclass(frozen=True)
class Grid:
    """An expanded sweep: its name, cells (in grid order, duplicates removed) and the resolved base config."""

    name: str
    cells: tuple[Cell, ...]
    base: DictConfig = field(compare=False, repr=False)
    axes: dict[str, list[str]] = field(default_factory=dict)  # union of all axes, key -> values, for display
    overrides: tuple[str, ...] = ()  # the user's overrides, as given
    # Sweep-level settings (tts.identity.SWEEP_LEVEL_FIELDS): one value for the whole sweep, never per cell.
    cluster: Any = None  # tts.config.ClusterConfig
    results_dir: str = "results"


def resolved(cfg: TTSConfig) -> dict[str, Any]:
    """A cell's resolved config as plain data: what the identity projections (tts.identity) read. A data set
    read from a local file also carries the file's content hash (`dataset.content`), so editing the file
    changes every id derived from it (cells, configurations, pools) and the cells are recomputed. A policy whose
    tokenizer folder is local (a folder, a zoo model) carries its chat template's hash (`policy.chat_template_sha`,
    tts.engines.chat_template), so editing the template changes those ids too."""
    data = asdict(cfg)
    if cfg.dataset.path:
        data["dataset"]["content"] = _file_hash(cfg.dataset)
    template = chat_template_sha(cfg.policy.model, cfg.policy.tokenizer)  # local templates only
    if template is not None and cfg.policy.chat_template:
        data["policy"]["chat_template_sha"] = template
    return data


def _file_hash(dataset: Any) -> str:
    """tts.data.dataset_content_hash of a local file, cached by (path, size, mtime) for this process."""
    from pathlib import Path

    from tts.data import dataset_content_hash

    st = Path(str(dataset.path)).expanduser().stat()
    key = (str(dataset.path), st.st_size, st.st_mtime_ns)
    if key not in _FILE_HASHES:
        _FILE_HASHES[key] = dataset_content_hash(dataset)
    return _FILE_HASHES[key]


_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def cell_id(cfg: TTSConfig) -> str:
    return identity.cell_id(resolved(cfg))


# ------------------------------------------------------------------------------------------ expansion
@contextmanager
def _hydra() -> Iterator[Any]:
    """An initialized Hydra (our conf dir) for the duration of an expansion; yields its config loader."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        register_configs(strategy_yamls=_yaml_options(loader, "strategy"))
        yield loader
    GlobalHydra.instance().clear()


def _yaml_options(loader: Any, group: str) -> set[str]:
    """The options of `group` that are files on Hydra's search path (ours, and what installed plugins add
    through the `tts.conf` entry points, hydra_plugins/tts_searchpath), not ConfigStore nodes."""
    names: set[str] = set()
    for source in loader.repository.get_sources():
        if source.scheme() != "structured" and source.available() and source.is_group(group):
            names.update(source.list(group, results_filter=None))
    return names


def _options(loader: Any, group: str) -> list[str]:
    """A group's options as users write them: files and registered schemas, not the `base_*` schema nodes."""
    return [o for o in loader.get_group_options(group) if not o.startswith("base_")]


def _parse(loader: Any, lines: Sequence[str], where: str) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return OverridesParser.create(config_loader=loader).parse_overrides(list(lines))
    except Exception as exc:  # OverrideParseException: the message shows the bad token
        raise ConfigError(f"{where}: cannot parse {list(lines)!r}: {exc}") from exc


def _values(override: Any, key: str) -> list[str]:
    """The values an override sweeps over (one for a plain override), as override strings."""
    if not override.is_sweep_override():
        return [override.get_value_element_as_str()]
    if not override.is_discrete_sweep():
        raise ConfigError(f"{key}: interval sweeps cannot be enumerated; use a list, range() or choice()")
    try:
        values = list(override.sweep_string_iterator())
    except Exception as exc:
        raise ConfigError(f"{key}: cannot expand sweep {override.input_line!r}: {exc}") from exc
    if override.value_type is not None and override.value_type.name == "GLOB_CHOICE_SWEEP":
        values = [v for v in values if not v.startswith("base_")]  # schema nodes that YAML options extend
    if not values:
        raise ConfigError(f"{key}: the sweep {override.input_line!r} expands to no values")
    return values


def _is_structural(loader: Any, override: Any) -> bool:
    """True for overrides Hydra must compose (group choices, +/~/++); False for plain value changes."""
    if override.is_add() or override.is_delete() or override.is_force_add() or override.package is not None:
        return True
    if override.key_or_group.startswith("hydra."):  # e.g. hydra.searchpath=[file:///lab/conf]: Hydra's own
        return True
    return bool(loader.repository.group_exists(override.key_or_group))


_COMPOSED: dict[
    tuple[Any, ...], DictConfig
] = {}  # process-wide: (conf fingerprint, structural overrides) -> cfg


def _fingerprint() -> tuple[Any, ...]:
    """Changes whenever a file of the config tree changes (so the process-wide compose cache stays valid)."""
    root = conf_dir()
    files = sorted(p for p in root.rglob("*.yaml"))
    return (str(root), *((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files))


class _Composer:
    """Compose conf/config.yaml: Hydra for structural overrides (cached per process while the config tree is
    unchanged), OmegaConf for plain value overrides on a copy."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.fingerprint = _fingerprint()

    def __call__(self, overrides: Sequence[str]) -> DictConfig:
        from hydra import compose

        parsed = _parse(self.loader, overrides, "overrides")
        structural = tuple(o.input_line for o in parsed if _is_structural(self.loader, o))
        key = (self.fingerprint, structural)
        if key not in _COMPOSED:
            try:
                _COMPOSED[key] = compose(config_name="config", overrides=list(structural))
            except Exception as exc:  # MissingConfigException, ConfigCompositionException
                raise ConfigError(_compose_message(structural, exc, self.loader)) from exc
        cfg = copy.deepcopy(_COMPOSED[key])
        for o in parsed:
            if _is_structural(self.loader, o):
                continue
            key_name = o.key_or_group
            try:
                OmegaConf.update(cfg, key_name, o.value(), merge=True)
            except Exception as exc:
                raise ConfigError(_set_message(cfg, key_name, o.get_value_element_as_str(), exc)) from exc
        return cfg


def _set_message(cfg: DictConfig, key: str, value: str, exc: BaseException) -> str:
    """One line for a value override that OmegaConf refused: a field that exists gets its expected type (`n=abc`:
    "expected int"), an unknown one the closest field name."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if OmegaConf.is_dict(node) and leaf in node:
        expected = _field_type(node, leaf)
        return (
            f"{key}: invalid value {value!r}; expected {expected}"
            if expected
            else f"{key}: {_first_line(exc)}"
        )
    hint = did_you_mean(leaf, list(node.keys())) if OmegaConf.is_dict(node) else ""
    return f"{key}: cannot set {value!r}: {_first_line(exc)}{hint}"


def _field_type(node: DictConfig, leaf: str) -> str:
    """The declared type of field `leaf` of a structured config node, as written in its schema ("int",
    "float | None"), or "" when the node has no schema."""
    import dataclasses
    import typing

    schema = OmegaConf.get_type(node)
    if schema is None or not dataclasses.is_dataclass(schema):
        return ""
    try:
        hint = typing.get_type_hints(schema).get(leaf)
    except Exception:  # an annotation that does not evaluate here: fall back to the raw text
        hint = next((f.type for f in dataclasses.fields(schema) if f.name == leaf), None)
    if hint is None:
        return ""
    text = hint.__name__ if isinstance(hint, type) else str(hint)
    return f"{text.replace('typing.', '')} ({schema.__name__}.{leaf})"


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _compose_message(overrides: Sequence[str], exc: BaseException, loader: Any) -> str:
    """One line for a failed composition: the field or group, Hydra's cause, and the file it came from."""
    text = _first_line(exc)
    where = re.search(r"In '([^']+)'", str(exc))
    origin = f" (in {where.group(1)}.yaml)" if where and where.group(1) != "config" else ""
    match = re.search(r"Could not (?:find|load) '([^']+)'", str(exc))
    if match:  # an unknown option of a config group: name the group and list the options
        group, _, option = match.group(1).rpartition("/")
        options = _options(loader, group) if group and loader.repository.group_exists(group) else []
        hint = did_you_mean(option, options)
        listed = f"; allowed: {', '.join(options)}{hint}" if options else ""
        return f"{group or match.group(1)}: unknown option {option!r}{origin}{listed}"
    cause = exc.__cause__ or exc
    key = re.search(r"full_key: (\S+)", str(cause))
    if _is_yaml_error(cause):  # the parser's problem and its file:line, on one line
        detail = "; ".join(ln.strip() for ln in str(cause).splitlines() if ln.strip())
    else:
        detail = _cause_line(cause) or _cause_line(exc) or text
    if cause is not exc and detail != text and not text.startswith(("In '", "Error merging")):
        detail = f"{text}: {detail}"
    if key:
        return f"{key.group(1)}: {detail}{origin}; fix the key or remove it"
    return f"overrides {list(overrides)}: {detail}{origin}"


def _is_yaml_error(exc: BaseException) -> bool:
    return any(cls.__module__.startswith("yaml") for cls in type(exc).__mro__)


def _cause_line(exc: BaseException) -> str:
    """The first line of an exception's text that says what went wrong: not Hydra's location lines (In '...',
    full_key, object_type) and not its listing of the config search path."""
    skip = ("In '", "full_key", "object_type", "Config search path", "provider=", "Available options")
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return next((ln for ln in lines if not ln.startswith(skip)), "")


def _axes(base: DictConfig) -> list[dict[str, str]]:
    """The preset's grids: axes crossed with each sub-grid (or axes alone), as key -> grammar dicts."""
    sweep = base.get("sweep")
    axes = dict(sweep.get("axes") or {}) if sweep is not None else {}
    grids = dict(sweep.get("grids") or {}) if sweep is not None else {}
    for key, value in list(axes.items()) + [(k, v) for g in grids.values() for k, v in dict(g or {}).items()]:
        if value is None or str(value).strip() == "":
            raise ConfigError(f"sweep.axes.{key}: empty value; give Hydra sweep grammar, e.g. '1,4,16'")
    if not grids:
        return [{str(k): str(v) for k, v in axes.items()}]
    return [
        {**{str(k): str(v) for k, v in axes.items()}, **{str(k): str(v) for k, v in dict(g).items()}}
        for g in grids.values()
    ]


def _check_runtime(cfg: TTSConfig) -> TTSConfig:
    """Checks of the runtime's own fields (cluster retries) on top of tts.config.validate."""
    restarts = cfg.cluster.max_engine_restarts
    if not isinstance(restarts, int) or restarts < 0:
        raise ConfigError(f"cluster.max_engine_restarts: invalid value {restarts!r}; must be an integer >= 0")
    return cfg


def _reject_sweep_level_axis(key: str, values: Sequence[str]) -> None:
    """`cluster.max_tries=1,3` would give two cells with one id (the field is not part of a cell): refuse any
    axis over a sweep-level field (a preset's grid too: every cell of a sweep shares them)."""
    top = key.lstrip("+~").split(".", 1)[0]
    if top in identity.SWEEP_LEVEL_FIELDS:
        raise ConfigError(
            f"{key.lstrip('+~')}: cannot sweep over {list(values)!r}; it is a sweep-level setting "
            f"({', '.join(identity.SWEEP_LEVEL_FIELDS)} apply to the whole sweep, not to a cell); "
            "give one value, or run one sweep per value with its own sweep.name"
        )


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose conf/config.yaml with plain overrides (no sweep values): one cell's config, untyped. `expand`
    is the entry point for sweeps; this is for tools and tests that want a single composed config."""
    with _hydra() as loader:
        return _Composer(loader)(list(overrides))


def cell_of(overrides: Sequence[str]) -> tuple[Cell, DictConfig]:
    """The one cell a cell's recorded overrides compose (its manifest entry's `overrides`: the sweep's plain
    overrides plus the cell's axis values), and the composed config. A preset's axes are not expanded: crossing
    them with the cell's values would build its siblings (and, with `sweep.grids`, invalid mixes)."""
    with _hydra() as loader:
        composed = _Composer(loader)(list(overrides))
    typed = _check_runtime(validate(composed))
    data = resolved(typed)
    return Cell(
        identity.cell_id(data), tuple(overrides), typed, (), identity.configuration_id(data)
    ), composed


def expand(overrides: Sequence[str] = ()) -> Grid:
    """Expand `tts sweep` overrides (e.g. ["+sweep=smoke", "n=1,2"]) into a Grid of validated cells.

    Raises ConfigError (naming the field) for any bad value in any cell; nothing is started or written.
    """
    with _hydra() as loader:
        parsed = _parse(loader, overrides, "overrides")
        plain = [o for o in parsed if not o.is_sweep_override()]
        user_axes = {o.get_key_element(): o for o in parsed if o.is_sweep_override()}
        compose = _Composer(loader)
        base = compose([o.input_line for o in plain])
        name = str(OmegaConf.select(base, "sweep.name", default="default"))
        if not SWEEP_NAME.match(name) or ".." in name:
            raise ConfigError(f"sweep.name: invalid value {name!r}; use letters, digits, '_', '-', '.'")
        overridden = {o.get_key_element().lstrip("+~") for o in parsed}

        seen: dict[str, Cell] = {}
        all_axes: dict[str, list[str]] = {}
        for grid in _axes(base):
            axes: dict[str, list[str]] = {}
            for key, grammar in grid.items():
                if key.lstrip("+~") in overridden:
                    continue
                (axis,) = _parse(loader, [f"{key}={grammar}"], f"sweep.axes.{key}")
                axes[key] = _values(axis, f"sweep.axes.{key}")
            for key, o in user_axes.items():
                axes[key] = _values(o, key)
            for key, vals in axes.items():
                _reject_sweep_level_axis(key, vals)
            for key, vals in axes.items():
                all_axes.setdefault(key, [])
                all_axes[key] += [v for v in vals if v not in all_axes[key]]
            keys = list(axes)
            for combo in itertools.product(*(axes[k] for k in keys)):
                cell_overrides = [o.input_line for o in plain] + [
                    f"{k}={v}" for k, v in zip(keys, combo, strict=True)
                ]
                where = " ".join(f"{k}={v}" for k, v in zip(keys, combo, strict=True))
                try:
                    typed = _check_runtime(validate(compose(cell_overrides)))
                except ConfigError as exc:
                    raise ConfigError(f"{exc} [in the cell {where}]" if where else str(exc)) from exc
                data = resolved(typed)
                cid = identity.cell_id(data)
                if cid not in seen:
                    seen[cid] = Cell(
                        cid,
                        tuple(cell_overrides),
                        typed,
                        tuple(zip(keys, combo, strict=True)),
                        identity.configuration_id(data),
                    )
    if not seen:
        raise ConfigError("overrides: the sweep has no cells; check sweep.axes / sweep.grids")
    first = next(iter(seen.values())).config
    return Grid(
        name=name,
        cells=tuple(seen.values()),
        base=base,
        axes=all_axes,
        overrides=tuple(overrides),
        cluster=first.cluster,
        results_dir=first.results_dir,
    )
