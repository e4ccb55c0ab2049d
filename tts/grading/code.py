"""Grading code completions by running them: program = prompt + completion (or the function the model wrote in a
```python block), then the problem's tests, executed in the sandbox (tts.grading.sandbox). Passed => correct,
where passed means exit code 0 AND the sandbox's per-run secret printed after the tests' last line (an
`os._exit(0)` / `sys.exit(0)` / atexit / excepthook exit before the tests finish is status "early_exit",
incorrect; what a same-process harness cannot stop is written in the sandbox's docstring).

Why here: `tts.grading.grade` dispatches `kind == "code"` problems to `grade_code`, so pools, strategies and the
store treat code like math. Two more views of a completion live here because selection needs them:
- `execution_answers`: each program's behaviour on the PUBLIC examples of the prompt (never the hidden tests)
  as an opaque answer token "@exec@<hash>", so majority vote groups programs that compute the same outputs
  (AlphaCode's clustering, Li et al. 2022). math-verify cannot parse the token, so grouping is exact equality.
  With no public inputs, identical programs (same AST) group together ("@code@<hash>").
- `build_program`: how a completion becomes a program (also the `answer` shown in results: the code appended).

Completions are cut at Chen et al.'s (2021) stop sequences ("\\nclass", "\\ndef", "\\n#", "\\nif", "\\nprint"):
a plain completion model keeps writing after the function body. Identical programs run once (cached).
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from tts.data.problem import Problem
from tts.grading import Extraction, Grade
from tts.grading.sandbox import Sandbox, SandboxResult, default_sandbox

STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
SIGNATURE_MARK = "@@tts-signature@@"
_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)
_SIGNATURE_HARNESS = """

def __tts_signature():
    import hashlib as _h, json as _j
    outs = []
    for src in {inputs}:
        try:
            outs.append(repr(eval(src, globals())))
        except BaseException as exc:
            outs.append("!" + type(exc).__name__)
    print("\\n{mark}" + _h.sha1(_j.dumps(outs).encode()).hexdigest())
__tts_signature()
"""


@dataclass(frozen=True)
class CodeExtraction:
    """How a completion became a program. code: what is appended to the prompt ("" = nothing to run);
    restated: the code came from a ```python block or a restated `def <entry_point>` rather than a plain
    continuation of the prompt (reported as `fallback_extraction`)."""

    program: str
    code: str
    restated: bool


def truncate(text: str, stops: Sequence[str] = STOP_SEQUENCES) -> str:
    """`text` up to the first stop sequence."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:cut]


def build_program(problem: Problem, text: str) -> CodeExtraction:
    """The program (without tests) for completion `text` of a code problem."""
    prompt = problem.metadata.get("prompt", problem.question)
    entry = problem.metadata.get("entry_point", "")
    head = prompt if prompt.endswith("\n") else prompt + "\n"
    defines = re.compile(rf"^def\s+{re.escape(entry)}\s*\(", re.MULTILINE) if entry else None
    blocks = _FENCE.findall(text) if "```" in text else []
    if blocks:
        block = next((b for b in blocks if defines and defines.search(b)), blocks[0])
        return CodeExtraction(head + "\n" + block, block, True)
    match = defines.search(text) if defines else None
    if match:  # the model restated the function: keep it, cut after it
        start = match.start()
        body = text[start:]
        first_line = body.find("\n") + 1 if "\n" in body else len(body)
        imports = [ln for ln in text[:start].splitlines() if ln.startswith(("import ", "from "))]
        code = "".join(f"{ln}\n" for ln in imports) + body[:first_line] + truncate(body[first_line:])
        return CodeExtraction(head + "\n" + code, code, True)
    code = truncate(text)
    return CodeExtraction(prompt + code, code, False)


# ------------------------------------------------------------------------------------------ running
class _Cache:
    """A small thread-safe LRU of program text -> SandboxResult (pools grade the chosen sample again)."""

    def __init__(self, size: int = 4096) -> None:
        self._data: OrderedDict[str, SandboxResult] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: str) -> SandboxResult | None:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
            return None

    def put(self, key: str, value: SandboxResult) -> None:
        with self._lock:
            self._data[key] = value
            while len(self._data) > self._size:
                self._data.popitem(last=False)


_CACHE = _Cache()


def run_programs(
    programs: Sequence[str], sandbox: Sandbox | None = None, timeout_s: float | None = None
) -> list[SandboxResult]:
    """Run programs in the sandbox (parallel up to its max_workers), each distinct program once; results of
    earlier calls are reused, except infrastructure errors (status "error"), which are retried."""
    box = sandbox or default_sandbox()
    found = {p: r for p in programs if (r := _CACHE.get(_key(p, timeout_s, box))) is not None}
    todo = [p for p in dict.fromkeys(programs) if p not in found]
    for program, result in zip(todo, box.run_many(todo, timeout_s=timeout_s), strict=True):
        found[program] = result
        if result.status != "error":
            _CACHE.put(_key(program, timeout_s, box), result)
    return [found[p] for p in programs]


def _key(program: str, timeout_s: float | None, box: Sandbox) -> str:
    return f"{box.limits}\0{timeout_s}\0{program}"


_STATUS = {"passed": "ok", "failed": "ok", "timeout": "timeout", "early_exit": "early_exit", "error": "error"}


def _detail(result: SandboxResult) -> str:
    if result.status == "passed":
        return f"tests passed in {result.duration_s:.2f} s"
    if result.status == "timeout":
        return f"timeout after {result.duration_s:.1f} s"
    if result.status == "early_exit":
        return "early_exit: the program exited with code 0 before its tests finished (no completion secret)"
    lines = [ln for ln in result.stderr_tail.strip().splitlines() if ln.strip()]
    return f"{result.status}: {lines[-1].strip()[:300] if lines else f'exit code {result.returncode}'}"


# ------------------------------------------------------------------------------------------ grading
def grade_many(
    problems: Sequence[Problem], texts: Sequence[str], sandbox: Sandbox | None = None
) -> list[Grade]:
    """Grade completion texts[i] of problems[i] (code problems), all in one parallel batch in the sandbox."""
    if len(problems) != len(texts):
        raise ValueError(
            f"texts: {len(texts)} completions for {len(problems)} problems; give one per problem"
        )
    for p in problems:
        if not p.metadata.get("tests"):
            raise ValueError(f"problem {p.id!r}: metadata['tests'] is missing; load it with tts.data.code")
    extractions = [build_program(p, t) for p, t in zip(problems, texts, strict=True)]
    runnable = [i for i, e in enumerate(extractions) if e.code.strip()]
    by_timeout: dict[float | None, list[int]] = {}
    for i in runnable:
        by_timeout.setdefault(problems[i].metadata.get("timeout_s"), []).append(i)
    results: dict[int, SandboxResult] = {}
    for timeout, idx in by_timeout.items():
        programs = [extractions[i].program + "\n\n" + problems[i].metadata["tests"] for i in idx]
        results.update(zip(idx, run_programs(programs, sandbox, timeout), strict=True))
    grades = []
    for i, ext in enumerate(extractions):
        result = results.get(i)
        if result is None:
            grades.append(Grade(None, False, True, False, False, "empty completion: no code to run"))
        else:
            status = _STATUS[result.status]
            grades.append(Grade(ext.code, result.passed, False, ext.restated, False, _detail(result), status))
    return grades


def grade_codes(problem: Problem, texts: Sequence[str], sandbox: Sandbox | None = None) -> list[Grade]:
    """Grade several completions of one code problem (run in parallel in the sandbox)."""
    return grade_many([problem] * len(texts), texts, sandbox)


def grade_code(problem: Problem, text: str, sandbox: Sandbox | None = None) -> Grade:
    """Grade one completion: build the program, append the tests, run it in the sandbox; passed => correct."""
    return grade_codes(problem, [text], sandbox)[0]


# ------------------------------------------------------------------------------- execution signatures
def signature_program(problem: Problem, program: str) -> str | None:
    """`program` followed by a harness that prints a hash of its outputs on the public inputs (None: no
    public inputs)."""
    inputs = list(problem.metadata.get("public_inputs") or [])
    if not inputs:
        return None
    return program + _SIGNATURE_HARNESS.format(inputs=json.dumps(inputs), mark=SIGNATURE_MARK)


def execution_answers(
    problem: Problem, texts: Sequence[str], sandbox: Sandbox | None = None
) -> list[Extraction]:
    """One answer token per completion: "@exec@<hash of outputs on the public inputs>", "@code@<hash of the
    AST>" when the problem has no public inputs, None when the program does not run (or has no code)."""
    extractions = [build_program(problem, t) for t in texts]
    answers: list[str | None] = [None] * len(texts)
    probes = {i: signature_program(problem, e.program) for i, e in enumerate(extractions) if e.code.strip()}
    to_run = {i: p for i, p in probes.items() if p is not None}
    for i in probes.keys() - to_run.keys():  # no public inputs: identical programs vote together
        try:
            tree = ast.dump(ast.parse(extractions[i].program))
        except (SyntaxError, ValueError):
            continue
        answers[i] = "@code@" + hashlib.sha1(tree.encode()).hexdigest()[:16]
    order = sorted(to_run)
    for i, result in zip(order, run_programs([to_run[i] for i in order], sandbox), strict=True):
        marks = [ln for ln in result.stdout.splitlines() if ln.startswith(SIGNATURE_MARK)]
        if result.status == "passed" and marks:
            answers[i] = "@exec@" + marks[-1].removeprefix(SIGNATURE_MARK)[:16]
    return [Extraction(a, "none" if a is None else "program") for a in answers]
