"""JobQueue and Schedule: where background jobs wait and how they run, and jobs
enqueued on a clock.

The queue's name is its JobQueue's metadata.name. A queue named `default` always
exists with the defaults below; a JobQueue named `default` overrides them. These models
only declare and validate; the worker evaluates cron expressions and runs the jobs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from pydantic import AfterValidator, Field, JsonValue, StringConstraints, field_validator

from .base import (
    AGE_COLUMN,
    PAUSED_REASON,
    READY_COLUMN,
    REASON_COLUMN,
    SECRET_REASONS,
    CamelModel,
    CustomResource,
    Duration,
    KindInfo,
    ObjectName,
    Pair,
    PairedModel,
    PrinterColumn,
    ResourceStatus,
    SecretKeyRef,
    StackRef,
    member_ready,
)

DEFAULT_QUEUE = "default"
CRON_ALIASES = ("@hourly", "@daily", "@weekly", "@monthly", "@yearly")

UrlPattern = Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=2048)]
FunctionName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$", max_length=200)]

_ANY_JSON: dict[str, JsonValue] = {"x-kubernetes-preserve-unknown-fields": True}


def _duration_between(field: str, low: str, high: str) -> JsonValue:
    return {
        "rule": f"duration(self.{field}) >= duration('{low}') && duration(self.{field}) <= duration('{high}')",
        "message": f"{field} must be between {low} and {high}",
    }


# -- JobQueue ---------------------------------------------------------------------------


class JobRateLimit(CamelModel):
    limit: int = Field(ge=1, le=1_000_000_000, description="Jobs that may start per interval, across all workers.")
    interval: Duration = Field(description="The interval, e.g. 1s, 1m.")

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {"rule": "duration(self.interval) >= duration('1ms')", "message": "interval must be at least 1ms"}
            ]
        }
    }


class RetryPolicy(CamelModel):
    max_attempts: int = Field(
        default=5, ge=1, le=100, description="Attempts before a job is dead-lettered (1: never retried)."
    )
    initial_backoff: Duration = Field(default="1s", description="Wait before the first retry.")
    max_backoff: Duration = Field(default="1h", description="Longest wait between two attempts.")
    multiplier: float = Field(default=2.0, ge=1.0, le=10.0, description="Factor by which the wait grows per attempt.")
    jitter: Literal["full", "none"] = Field(
        default="full",
        description="full: each wait is random between 0 and the computed backoff (spreads retries); none: exact.",
    )

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "duration(self.maxBackoff) >= duration(self.initialBackoff)",
                    "message": "maxBackoff must be at least initialBackoff",
                }
            ]
        }
    }


class JobRetention(CamelModel):
    completed: Duration = Field(default="24h", description="How long a completed job's record and result are kept.")
    dead: Duration = Field(
        default="336h", description="How long a dead-lettered job is kept (to inspect and replay it)."
    )


class HttpTargetSettings(CamelModel):
    allowed_urls: list[UrlPattern] = Field(
        default_factory=list,
        max_length=50,
        description=(
            "URL prefixes an HTTP-target job on this queue may call, e.g. https://app.example.com/jobs/. "
            "Empty: HTTP-target jobs are refused on this queue."
        ),
    )
    signing_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="HMAC key the worker signs HTTP-target requests with; required for HTTP-target jobs.",
    )


class JobQueueSpec(CamelModel):
    stack_ref: StackRef = Field(description="The Stack whose api and worker serve this queue.")
    concurrency: int = Field(
        default=10, ge=1, le=1000, description="Jobs of this queue that one worker process runs at once."
    )
    global_concurrency: int | None = Field(
        default=None, ge=1, le=100_000, description="Cap on jobs of this queue in flight across all workers."
    )
    rate_limit: JobRateLimit | None = Field(
        default=None, description="At most limit jobs of this queue start per interval, across all workers."
    )
    retry: RetryPolicy = Field(default=RetryPolicy(), description="How failed attempts are retried.")
    timeout: Duration = Field(
        default="5m", description="Time one attempt may run before it fails (and is retried), 1s to 24h."
    )
    visibility_timeout: Duration = Field(
        default="30s",
        description=(
            "The lease a worker holds on a running job, extended by heartbeats every third of it; a crashed "
            "worker's job runs again once it expires. 1s to 1h."
        ),
    )
    priority: int = Field(
        default=0, ge=0, le=9, description="Priority of jobs enqueued without one, 0-9 (higher runs first)."
    )
    retention: JobRetention = Field(default=JobRetention(), description="How long finished jobs are kept.")
    idempotency_window: Duration = Field(
        default="24h",
        description="How long an idempotency key returns its first job instead of enqueuing another.",
    )
    max_payload_bytes: int = Field(
        default=262_144, ge=1, le=10_485_760, description="Largest payload (JSON, in bytes) an enqueue may carry."
    )
    paused: bool = Field(default=False, description="Workers take no new jobs; enqueues are still accepted.")
    http_target: HttpTargetSettings = Field(
        default=HttpTargetSettings(), description="What HTTP-target jobs on this queue may call, and how they sign."
    )

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                _duration_between("timeout", "1s", "24h"),
                _duration_between("visibilityTimeout", "1s", "1h"),
            ]
        }
    }

    def secret_refs(self) -> dict[str, SecretKeyRef]:
        """The Secret keys this queue needs, by the credential name they fill."""
        ref = self.http_target.signing_secret_ref
        return {"signingSecret": ref} if ref is not None else {}


class JobQueue(CustomResource):
    info = KindInfo(
        kind="JobQueue",
        plural="jobqueues",
        short_names=["jq"],
        description=(
            "A queue of background jobs: concurrency, rate limit, retry policy, timeouts, priority, retention "
            "and what its HTTP-target jobs may call. The queue's name is the resource's name."
        ),
        columns=[
            PrinterColumn("Concurrency", ".spec.concurrency", "integer"),
            PrinterColumn("Paused", ".spec.paused", "boolean"),
            READY_COLUMN,
            REASON_COLUMN,
            AGE_COLUMN,
        ],
        conditions=[member_ready(**SECRET_REASONS, **PAUSED_REASON)],
    )
    kind: Literal["JobQueue"] = "JobQueue"
    spec: JobQueueSpec
    status: ResourceStatus = Field(default_factory=ResourceStatus)


# -- Schedule ---------------------------------------------------------------------------


def check_cron(expression: str) -> str:
    """A standard five-field cron expression or one of CRON_ALIASES; ValueError says why not."""
    expression = expression.strip()
    if expression.startswith("@"):
        if expression not in CRON_ALIASES:
            raise ValueError(f"unknown cron alias {expression!r} (use one of {', '.join(CRON_ALIASES)})")
        return expression
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron expression {expression!r} has {len(fields)} fields, not 5 (minute hour day-of-month month "
            "day-of-week, e.g. '*/15 * * * *')"
        )
    if not croniter.is_valid(expression):
        raise ValueError(f"invalid cron expression {expression!r}")
    try:
        croniter(expression).get_next()
    except CroniterBadDateError:
        raise ValueError(f"cron expression {expression!r} never matches a date") from None
    return expression


def check_time_zone(name: str) -> str:
    """An IANA time zone name that this process knows; ValueError says why not."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Paris or UTC)") from None
    return name


CronExpression = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(check_cron)]
"""A five-field cron expression or an alias (@daily...), checked by check_cron."""
TimeZone = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$"), AfterValidator(check_time_zone)
]
"""An IANA time zone name this process knows, checked by check_time_zone."""


class ScheduledHttpTarget(CamelModel):
    url: UrlPattern = Field(description="Where to send the request; must match the queue's httpTarget.allowedUrls.")
    method: Literal["POST", "PUT", "PATCH", "DELETE", "GET"] = Field(default="POST", description="HTTP method.")
    headers: dict[str, str] = Field(
        default_factory=dict, max_length=50, description="Extra request headers (not the signature headers)."
    )
    body: Any = Field(
        default=None, description="JSON body; the job's payload when absent.", json_schema_extra=_ANY_JSON
    )


class ScheduledJob(PairedModel):
    pairs = (Pair("function", "http", "exactly one of job.function and job.http must be set"),)

    queue: ObjectName = Field(default=DEFAULT_QUEUE, description="The JobQueue the job is put on.")
    function: FunctionName | None = Field(
        default=None, description="A function registered by a worker; exactly one of function and http."
    )
    http: ScheduledHttpTarget | None = Field(
        default=None, description="An HTTP target; exactly one of function and http."
    )
    payload: Any = Field(
        default=None, description="Any JSON value, handed to the function.", json_schema_extra=_ANY_JSON
    )
    priority: int | None = Field(
        default=None, ge=0, le=9, description="0-9, higher runs first; the queue's priority when absent."
    )
    timeout: Duration | None = Field(
        default=None, description="Time one attempt may run; the queue's timeout when absent."
    )
    max_attempts: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Attempts before the job is dead-lettered; the queue's retry policy when absent.",
    )


class ScheduleSpec(PairedModel):
    pairs = (Pair("cron", "interval", "exactly one of cron and interval must be set"),)

    stack_ref: StackRef = Field(description="The Stack whose worker runs this schedule.")
    cron: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description=(
            "A standard five-field cron expression (minute hour day-of-month month day-of-week, e.g. "
            "'0 9 * * mon-fri') or @hourly, @daily, @weekly, @monthly, @yearly; exactly one of cron and interval."
        ),
    )
    interval: Duration | None = Field(
        default=None,
        description="Run every interval (at least 1s), e.g. 30s, 15m; exactly one of cron and interval.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "duration(self) >= duration('1s')", "message": "interval must be at least 1s"}
            ]
        },
    )
    time_zone: TimeZone = Field(
        default="UTC", description="IANA time zone the cron expression is read in, e.g. Europe/Paris."
    )
    job: ScheduledJob = Field(description="The job enqueued at each tick.")
    overlap_policy: Literal["allow", "skip", "replace"] = Field(
        default="skip",
        description=(
            "When the previous run's job has not finished at a tick: start another (allow), skip the tick "
            "(skip), or cancel it and start a new one (replace)."
        ),
    )
    paused: bool = Field(default=False, description="No tick enqueues a job while paused.")
    starting_deadline: Duration = Field(
        default="1m",
        description="A tick missed by more than this (every worker was down) is skipped, not run late.",
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(value)


class ScheduleStatus(ResourceStatus):
    """Ready and observedGeneration come from the operator; the run fields from the worker."""

    last_run_time: str | None = Field(
        default=None, description="When the last tick enqueued a job.", json_schema_extra={"format": "date-time"}
    )
    last_job_id: str | None = Field(
        default=None, max_length=200, description="The id of the job the last tick enqueued."
    )
    last_result: str | None = Field(
        default=None, max_length=1024, description="How the last tick ended (the job's state, or why it was skipped)."
    )
    next_run_time: str | None = Field(
        default=None, description="When the next tick is due.", json_schema_extra={"format": "date-time"}
    )


class Schedule(CustomResource):
    info = KindInfo(
        kind="Schedule",
        plural="schedules",
        short_names=["sched"],
        description="A job enqueued on a clock: a cron expression or an interval, in a time zone.",
        columns=[
            PrinterColumn("Schedule", ".spec.cron", description="Cron expression"),
            PrinterColumn("Interval", ".spec.interval"),
            PrinterColumn("Paused", ".spec.paused", "boolean"),
            PrinterColumn("Last Run", ".status.lastRunTime", "date"),
            # A string, not a date: kubectl prints a future date as <invalid>.
            PrinterColumn("Next Run", ".status.nextRunTime"),
            READY_COLUMN,
            REASON_COLUMN,
            AGE_COLUMN,
        ],
        conditions=[member_ready(**PAUSED_REASON)],
    )
    kind: Literal["Schedule"] = "Schedule"
    spec: ScheduleSpec
    status: ScheduleStatus = Field(default_factory=ScheduleStatus)
