"""Analysis of a sweep's results: which strategy is compute-optimal, per policy, PRM, difficulty and budget.

    tts analyze results/smoke            # report.md + plots; python -m tts.analysis.report results/smoke

Modules (read in this order):
  difficulty  difficulty bins per (policy, problem): oracle quantile, absolute, predicted, dataset level
  io          reading a results folder (manifest-listed files), difficulty.parquet
  summary     the materialised per-problem / per-bin summary and the raw-Parquet scan (DuckDB)
  source      AnalysisData: what tables and plots read, from the summary, a raw scan or in-memory rows
  bootstrap   seeded bootstrap CIs over problems
  tables      generation-matched, FLOPs-matched and cross-size compute-optimal tables
  plots       accuracy vs budget, the compute-optimal frontier, small + search vs large
  report      `tts analyze`
  synthetic   synthetic results with a known answer (tests, the notebook's fallback, the bench)
  coverage    pass@k coverage curves (repeated sampling)
Nothing here imports Ray or vLLM.
"""
