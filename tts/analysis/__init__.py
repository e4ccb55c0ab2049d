"""Analysis of a sweep's results: which configuration is compute-optimal, per policy, PRM, difficulty and budget.

    tts analyze results/smoke            # report.md + plots; python -m tts.analysis.report results/smoke

Modules (read in this order):
  keys        what identifies a configuration (config_id) and what the tables show about it
  settings    AnalysisConfig (conf/analysis/default.yaml): baselines, folds, CI, binning charge
  io          reading a results folder (manifest-listed files), difficulty.parquet
  difficulty  binning cost and bin warnings (the bin rules themselves: tts.difficulty)
  summary     the materialised per-problem / per-bin summary (DuckDB)
  source      AnalysisData: what tables and plots read, from the summary or in-memory rows
  bootstrap   seeded two-level resampling weights: problems, then the seeds of each drawn problem
  selection   held-out selection of a winner, CIs that redo the selection
  tables      generation-matched, FLOPs-matched and cross-size compute-optimal tables
  revisions   accuracy vs the sequential / parallel ratio (sequential revision), chosen held-out
  text        formatting shared by the report's tables
  adaptive    Snell et al.'s difficulty-adaptive allocation vs each baseline at N = X: X/Y per X, with CIs
  plots       accuracy vs budget, the frontier, small + search vs large, adaptive allocation
  coverage    pass@k coverage curves (repeated sampling)
  report      `tts analyze`
Nothing here imports Ray, vLLM or tts.testing, and no module names a strategy.
"""
