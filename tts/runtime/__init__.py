"""Running sweeps on Ray: the layer between a Grid of cells (tts.grid) and the results store (tts.store).

driver.py        run_sweep(grid): resume, data sets, difficulty bins, Ray start / connect, writing results
plan.py          cells -> jobs: shared sample pools, search cells, engine keys, cost estimates
scheduler.py     the event loop: bounded in-flight jobs per engine, requeue on actor death, K tries
engine_pool.py   which engine actors a sweep needs; resources (CPU, GPU, fraction, TP placement group)
actors.py        the engine actor and the proxies strategies call (PolicyEngine / PRMScorer over Ray)
cells.py         job bodies (pool build + select, search strategies), grading, result rows
progress.py      live display / log lines and the final summary
"""
