"""AnalysisConfig: the settings of `tts analyze`: defaults here, the analyst's choices (baselines) in conf/analysis/default.yaml.

Why a config and not constants: which strategies the tables report gains over (best-of-N, majority vote) and
which baselines the difficulty-adaptive allocation is compared with (at N = X, tts.analysis.adaptive) are
choices of the analyst, not facts of the code; no analysis module names a strategy, so a sweep of new strategies
analyzes without edits here.

`charge_binning` is about the per-bin tables (tts.analysis.tables): whether a configuration's budget includes
the binning samples it does not already draw. The adaptive comparison does not read it: it always gives X/Y
with the binning not charged (Snell et al.'s convention) and, beside it, X/(Y + K) with K charged once per
problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

DEFAULT_FILE = Path("analysis") / "default.yaml"


@dataclass
class AnalysisConfig:
    baselines: dict[str, str] = field(default_factory=dict)  # column label -> strategy name
    adaptive_baselines: dict[str, str] = field(default_factory=dict)  # label -> strategy, compared at N = X
    adaptive_method: str = "predicted"
    folds: int = 2
    min_fold_problems: int = 10
    ci: float = 0.95
    replicates: int = 1000
    seed: int = 0
    grid_step: float = 1.0
    charge_binning: str | bool = "auto"
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise ValueError(
                f"folds: invalid value {self.folds!r}; need >= 2 to choose on one and score on another"
            )
        if not 0 < self.ci < 1:
            raise ValueError(f"ci: invalid value {self.ci!r}; must be in (0, 1), e.g. 0.95")
        if self.replicates < 1:
            raise ValueError(f"replicates: invalid value {self.replicates!r}; must be >= 1")
        if self.grid_step <= 0:
            raise ValueError(
                f"grid_step: invalid value {self.grid_step!r}; must be > 0 (octaves between budgets)"
            )
        if self.charge_binning not in ("auto", True, False):
            raise ValueError(
                f"charge_binning: invalid value {self.charge_binning!r}; allowed: auto, true, false"
            )

    def charges(self, method: str) -> bool:
        """Whether the per-bin tables' budgets include the binning's samples for bins of `method` (auto:
        predicted bins only). The adaptive comparison reports both (tts.analysis.adaptive)."""
        return method == "predicted" if self.charge_binning == "auto" else bool(self.charge_binning)


def load_analysis_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> AnalysisConfig:
    """AnalysisConfig from `path` (default: conf/analysis/default.yaml of the config tree) with dotlist
    `overrides` ("folds=3", "baselines={best-of-N: best_of_n}") applied on top. The dataclass is the schema (an
    OmegaConf structured config: its defaults are the only ones, and a value of the wrong type or an unknown key
    is rejected in one line naming it); the YAML holds the analyst's choices (the baselines)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigKeyError, ValidationError

    if path is None:
        from tts.config import conf_dir

        path = conf_dir() / DEFAULT_FILE
    known = {f.name for f in fields(AnalysisConfig)}
    layers = [OmegaConf.load(path), OmegaConf.from_dotlist(list(overrides or []))]
    for layer in layers:
        if "adaptive_line_baseline" in layer:
            raise ValueError(
                "analysis config: adaptive_line_baseline was removed; the report now compares the compute-optimal "
                "curve with every baseline of adaptive_baselines at every N = X (a table of X/Y with CIs): "
                "delete the key"
            )
        unknown = sorted(set(layer) - known)  # type: ignore[arg-type]
        if unknown:
            raise ValueError(
                f"analysis config: unknown key(s) {unknown}; allowed: {', '.join(sorted(known))}"
            )
    try:
        node = OmegaConf.merge(OmegaConf.structured(AnalysisConfig), *layers)
        return OmegaConf.to_object(node)  # type: ignore[return-value]
    except (ValidationError, ConfigKeyError) as exc:
        key = getattr(exc, "full_key", None) or "analysis config"
        want = {f.name: f.type for f in fields(AnalysisConfig)}.get(str(key), "")
        value = getattr(exc, "value", None)
        raise ValueError(f"{key}: invalid value {value!r}" + (f"; expected {want}" if want else "")) from None
