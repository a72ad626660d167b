"""What the harness collector wrote since a test began, read incrementally.

Every process of a test exports metrics twice a second, and the tests poll: re-parsing the
whole file each time would cost more than the test. `CollectorFile` reads only the lines
added since its last read and keeps them flattened by the harness's one OTLP/JSON reader
(stackyard_harness.otlp: spans, metric points and log records, each with its resource).
"""

from __future__ import annotations

import json
from pathlib import Path

from stackyard_harness.otlp import LogRecord, MetricPoint, Span, log_records, metric_points, spans


class CollectorFile:
    """The collector's JSON-lines output from a point on (`from_end`: what a test caused),
    read from where the last read stopped.

    The collector truncates its file when it starts again: `reopen()` after a restart (a
    file shorter than the offset is taken as a restart too). What was read stays: `lines`
    (raw text, for the secret grep) and the flattened spans, points and log records."""

    def __init__(self, path: Path, *, from_end: bool = True) -> None:
        self.path = path
        self.offset = path.stat().st_size if from_end and path.exists() else 0
        self.lines: list[str] = []
        self._spans: list[Span] = []
        self._points: list[MetricPoint] = []
        self._logs: list[LogRecord] = []

    def reopen(self) -> None:
        self.offset = 0

    def refresh(self) -> None:
        """Read the complete lines added since the last read."""
        if not self.path.exists():
            return
        with self.path.open("rb") as file:
            file.seek(0, 2)
            if file.tell() < self.offset:
                self.offset = 0
            file.seek(self.offset)
            data = file.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        new = [line for line in complete.decode(errors="replace").splitlines() if line.strip()]
        records = [json.loads(line) for line in new]
        self.lines += new
        self._spans += spans(records)
        self._points += metric_points(records)
        self._logs += log_records(records)

    def spans(self) -> list[Span]:
        self.refresh()
        return list(self._spans)

    def metric_points(self) -> list[MetricPoint]:
        self.refresh()
        return list(self._points)

    def log_records(self) -> list[LogRecord]:
        self.refresh()
        return list(self._logs)

    def text(self) -> str:
        """Every line read so far, as the collector wrote them."""
        self.refresh()
        return "\n".join(self.lines)
