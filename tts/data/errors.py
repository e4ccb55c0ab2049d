"""The one error a data set that cannot be used raises: `DataSetError`, a ValueError whose one-line message
names the config field, the file and line (when there is one) and the fix.

Why one typed error: the driver validates the data before Ray or any engine starts (tts.data.validate) and
must tell a bad data set (stop, show one line) from a bug (a traceback); callers that already catch ValueError
keep working.

    dataset.columns.answer: /data/p.jsonl line 7: no column 'answer' (got ['id', 'q']); fix: add it to every
    line, or map another column with +dataset.columns.answer=<column>
"""

from __future__ import annotations


class DataSetError(ValueError):
    """A data set that cannot be used. field: the config key to change ("dataset.path", "dataset.levels",
    "dataset.columns.answer", ...); source: the file or hub id; line: 1-based line of a JSONL file (row:
    0-based record index when the line is not known yet); fix: what to do."""

    def __init__(
        self,
        field: str,
        problem: str,
        fix: str = "",
        *,
        source: str | None = None,
        line: int | None = None,
        row: int | None = None,
    ) -> None:
        self.field, self.problem, self.fix = field, problem, fix
        self.source, self.line, self.row = source, line, row
        super().__init__(self._message())

    def _message(self) -> str:
        where = self.source or ""
        if self.line is not None:
            where += f" line {self.line}"
        elif self.row is not None:
            where += f" record {self.row + 1}"
        parts = [f"{self.field}: ", f"{where.strip()}: " if where.strip() else "", self.problem]
        if self.fix:
            parts.append(f"; fix: {self.fix}")
        return " ".join("".join(parts).split())  # one line, whatever the parts held

    def at_line(self, line: int) -> DataSetError:
        """The same error with its JSONL line number filled in."""
        return DataSetError(self.field, self.problem, self.fix, source=self.source, line=line)
