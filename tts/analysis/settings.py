"""AnalysisConfig: the settings of `tts analyze`, defaults in conf/analysis/default.yaml.

Why a config and not constants: which strategies the tables report gains over (best-of-N, majority vote) and
which curves the adaptive-allocation plot is drawn against are choices of the analyst, not facts of the code;
no analysis module names a strategy, so a sweep of new strategies analyzes without edits here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_FILE = Path("analysis") / "default.yaml"


@dataclass
class AnalysisConfig:
    baselines: dict[str, str] = field(default_factory=dict)  # column label -> strategy name
    adaptive_baselines: dict[str, str] = field(default_factory=dict)
    adaptive_line_baseline: str | None = None
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
        line = self.adaptive_line_baseline
        if line is not None and line not in self.adaptive_baselines:
            raise ValueError(
                f"adaptive_line_baseline: {line!r} is not one of adaptive_baselines ({', '.join(self.adaptive_baselines)})"
            )

    def charges(self, method: str) -> bool:
        """Whether budgets include the binning's samples for bins of `method` (auto: predicted bins only)."""
        return method == "predicted" if self.charge_binning == "auto" else bool(self.charge_binning)


def load_analysis_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> AnalysisConfig:
    """AnalysisConfig from `path` (default: conf/analysis/default.yaml of the config tree) with dotlist
    `overrides` ("folds=3", "baselines={best-of-N: best_of_n}") applied on top."""
    from omegaconf import OmegaConf

    if path is None:
        from tts.config import conf_dir

        path = conf_dir() / DEFAULT_FILE
    node = OmegaConf.load(path)
    if overrides:
        node = OmegaConf.merge(node, OmegaConf.from_dotlist(list(overrides)))
    values: dict[str, Any] = OmegaConf.to_container(node, resolve=True)  # type: ignore[assignment]
    known = {f.name for f in fields(AnalysisConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"analysis config: unknown key(s) {unknown}; allowed: {', '.join(sorted(known))}")
    return AnalysisConfig(**values)
