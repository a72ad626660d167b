"""The wire contract of /v1/jobs, /v1/queues and /v1/events: request and response bodies,
shared by the api's routers, the Python SDK and the CLI so that they cannot drift."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

JobState = Literal["scheduled", "queued", "active", "completed", "cancelled", "dead"]
"""scheduled: waits for its run-at time (a delay, a retry's backoff, a step's sleep or wait);
queued: ready to run; active: a worker holds its lease; completed, cancelled, dead: finished
(dead: every attempt failed, or a non-retryable error; it sits in the queue's dead letters)."""

FINISHED_STATES: frozenset[str] = frozenset({"completed", "cancelled", "dead"})

QueueName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
FunctionName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$", max_length=200)]
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class HttpTarget(_Wire):
    """An HTTP-target job: the worker sends this request, signed, to the user's service."""

    url: AnyHttpUrl = Field(description="Where to send the request; must match the queue's httpTarget.allowedUrls.")
    method: Literal["POST", "PUT", "PATCH", "DELETE", "GET"] = Field(default="POST", description="HTTP method.")
    headers: dict[str, str] = Field(
        default_factory=dict, max_length=50, description="Extra request headers (not the signature headers)."
    )
    body: Any = Field(default=None, description="JSON body; the job's payload when absent.")


class EnqueueRequest(_Wire):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"function": "reports.send", "payload": {"userId": "u_42"}, "delay": 30},
                {
                    "queue": "webhooks",
                    "http": {"url": "https://app.example.com/jobs/sync", "body": {"account": 7}},
                    "idempotencyKey": "sync-7-2026-11-25",
                },
            ]
        }
    )

    queue: QueueName = Field(default="default", description="The JobQueue to put the job on.")
    function: FunctionName | None = Field(
        default=None, description="A function registered by a worker; exactly one of function and http."
    )
    http: HttpTarget | None = Field(default=None, description="An HTTP target; exactly one of function and http.")
    payload: Any = Field(default=None, description="Any JSON value, handed to the function.")
    priority: int | None = Field(
        default=None, ge=0, le=9, description="0-9, higher runs first; the queue's priority when absent."
    )
    delay: float | None = Field(default=None, ge=0, le=365 * 86400, description="Seconds to wait before it runs.")
    run_at: datetime | None = Field(default=None, description="When it may run (RFC 3339); not with delay.")
    timeout: float | None = Field(
        default=None, gt=0, le=86400, description="Seconds one attempt may run; the queue's timeout when absent."
    )
    max_attempts: int | None = Field(
        default=None, ge=1, le=100, description="Attempts before it is dead-lettered; the queue's retry policy else."
    )
    idempotency_key: IdempotencyKey | None = Field(
        default=None,
        description=(
            "The same key on the same queue within the queue's idempotency window returns the first job "
            "and enqueues nothing (the Idempotency-Key header does the same)."
        ),
    )

    @model_validator(mode="after")
    def _one_target(self) -> EnqueueRequest:
        if (self.function is None) == (self.http is None):
            raise ValueError("give exactly one of function and http")
        if self.delay is not None and self.run_at is not None:
            raise ValueError("give delay or runAt, not both")
        return self


class AttemptError(_Wire):
    attempt: int = Field(description="Which attempt failed (1-based).")
    at: datetime = Field(description="When it failed.")
    error: str = Field(description="What went wrong: the exception type and message, or the HTTP answer.")
    worker: str | None = Field(default=None, description="The worker that ran the attempt.")


class Job(_Wire):
    id: str = Field(description="The job's id: `<queue>.<26 characters>`, sortable by creation time.")
    queue: str
    function: str | None = None
    http: HttpTarget | None = None
    payload: Any = None
    state: JobState
    priority: int
    attempts: int = Field(description="Attempts started so far.")
    max_attempts: int
    timeout: float
    created_at: datetime
    run_at: datetime | None = Field(default=None, description="When it may run next (scheduled jobs).")
    started_at: datetime | None = Field(default=None, description="When the latest attempt started.")
    finished_at: datetime | None = None
    last_error: str | None = None
    errors: list[AttemptError] = Field(default_factory=list, description="The latest attempts' errors, oldest first.")
    result: Any = Field(default=None, description="What the function returned (completed jobs).")
    idempotency_key: str | None = None
    cancel_requested: bool = Field(default=False, description="A cancel reached the job while it ran.")
    steps: dict[str, Any] = Field(default_factory=dict, description="Step functions: the results of completed steps.")


class JobPage(_Wire):
    items: list[Job]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page; null at the end.")


class DeadLetterFilter(_Wire):
    """Which dead letters to replay or purge: the ids given, or those of a function, or all."""

    ids: list[str] | None = Field(default=None, max_length=10_000)
    function: FunctionName | None = None
    all: bool = False

    @model_validator(mode="after")
    def _one_selector(self) -> DeadLetterFilter:
        if sum((self.ids is not None, self.function is not None, self.all)) != 1:
            raise ValueError("give exactly one of ids, function and all: true")
        return self


class DeadLetterResult(_Wire):
    count: int = Field(description="How many dead letters were replayed or purged.")
    ids: list[str] = Field(default_factory=list)


class QueueCounts(_Wire):
    queued: int = Field(description="Ready to run (the depth).")
    scheduled: int = Field(description="Delayed, backing off before a retry, or suspended in a step.")
    active: int = Field(description="In flight: held by a worker's lease.")
    dead: int = Field(description="In the dead letters.")
    enqueued: int = Field(description="Total enqueued (counters run since the queue was first used).")
    completed: int
    failed: int = Field(description="Attempts that failed (retried or not).")
    retried: int
    reclaimed: int = Field(description="Attempts whose worker stopped heartbeating; run again.")
    cancelled: int
    mean_wait_ms: float | None = Field(default=None, description="Mean time from ready to started.")
    mean_run_ms: float | None = Field(default=None, description="Mean run time of completed attempts.")


class QueueInfo(_Wire):
    name: str
    paused: bool
    concurrency: int
    global_concurrency: int | None
    counts: QueueCounts


class QueueList(_Wire):
    items: list[QueueInfo]


class EventRequest(_Wire):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="The event's name, as step functions wait for it (`ctx.wait_for_event`)."
    )
    data: Any = Field(default=None, description="Any JSON value; the waiting step returns it.")


class EventResult(_Wire):
    delivered: int = Field(description="How many waiting steps the event resumed.")
