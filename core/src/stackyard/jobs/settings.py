"""QueueSettings: what workers and the api need to know about one queue, from its JobQueue
(or the defaults, for the `default` queue and for a JobQueue's unset fields)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..config.runtime import credential_key
from ..resources.base import duration_seconds

DEFAULT_QUEUE = "default"
EMAIL_QUEUE = "email"
"""The queue that email sends run on (a JobQueue of that name tunes it)."""
NOTIFY_QUEUE = "notify"
"""The queue notification workflow runs (and trigger fan-outs) run on."""
WEBHOOKS_QUEUE = "webhooks"
"""The queue webhook deliveries run on."""
EMAIL_PAYLOAD_BYTES = 20 * 1024 * 1024
"""The email queue's smallest payload limit: a message with 10 MiB of attachments (base64)
and its bodies."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    initial_backoff: float = 1.0
    max_backoff: float = 3600.0
    multiplier: float = 2.0
    jitter: Literal["full", "none"] = "full"


@dataclass(frozen=True)
class QueueSettings:
    name: str = DEFAULT_QUEUE
    concurrency: int = 10
    global_concurrency: int | None = None
    rate_limit: tuple[int, float] | None = None
    """At most this many jobs start per this many seconds, across all workers."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 300.0
    visibility_timeout: float = 30.0
    priority: int = 0
    keep_completed: float = 86400.0
    keep_dead: float = 14 * 86400.0
    idempotency_window: float = 86400.0
    max_payload_bytes: int = 256 * 1024
    paused: bool = False
    http_allowed_urls: tuple[str, ...] = ()
    signing_secret_key: str | None = None
    """Key of the HTTP-target signing secret in the Stack's credentials, if the queue has one."""

    @classmethod
    def from_spec(cls, name: str, spec: Any) -> QueueSettings:
        """From a JobQueueSpec (typed Any to keep this module free of the CRD models' import
        cycle; the fields are those of stackyard.resources.jobs.JobQueueSpec)."""
        retry = spec.retry
        rate = spec.rate_limit
        http = spec.http_target
        return cls(
            name=name,
            concurrency=spec.concurrency,
            global_concurrency=spec.global_concurrency,
            rate_limit=(rate.limit, duration_seconds(rate.interval)) if rate else None,
            retry=RetryPolicy(
                max_attempts=retry.max_attempts,
                initial_backoff=duration_seconds(retry.initial_backoff),
                max_backoff=duration_seconds(retry.max_backoff),
                multiplier=retry.multiplier,
                jitter=retry.jitter,
            ),
            timeout=duration_seconds(spec.timeout),
            visibility_timeout=duration_seconds(spec.visibility_timeout),
            priority=spec.priority,
            keep_completed=duration_seconds(spec.retention.completed),
            keep_dead=duration_seconds(spec.retention.dead),
            idempotency_window=duration_seconds(spec.idempotency_window),
            max_payload_bytes=spec.max_payload_bytes,
            paused=spec.paused,
            http_allowed_urls=tuple(http.allowed_urls),
            signing_secret_key=(
                credential_key("JobQueue", name, "signingSecret") if http.signing_secret_ref is not None else None
            ),
        )


EMAIL_QUEUE_DEFAULTS = QueueSettings(
    name=EMAIL_QUEUE,
    concurrency=20,
    retry=RetryPolicy(max_attempts=8, initial_backoff=5.0, max_backoff=1800.0),
    timeout=120.0,
    max_payload_bytes=EMAIL_PAYLOAD_BYTES,
)
"""Eight attempts over about an hour and a half, each allowed two minutes (every provider's
timeout in turn)."""


NOTIFY_QUEUE_DEFAULTS = QueueSettings(
    name=NOTIFY_QUEUE,
    concurrency=50,
    retry=RetryPolicy(max_attempts=10, initial_backoff=1.0, max_backoff=600.0),
    timeout=120.0,
)
"""A run spends most of its time on MongoDB, Redis and enqueuing sends: many at once; a step that
fails is retried for about half an hour."""

WEBHOOKS_QUEUE_DEFAULTS = QueueSettings(
    name=WEBHOOKS_QUEUE,
    concurrency=50,
    retry=RetryPolicy(max_attempts=30, initial_backoff=5.0, max_backoff=36_000.0, multiplier=6.0),
    timeout=90.0,
)
"""5 s, 30 s, 3 min, 18 min, 1.8 h, then every 10 h (about Svix's schedule); each delivery's
own maxAttempts (the Webhook's) stops it sooner."""


def queues_from_config(job_queues: dict[str, Any]) -> dict[str, QueueSettings]:
    """Every queue of a Stack: its JobQueues, and `default`, `email`, `notify` and `webhooks`
    unless JobQueues are named so (the email queue always takes a whole message, whatever its
    JobQueue says)."""
    queues = {name: QueueSettings.from_spec(name, spec) for name, spec in sorted(job_queues.items())}
    queues.setdefault(DEFAULT_QUEUE, QueueSettings())
    queues.setdefault(NOTIFY_QUEUE, NOTIFY_QUEUE_DEFAULTS)
    queues.setdefault(WEBHOOKS_QUEUE, WEBHOOKS_QUEUE_DEFAULTS)
    email = queues.setdefault(EMAIL_QUEUE, EMAIL_QUEUE_DEFAULTS)
    if email.max_payload_bytes < EMAIL_PAYLOAD_BYTES:
        queues[EMAIL_QUEUE] = replace(email, max_payload_bytes=EMAIL_PAYLOAD_BYTES)
    return queues
