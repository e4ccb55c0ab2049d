"""tts-sweep: test-time compute sweeps (policy x PRM x strategy x budget x difficulty) on Ray.

The library is layered so that each layer knows only the one below it:
  data/ grading/          problems and answer checking (no models)
  engines/                the PolicyEngine and PRMScorer protocols and their vLLM / rule-based implementations
  strategies/             pure search logic over the two protocols (no Ray, no files, no Hydra)
  config.py grid.py       typed Hydra configs, validation, and grid expansion into cells
  runtime/ store.py       Ray actors, the scheduler and driver; atomic Parquet results
  analysis/               difficulty bins, compute accounting, compute-optimal tables and plots
"""

__version__ = "0.1.0"
