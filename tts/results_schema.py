"""The results contract between the runtime (writer), `tts.store.load` and `tts.analysis` / notebooks (readers).

Layout of `results/<sweep>/`:
  cells/<cell_id>.parquet   one row per problem of the cell: CELL_COLUMNS, then every resolved config field
                            flattened as "config.<group>.<field>" (e.g. "config.strategy.beam_width"): a
                            strategy's hyperparameters are its schema's fields, read from there
  samples/<pool_id>-<sha12>.parquet
                            one version of a sample pool: one row per (problem, sample): SAMPLE_COLUMNS. Pools are
                            immutable: a rebuilt pool is a new file (<sha12>: first 12 hex of its sha256), the
                            manifest's latest entry for the pool id names the current one, and every cell records
                            the sha256 of the pool it came from (pool_sha256; a cell of an older version is
                            recomputed). Schema <= 2: samples/<pool_id>.parquet
  difficulty.parquet        per (policy, problem): DIFFICULTY_COLUMNS (written by tts.difficulty)
  manifest.jsonl            one JSON line per finished file: kind, id, file, rows, sha256, status, config, meta,
                            git_sha, versions, written_at. Each Parquet file also holds its own line (less sha256
                            and file) in its schema metadata under b"tts.manifest", so `tts repair <dir>` rebuilds
                            a lost manifest from the files (tts.store_repair)
  sweep.yaml                the sweep's resolved config

Column meanings are given next to each name, their Arrow types in CELL_TYPES / SAMPLE_TYPES (the writer casts
every row to them; config.* columns keep their own types). Nullable columns say so.

Versions (SCHEMA_VERSION, recorded in every manifest line's `versions.results_schema`):
  1  (tts-sweep <= 0.1.0, no version recorded) hand-listed beam_width / max_steps / lookahead columns; no
     config_id, grade_status or candidate_* columns. Still loads: the reader fills missing columns with nulls
     and the analysis derives each row's configuration id from its config.* columns (tts.analysis.keys).
  2  config_id; grade_status; candidate_* lists on cells without a sample pool; hyperparameters only as
     config.strategy.* columns.
  3  pool_sha256 (the sha256 of the pool version a pool cell was derived from; also in its manifest meta);
     pools under content-versioned names; each file carries its manifest entry in its schema metadata.
  4  `generations` is float64: a pool strategy whose spend depends on the order samples arrive (adaptive
     stopping) writes its expected generations over random orders; every other row holds a whole number.
     Version 2-3 files (int64) still load: the analysis casts it to double.
  5  `extraction` on cell and sample rows: how the answer was found (boxed | answer_is | gsm8k | last_number |
     none; code rows: program; tts.grading.extract). Grading changed with it: "the answer is X" is an explicit
     answer (it was a last-number fallback), an empty last box (`\\boxed{}`, `\\boxed{\\boxed{}}`) is no answer,
     an answer inside unfinished thinking is no answer (evaluator `tts`), and each cell names its evaluator
     (`config.dataset.evaluator`). Prompts changed too: date-bearing chat templates render a pinned date
     (`config.policy.chat_template_date`) and a local chat template's text enters every id. Every id of a
     version-5 cell differs from the ids of older cells of the same settings, so older rows are never merged
     with new ones; the analysis reads them (missing `extraction` is null) and warns, naming these changes
     (tts.analysis.io.schema_warning). `seeding` on cell and sample rows (and manifest entries' meta): every
     request carries its own seed (per_request; per_request+batch_invariant with engine.batch_invariant), so a
     cell recomputes identically (`tts verify`); null in older rows, whose samples drew from the engine's stream.
     Endpoint policies (policy.backend openai) write `seeding: per_request_endpoint` (seeds sent, samples not
     guaranteed reproducible), and every cell row has `retries` (endpoint requests retried by the job that made
     the row: 429 / 5xx / timeouts; 0 in-process) and `endpoint_ignored` (request fields the endpoint did not
     honour, comma-joined; null in-process or when it honoured all); both null in rows written before them.
  6  `trace` on search cell rows (cells without a sample pool): compact JSON of what the search did for that
     problem (tts.runtime.cells.trace_json: StrategyResult.extra, a tree search's tree as parallel lists, each
     final candidate's steps and step scores), for the first TTS_TRACE_PROBLEMS problems of a cell by problem
     id (default 20; "all"); null elsewhere and in older rows. No id changed: version 5 folders analyze as
     before, and their report.html has no trace to show.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 6

CELL_COLUMNS: dict[str, str] = {
    "sweep": "sweep name",
    "cell_id": "stable id of the cell (tts.identity.cell_id of its resolved config)",
    "config_id": "the configuration the cell is a seed of (tts.identity.configuration_id): the analysis groups by it",
    "pool_id": "id of the sample pool the row was derived from (pool strategies), else null",
    "pool_sha256": "sha256 of the version of that pool (its manifest entry) the row was derived from, else null",
    "problem_id": "Problem.id",
    "dataset": "dataset name",
    "level": "dataset's own level (nullable int)",
    "kind": "math | code",
    "policy": "policy name",
    "policy_model": "policy model id/path",
    "policy_params": "policy parameter count (from the model config)",
    "prm": "PRM name",
    "prm_kind": "none | rule_arithmetic | vllm_pooling | judge",
    "prm_model": "PRM model id/path (nullable)",
    "prm_params": "PRM parameter count (0 for rule-based / none)",
    "aggregation": "last | min | prod | mean",
    "strategy": "strategy name",
    "n": "budget N in generations",
    "seed": "sweep seed",
    "seeding": "how the samples were seeded (tts.engines.vllm_common.seeding_mode): per_request (reproducible on CPU) | per_request+batch_invariant (GPU) | per_request_endpoint (an OpenAI-compatible endpoint: seeds sent, not guaranteed reproducible); null: engine seed only, written before schema 5 (not reproducible)",
    "temperature": "sampling temperature used",
    "answer": "extracted final answer (nullable)",
    "reference": "reference answer",
    "correct": "bool: answer equivalent to reference (code: tests passed)",
    "expected_correct": "pool strategies: exact expected accuracy over random N-subsets of the pool (nullable)",
    "no_answer": "bool: nothing could be extracted",
    "fallback_extraction": "bool: answer came from the last-number fallback",
    "truncated": "bool: the chosen solution hit max_tokens",
    "extraction": "how the answer was found: boxed | answer_is | gsm8k | last_number | none (code: program); schema >= 5, else null",
    "grade_status": "how the verdict was reached (tts.grading.GRADE_STATUSES): ok | guarded | timeout | malformed | early_exit | error",
    "generations": "completions sampled for this problem (float: adaptive pool strategies write the expectation over random orders of the pool)",
    "tokens_in": "prompt tokens prefilled (sum over generate requests)",
    "tokens_cached": "of tokens_in, served from the prefix cache",
    "tokens_out": "generated tokens (adaptive pool strategies: the expectation over random orders, rounded)",
    "prm_tokens": "tokens the PRM computed: what it read minus what its prefix cache served (StepScores.computed_tokens)",
    "flops_policy": "2 x policy_params x (tokens_in - tokens_cached + tokens_out)",
    "flops_prm": "2 x prm_params x prm_tokens",
    "flops": "flops_policy + flops_prm",
    "candidate_answers": "list<str>: final candidates' answers, best score first (cells without a sample pool: search, sequential); null for pool cells, whose samples are stored",
    "candidate_scores": "list<float>: their aggregated PRM scores",
    "candidate_correct": "list<bool>: each candidate graded",
    "candidate_finish_reasons": "list<str>: eos | stop_string | length per candidate",
    "trace": "JSON: the search's extra, tree (parent, step text, score, kept / dropped) and candidates' steps and step scores, for the first TTS_TRACE_PROBLEMS problems of a search cell (schema >= 6); else null",
    "wall_time_s": "wall time of the cell divided evenly over its problems",
    "retries": "endpoint requests retried (429 / 5xx / timeouts) by the job that made this row: a pool's generation and scoring (on every row of every cell of that pool) or a search cell's run; 0 for in-process engines and stored pools; null before it existed",
    "endpoint_ignored": "request fields an endpoint did not honour, comma-joined (n | seed | logprobs | stop_reason); null: in-process, or all honoured",
    "status": "ok | failed",
    "error": "error text when failed (nullable)",
    "git_sha": "git commit of the code that produced the row (nullable)",
    "tts_version": "tts-sweep version",
}

SAMPLE_COLUMNS: dict[str, str] = {
    "pool_id": "hash of (policy, prm, dataset, problem set, seed, sampling settings, n_max)",
    "sweep": "sweep name",
    "policy": "policy name",
    "prm": "PRM name",
    "problem_id": "Problem.id",
    "dataset": "dataset name",
    "level": "dataset's own level (nullable)",
    "seed": "seed",
    "seeding": "how the samples were seeded, as the cells' `seeding` (null: engine seed only, before schema 5)",
    "sample_idx": "0..n_max-1; the first k samples form the pool for budget k",
    "text": "completion text",
    "answer": "extracted answer (nullable)",
    "correct": "bool",
    "grade_status": "how the verdict was reached (tts.grading.GRADE_STATUSES)",
    "no_answer": "bool",
    "fallback_extraction": "bool",
    "extraction": "how the answer was found (as the cell column); schema >= 5, else null",
    "truncated": "bool",
    "finish_reason": "eos | stop_string | length",
    "tokens_out": "generated tokens of this sample",
    "prompt_tokens": "prompt tokens of the problem's request (same on every sample row of a problem)",
    "cached_prompt_tokens": "of prompt_tokens, served from the prefix cache (same on every sample row of a problem)",
    "step_scores": "list<float>: per-step PRM scores",
    "score": "aggregated PRM score with the PRM's aggregation",
    "prm_tokens": "tokens the PRM computed for this sample (read minus prefix-cached)",
}

DIFFICULTY_COLUMNS: dict[str, str] = {
    "policy": "policy name",
    "problem_id": "Problem.id",
    "method": "dataset_level | oracle_quantile | absolute | predicted",
    "bin": "bin label (str)",
    "pass_at_1": "estimated pass@1 (nullable for dataset_level / predicted)",
    "samples_used": "samples spent to assign the bin (charged to the budget)",
}


_S, _I, _F, _B = pa.string(), pa.int64(), pa.float64(), pa.bool_()
CELL_TYPES: dict[str, pa.DataType] = {
    **dict.fromkeys(CELL_COLUMNS, _S),
    **dict.fromkeys(["level", "policy_params", "prm_params", "n", "seed"], _I),
    **dict.fromkeys(["tokens_in", "tokens_cached", "tokens_out", "prm_tokens", "retries"], _I),
    **dict.fromkeys(
        [
            "generations",
            "temperature",
            "expected_correct",
            "flops_policy",
            "flops_prm",
            "flops",
            "wall_time_s",
        ],
        _F,
    ),
    **dict.fromkeys(["correct", "no_answer", "fallback_extraction", "truncated"], _B),
    **dict.fromkeys(["candidate_answers", "candidate_finish_reasons"], pa.list_(_S)),
    "candidate_scores": pa.list_(_F),
    "candidate_correct": pa.list_(_B),
}
SAMPLE_TYPES: dict[str, pa.DataType] = {
    **dict.fromkeys(SAMPLE_COLUMNS, _S),
    **dict.fromkeys(
        ["level", "seed", "sample_idx", "tokens_out", "prompt_tokens", "cached_prompt_tokens", "prm_tokens"],
        _I,
    ),
    **dict.fromkeys(["correct", "no_answer", "fallback_extraction", "truncated"], _B),
    "score": _F,
    "step_scores": pa.list_(_F),
}
