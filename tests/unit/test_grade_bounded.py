"""grade() is bounded in time on any input: the hang family (answers whose sympy evaluation explodes) is guarded
or killed, from the main thread and from worker threads (as in Ray async actors), and grade_many grades a
mixed batch in parallel with a `status` per row."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from tts.data.problem import Problem
from tts.grading import GRADE_STATUSES, Grade, bounded, grade, grade_many
from tts.grading.equivalence import equivalence

# Each of these made sympy run for minutes (or for ever) or exhaust memory before the guard; measured
# unguarded in a worker: most ran past a 5 s kill.
HANG_FAMILY = [
    "100000!",
    "(10^{5})!",
    "((5!)!)!",
    "(20!)!",
    "(10!)!",
    "{12}!!",
    "1000!!",
    "\\binom{10^{9}}{5\\cdot 10^{8}}",
    "\\binom{1000000}{500000}",
    "\\dbinom{123456789}{12345678}",
    "\\Gamma(10^{9})",
    "\\Gamma(1000000)",
    "9^{9^{9^{9}}}",
    "2^{2^{2^{2^{2^{2}}}}}",
    "10^{10^{10}}",
    "{(10!)}^{(10!)}",
    "\\sqrt{10^{10^{6}}}",
    "\\frac{10^{1000000}}{3}",
    "\\sum_{n=1}^{10^{9}} n!",
    "\\prod_{k=1}^{10^{7}} k",
    "99999^{99999}",
    "10^{99999}",
]
BOUND_S = bounded.TIMEOUT_S + 3.0  # the kill deadline plus a worker start on this loaded 2-core machine


def _math(answer: str) -> Problem:
    return Problem(id="t/hang", question="q", answer=answer, dataset="t")


def test_hang_family_is_bounded_and_never_correct() -> None:
    grade(_math("1"), "\\boxed{2}")  # warm a worker: the bound below is per call, start-up included once
    times = {}
    for answer in HANG_FAMILY:
        start = time.monotonic()
        g = grade(_math("1"), f"The answer is \\boxed{{{answer}}}.")
        times[answer] = time.monotonic() - start
        assert not g.correct and g.answer == answer
        assert g.status in ("ok", "guarded", "timeout"), (answer, g)
    worst = max(times, key=times.get)
    print(f"worst grade() over {len(times)} hang inputs: {times[worst]:.2f} s ({worst!r})")
    assert times[worst] < BOUND_S, times


def test_identical_risky_answers_still_match() -> None:
    g = grade(_math("9^{9^{9^{9}}}"), "\\boxed{9^{9^{9^{9}}}}")
    assert (g.correct, g.status) == (True, "ok")  # the string fast path decides before the guard
    g = grade(_math("(20!)!"), "\\boxed{(21!)!}")
    assert (g.correct, g.status) == (False, "guarded")


def test_worker_past_its_deadline_is_killed_and_replaced() -> None:
    bounded.compare("1", "2")  # a warm worker
    start = time.monotonic()
    verdict = bounded.compare("((5!)!)!", "1", timeout_s=1.0)  # no guard here: sympy really hangs on it
    assert verdict == (False, "timeout")
    assert time.monotonic() - start < 1.0 + 1.0
    kept = {w.proc.pid for w in bounded.pool()._all}
    assert set(_workers()) <= kept  # the killed worker is gone (reaped, not a zombie)
    assert bounded.compare("\\frac{1}{2}", "0.5") == (True, "ok")  # a fresh worker took over


def _workers() -> list[int]:
    return [
        p.pid
        for p in psutil.Process().children()
        if "tts.grading.bounded" in " ".join(p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE
    ]


def test_bounded_from_threads_like_a_ray_async_actor() -> None:
    pairs = [("((5!)!)!", "1"), ("\\frac{1}{2}", "0.5"), ("\\sqrt{8}", "2\\sqrt{2}"), ("7", "8")]
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda p: bounded.compare(p[0], p[1], timeout_s=1.5), pairs))
    assert got == [(False, "timeout"), (True, "ok"), (True, "ok"), (False, "ok")]
    assert time.monotonic() - start < 1.5 + 4.0


def test_equivalence_statuses() -> None:
    assert equivalence("1", None) == (False, "malformed")  # type: ignore[arg-type]
    assert equivalence("", "1") == (False, "malformed")
    assert equivalence("\\frac{1}{2}", "0.5") == (True, "ok")
    assert equivalence("(20!)!", "1") == (False, "guarded")


def test_workers_die_with_their_grader() -> None:
    script = textwrap.dedent(
        """
        import os, sys, time
        from tts.grading import bounded
        bounded.compare("1", "2")
        print(" ".join(str(w.proc.pid) for w in bounded.pool()._all), flush=True)
        time.sleep(60)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        workers = [int(x) for x in proc.stdout.readline().split()]  # type: ignore[union-attr]
        assert workers and all(psutil.pid_exists(w) for w in workers)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_grade_many_mixed_batch_in_order() -> None:
    code = Problem(
        id="c/1",
        question="def f():\n",
        answer="",
        dataset="c",
        kind="code",
        metadata={"prompt": "def f():\n", "tests": "assert f() == 3\n", "entry_point": "f"},
    )
    problems = [_math("\\frac{1}{2}"), code, _math("7"), code, _math("1"), _math("5")]
    texts = [
        "\\boxed{0.5}",
        "    return 3\n",
        "\\boxed{8}",
        "    import os\n    os._exit(0)\n",
        "\\boxed}",
        "5",
    ]
    reasons = ["eos", "eos", "length", "eos", "eos", "eos"]
    got = grade_many(problems, texts, reasons)
    assert [g.correct for g in got] == [True, True, False, False, False, True]
    assert [g.status for g in got] == ["ok", "ok", "ok", "early_exit", "malformed", "ok"]
    assert got[2].truncated and not got[0].truncated
    assert got[5].fallback_extraction
    assert all(g.status in GRADE_STATUSES for g in got)
    assert got == [grade(p, t, r) for p, t, r in zip(problems, texts, reasons, strict=True)]
    with pytest.raises(ValueError, match="give one of each per row"):
        grade_many(problems, texts[:2])


def test_grade_keeps_its_constructor_order() -> None:
    g = Grade("1", True, False, False, False, "note")  # the positional form callers use
    assert (g.detail, g.status) == ("note", "ok")
