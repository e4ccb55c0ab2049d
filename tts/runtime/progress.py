"""Sweep progress: a live display on a terminal (rich), plain log lines otherwise, and the final one-line summary.

Why: a sweep runs for minutes to days; the user wants cells done / failed / total, generated tokens per second,
an ETA and which engines are up, without log spam in CI logs or `ray job logs`.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("tts.sweep")


def _fmt_s(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


@dataclass
class Progress:
    """Counters and their display. `live`: None = rich display when stderr is a terminal."""

    sweep: str
    total: int
    skipped: int = 0
    live: bool | None = None
    done: int = 0
    failed: int = 0
    tokens: int = 0
    jobs_total: int = 0  # pool / search jobs of this run (ETA counts jobs: a pool job finishes many cells)
    jobs_done: int = 0
    first_ready: float | None = None  # when the first engine was ready (ETA excludes engine start)
    engines: dict[str, str] = field(default_factory=dict)  # label -> state
    started: float = field(default_factory=time.monotonic)
    _live: Any = None
    _last_log: float = 0.0

    def __post_init__(self) -> None:
        if self.live is None:
            self.live = sys.stderr.isatty()
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(
                self._render(), console=Console(stderr=True), refresh_per_second=2, transient=False
            )
            self._live.start()
        else:
            log.info("sweep %s: %d cells, %d already finished", self.sweep, self.total, self.skipped)

    # ---- events
    def engine(self, label: str, state: str) -> None:
        if state.startswith("ready") and self.first_ready is None:
            self.first_ready = time.monotonic()
        self.engines[label] = state
        self._update(force=True)

    def cells(self, ok: int = 0, failed: int = 0, tokens: int = 0, job: bool = True) -> None:
        self.jobs_done += int(job)
        self.done += ok
        self.failed += failed
        self.tokens += tokens
        self._update(force=True)

    def tick(self) -> None:
        self._update()

    # ---- numbers
    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def tokens_per_s(self) -> float:
        """Generated tokens per second since the first engine was ready (engine start excluded)."""
        since = time.monotonic() - (self.first_ready if self.first_ready is not None else self.started)
        return self.tokens / since if since > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Time per finished job since the first engine was ready, times the jobs left."""
        if self.jobs_done == 0 or self.first_ready is None:
            return None
        remaining = max(self.jobs_total - self.jobs_done, 0)
        return (time.monotonic() - self.first_ready) / self.jobs_done * remaining

    def line(self) -> str:
        engines = ", ".join(f"{k} ({v})" for k, v in self.engines.items()) or "-"
        return (
            f"[{self.sweep}] cells {self.skipped + self.done}/{self.total} done, {self.failed} failed | "
            f"{self.tokens_per_s:.0f} tok/s | ETA {_fmt_s(self.eta_s)} | engines: {engines}"
        )

    # ---- display
    def _render(self) -> Any:
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        table.add_row("sweep", self.sweep)
        table.add_row(
            "cells",
            f"{self.skipped + self.done}/{self.total} done ({self.skipped} from earlier runs), "
            f"{self.failed} failed",
        )
        table.add_row("tokens/s", f"{self.tokens_per_s:.0f} ({self.tokens} generated)")
        table.add_row("elapsed / ETA", f"{_fmt_s(self.elapsed)} / {_fmt_s(self.eta_s)}")
        for label, state in self.engines.items():
            table.add_row("engine", f"{label}: {state}")
        return table

    def _update(self, force: bool = False) -> None:
        if self._live is not None:
            self._live.update(self._render())
        elif force or time.monotonic() - self._last_log > 30:
            self._last_log = time.monotonic()
            log.info(self.line())

    def stop(self) -> None:
        """Stop the live display (idempotent; also on errors and Ctrl-C)."""
        if self._live is not None:
            self._live.update(self._render())
            self._live.stop()
            self._live = None

    def close(self, summary: str) -> None:
        self.stop()
        print(summary, flush=True)
