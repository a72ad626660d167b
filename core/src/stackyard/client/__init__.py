"""The Python SDK of the stackyard api: jobs, queues and their dead letters, events, email
and the suppression list.

    from stackyard.client import Stackyard

    with Stackyard() as stackyard:  # $STACKYARD_API_URL, else http://127.0.0.1:8080
        job = stackyard.jobs.enqueue("reports.send", payload={"userId": "u_42"})
        print(stackyard.jobs.wait(job.id).state)
        sent = stackyard.emails.send(sender="hello@acme.dev", to="ana@example.com", subject="Hi", text="Hello")
        print(stackyard.emails.get(sent.id).status)

`AsyncStackyard` is the same for asyncio code. The bodies are the contract's models
(`stackyard.jobs.contract`, `stackyard.email.contract`), re-exported here.
"""

from stackyard.email.contract import (
    AttachmentIn,
    EmailAccepted,
    EmailPage,
    EmailRecord,
    EmailStatus,
    EmailSummary,
    PreviewResult,
    Suppression,
    SuppressionPage,
    SuppressionReason,
    TemplateRef,
    TimelineEvent,
)
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

from .async_client import AsyncEmails, AsyncEvents, AsyncJobs, AsyncQueues, AsyncStackyard, AsyncSuppressions
from .calls import API_TOKEN_ENV, API_URL_ENV, DEFAULT_API_URL, attachment
from .errors import (
    ApiUnreachable,
    Conflict,
    NotFound,
    RateLimited,
    RecipientSuppressed,
    StackyardError,
    Unavailable,
    Unprocessable,
    WaitTimeout,
)
from .retry import NO_RETRY, RetryPolicy
from .sync_client import Emails, Events, Jobs, Queues, Stackyard, Suppressions

__all__ = [
    "API_TOKEN_ENV",
    "API_URL_ENV",
    "DEFAULT_API_URL",
    "FINISHED_STATES",
    "NO_RETRY",
    "ApiUnreachable",
    "AsyncEmails",
    "AsyncEvents",
    "AsyncJobs",
    "AsyncQueues",
    "AsyncStackyard",
    "AsyncSuppressions",
    "AttachmentIn",
    "AttemptError",
    "Conflict",
    "DeadLetterResult",
    "EmailAccepted",
    "EmailPage",
    "EmailRecord",
    "EmailStatus",
    "EmailSummary",
    "Emails",
    "EventResult",
    "Events",
    "HttpTarget",
    "Job",
    "JobPage",
    "JobState",
    "Jobs",
    "NotFound",
    "PreviewResult",
    "QueueCounts",
    "QueueInfo",
    "Queues",
    "RateLimited",
    "RecipientSuppressed",
    "RetryPolicy",
    "Stackyard",
    "StackyardError",
    "Suppression",
    "SuppressionPage",
    "SuppressionReason",
    "Suppressions",
    "TemplateRef",
    "TimelineEvent",
    "Unavailable",
    "Unprocessable",
    "WaitTimeout",
    "attachment",
]
