"""The Python SDK of the stackyard api: jobs, queues and their dead letters, events.

    from stackyard.client import Stackyard

    with Stackyard() as stackyard:  # $STACKYARD_API_URL, else http://127.0.0.1:8080
        job = stackyard.jobs.enqueue("reports.send", payload={"userId": "u_42"})
        print(stackyard.jobs.wait(job.id).state)

`AsyncStackyard` is the same for asyncio code. The bodies are the contract's models
(`stackyard.jobs.contract`), re-exported here.
"""

from stackyard.jobs.contract import (
    FINISHED_STATES,
    AttemptError,
    DeadLetterResult,
    EventResult,
    HttpTarget,
    Job,
    JobPage,
    JobState,
    QueueCounts,
    QueueInfo,
)

from .async_client import AsyncEvents, AsyncJobs, AsyncQueues, AsyncStackyard
from .calls import API_TOKEN_ENV, API_URL_ENV, DEFAULT_API_URL
from .errors import (
    ApiUnreachable,
    Conflict,
    NotFound,
    RateLimited,
    StackyardError,
    Unavailable,
    Unprocessable,
    WaitTimeout,
)
from .retry import NO_RETRY, RetryPolicy
from .sync_client import Events, Jobs, Queues, Stackyard

__all__ = [
    "API_TOKEN_ENV",
    "API_URL_ENV",
    "DEFAULT_API_URL",
    "FINISHED_STATES",
    "NO_RETRY",
    "ApiUnreachable",
    "AsyncEvents",
    "AsyncJobs",
    "AsyncQueues",
    "AsyncStackyard",
    "AttemptError",
    "Conflict",
    "DeadLetterResult",
    "EventResult",
    "Events",
    "HttpTarget",
    "Job",
    "JobPage",
    "JobState",
    "Jobs",
    "NotFound",
    "QueueCounts",
    "QueueInfo",
    "Queues",
    "RateLimited",
    "RetryPolicy",
    "Stackyard",
    "StackyardError",
    "Unavailable",
    "Unprocessable",
    "WaitTimeout",
]
