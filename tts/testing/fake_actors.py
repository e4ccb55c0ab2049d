"""A builder for engine actors that holds `FakePolicy` / `FakePRM` instead of vLLM, with fault injection.

Why: the runtime's tests (placement, scheduling, requeue on actor death, resume) need real Ray actors that start
in milliseconds and behave deterministically, so that a disturbed run can be compared with an undisturbed one.
`FakeEngineBuilder` is a picklable callable passed as `EngineSpec.builder`.

Faults: with `die_every=K`, every K-th generate call across the actor's lifetimes (counted in a file under
`state_dir`, so restarts do not reset it) raises an exception named `EngineDeadError`, as vLLM does when its
engine core dies; the actor's guard then exits the process and Ray restarts the actor. `max_deaths` bounds it.
`delay_s` makes each generate call take that long per request, so a sweep lasts long enough to be disturbed;
the actor's pid is written to `state_dir/pid` on each (re)start so a test can SIGKILL it. `poison_stop` makes
step-level requests fail (search cells fail, sampling cells succeed); `fail_load` makes the engine fail to start.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tts.engines.protocols import Generation, GenerationRequest
from tts.testing.fake_engines import FakePolicy, FakePRM


class EngineDeadError(RuntimeError):
    """Same name as vLLM's: the actor guard recognises engine death by the class name."""


def _bump(path: Path) -> int:
    """Increment and return a counter kept in a file (process-safe with flock)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        value = int(fh.read() or 0) + 1
        fh.seek(0)
        fh.truncate()
        fh.write(str(value))
        fh.flush()
        fcntl.flock(fh, fcntl.LOCK_UN)
    return value


def counter(state_dir: str | Path, name: str) -> int:
    path = Path(state_dir) / name
    return int(path.read_text() or 0) if path.is_file() else 0


class FaultyFakePolicy(FakePolicy):
    """FakePolicy whose generate may sleep and may die (see the module docstring)."""

    def __init__(
        self,
        *args: Any,
        delay_s: float,
        die_every: int,
        max_deaths: int,
        state_dir: str | None,
        key: str,
        poison_stop: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.delay_s, self.die_every, self.max_deaths = delay_s, die_every, max_deaths
        self.poison_stop = poison_stop
        self.state_dir = Path(state_dir) if state_dir else None
        self.key = key

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        if self.poison_stop and any(r.stop for r in requests):
            raise ValueError("poisoned request: this fake engine refuses step-level (stop string) requests")
        if self.delay_s:
            time.sleep(self.delay_s * len(requests))
        if self.state_dir is not None:
            calls = _bump(self.state_dir / f"{self.key}.calls")
            if (
                self.die_every
                and calls % self.die_every == 0
                and counter(self.state_dir, "deaths") < self.max_deaths
            ):
                _bump(self.state_dir / "deaths")
                raise EngineDeadError(f"fake engine {self.key} died on call {calls}")
        return super().generate(requests)


@dataclass(frozen=True)
class FakeEngineBuilder:
    """Builds a (Faulty)FakePolicy for the spec's policy and a FakePRM per PRM, seeded from the engine seed."""

    error_rate: float = 0.3
    delay_s: float = 0.0
    die_every: int = 0
    max_deaths: int = 0
    state_dir: str | None = None
    load_s: float = 0.0  # simulated engine start time
    poison_stop: bool = False  # generate raises ValueError on step-level requests (search strategies fail)
    fail_load: bool = False  # the engine fails to start (constructor raises)

    def __call__(self, spec: Any) -> tuple[Any, dict[str, Any]]:
        if self.load_s:
            time.sleep(self.load_s)
        if self.fail_load and spec.policy is not None:
            raise RuntimeError("fake engine failed to load (fail_load=True)")
        if self.state_dir and not spec.key.startswith("local:"):  # an engine actor (not a task-local PRM)
            _bump(Path(self.state_dir) / "loads")
            (Path(self.state_dir) / "pid").write_text(str(os.getpid()))
        seed = spec.engine.seed
        policy = None
        if spec.policy is not None:
            policy = FaultyFakePolicy(
                seed,
                error_rate=self.error_rate,
                delay_s=self.delay_s,
                die_every=self.die_every,
                max_deaths=self.max_deaths,
                state_dir=self.state_dir,
                key=spec.key.replace("/", "_").replace(":", "_"),
                poison_stop=self.poison_stop,
            )
        prms = {pid: FakePRM(seed, param_count=1000) for pid, _ in spec.prms}
        return policy, prms
