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

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .context import JobContext
    from .contract import EnqueueRequest, HttpTarget, Job, JobState, QueueInfo
    from .errors import NonRetryable, RetryAfter
    from .registry import FunctionRegistry, load_registries
    from .settings import DEFAULT_QUEUE, QueueSettings, RetryPolicy, queues_from_config
    from .store import JobClient
    from .worker import Worker

# Loaded on first use, so that `stackyard.jobs.contract` (all the SDK and CLI need) does not
# pull in Redis, MongoDB and Kubernetes clients.
_HOME = {
    "JobContext": "context",
    "EnqueueRequest": "contract",
    "HttpTarget": "contract",
    "Job": "contract",
    "JobState": "contract",
    "QueueInfo": "contract",
    "NonRetryable": "errors",
    "RetryAfter": "errors",
    "FunctionRegistry": "registry",
    "load_registries": "registry",
    "DEFAULT_QUEUE": "settings",
    "QueueSettings": "settings",
    "RetryPolicy": "settings",
    "queues_from_config": "settings",
    "JobClient": "store",
    "Worker": "worker",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value
    return value


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
