"""Job metrics through the OpenTelemetry API, named after its messaging semantic conventions
where they have a name (`messaging.process.duration`, `messaging.client.consumed.messages`)
and `stackyard.jobs.*` where they do not. Without an SDK configured (issue: telemetry) the
instruments do nothing and cost next to nothing.

Attributes: `messaging.system` = stackyard, `messaging.destination.name` = the queue,
`messaging.operation.name` = process, `stackyard.job.function`, `stackyard.job.outcome`
(completed, retried, dead, lost, cancelled, suspended, returned) and `error.type` on failures.

One `JobMetrics` per process (`job_metrics()`): the SDK keeps the first instrument made under
a name, so a second instance's queue-size gauge would never be observed.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from ..telemetry import SECONDS_BUCKETS
from .contract import QueueCounts

SYSTEM = {"messaging.system": "stackyard"}
GAUGED_STATES = ("queued", "scheduled", "active", "dead")


class JobMetrics:
    def __init__(self, meter: Meter | None = None) -> None:
        meter = meter or metrics.get_meter("stackyard.jobs")
        self.process_duration = meter.create_histogram(
            "messaging.process.duration",
            unit="s",
            description="Time a job attempt ran, by queue, function and outcome.",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )
        self.consumed = meter.create_counter(
            "messaging.client.consumed.messages", unit="{message}", description="Jobs a worker took from a queue."
        )
        self.outcomes = meter.create_counter(
            "stackyard.jobs.outcomes", unit="{job}", description="Finished attempts by outcome."
        )
        self._sizes: dict[str, QueueCounts] = {}
        meter.create_observable_gauge(
            "stackyard.jobs.queue.size",
            callbacks=[self._observe_sizes],
            unit="{job}",
            description="Jobs in each state of each queue (queued is the depth).",
        )

    @staticmethod
    def _attributes(queue: str, **extra: Any) -> dict[str, Any]:
        return SYSTEM | {"messaging.destination.name": queue} | {k: v for k, v in extra.items() if v is not None}

    def taken(self, queue: str, count: int) -> None:
        if count:
            self.consumed.add(count, self._attributes(queue, **{"messaging.operation.name": "receive"}))

    def finished(self, queue: str, function: str, outcome: str, seconds: float, error: str | None = None) -> None:
        attributes = self._attributes(
            queue,
            **{
                "messaging.operation.name": "process",
                "stackyard.job.function": function,
                "stackyard.job.outcome": outcome,
                "error.type": error,
            },
        )
        self.process_duration.record(seconds, attributes)
        self.outcomes.add(1, attributes)

    def sizes(self, queue: str, counts: QueueCounts) -> None:
        self._sizes[queue] = counts

    def forget(self, queue: str) -> None:
        """Stop reporting the sizes of a queue this process no longer consumes."""
        self._sizes.pop(queue, None)

    def _observe_sizes(self, options: CallbackOptions) -> Iterable[Observation]:
        for queue, counts in list(self._sizes.items()):
            for state in GAUGED_STATES:
                yield Observation(getattr(counts, state), self._attributes(queue, **{"stackyard.job.state": state}))


@cache
def job_metrics() -> JobMetrics:
    """The process's JobMetrics."""
    return JobMetrics()
