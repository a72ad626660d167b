"""Durable jobs: an at-least-once queue on Redis with leases, retries, dead letters,
priorities, delays, idempotency keys, rate and concurrency limits, step functions, HTTP
targets and schedules.

- `contract`: the wire models of /v1/jobs, /v1/queues and /v1/events
- `settings`: `QueueSettings` from a JobQueue; `backoff`: retry decisions (pure)
- `scripts`: every state change as one Lua script; `store`: `JobClient`, all Redis access
- `registry`: `FunctionRegistry`, the functions a worker runs; `context`: `JobContext`, steps
- `worker`: `Worker`; `scheduler`: `Scheduler` for Schedule resources
- `http_target`: HTTP-target jobs, signed as Standard Webhooks

See docs/jobs.md.
"""

from .context import JobContext
from .contract import EnqueueRequest, HttpTarget, Job, JobState, QueueInfo
from .errors import NonRetryable, RetryAfter
from .registry import FunctionRegistry, load_registries
from .settings import DEFAULT_QUEUE, QueueSettings, RetryPolicy, queues_from_config
from .store import JobClient
from .worker import Worker

__all__ = [
    "DEFAULT_QUEUE",
    "EnqueueRequest",
    "FunctionRegistry",
    "HttpTarget",
    "Job",
    "JobClient",
    "JobContext",
    "JobState",
    "NonRetryable",
    "QueueInfo",
    "QueueSettings",
    "RetryAfter",
    "RetryPolicy",
    "Worker",
    "load_registries",
    "queues_from_config",
]
