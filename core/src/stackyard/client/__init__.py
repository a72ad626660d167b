"""The Python SDK of the stackyard api: jobs, queues and their dead letters, events, email,
the suppression list, auth (users' sign-up, login, tokens and sessions; the admin API), and
the Stack's Databases (server, pool, migration state and history), files (streamed
uploads, signed URLs with image transforms, streamed downloads), notifications (triggers,
runs, preferences), the user's in-app feed and web push subscriptions, Webhooks with their deliveries, search
(SearchIndexes: search, multi-search, documents written as tasks, rebuilds), rate limits
(a decision under a RateLimitPolicy, the policies in force), and the api itself (the
configuration it applies, its probes).

    from stackyard.client import Stackyard

    with Stackyard() as stackyard:  # $STACKYARD_API_URL, else http://127.0.0.1:8080
        job = stackyard.jobs.enqueue("reports.send", payload={"userId": "u_42"})
        print(stackyard.jobs.wait(job.id).state)
        sent = stackyard.emails.send(sender="hello@acme.dev", to="ana@example.com", subject="Hi", text="Hello")
        print(stackyard.emails.get(sent.id).status)

`AsyncStackyard` is the same for asyncio code. The bodies are the contract's models
(`stackyard.jobs.contract`, `stackyard.email.contract`, `stackyard.auth.contract`,
`stackyard.notify.contract`, ...), re-exported here.
"""

from stackyard.auth.contract import (
    Accepted,
    JsonWebKey,
    JsonWebKeySet,
    Me,
    MfaRequired,
    OpenIdConfiguration,
    Profile,
    Session,
    SessionView,
    User,
)
from stackyard.auth.contract_admin import AuditEvent, AuditPage, Deleted, MfaState, OrgMembership, UserDetail, UserPage
from stackyard.auth.contract_mfa import Passkey, TotpEnrollment
from stackyard.auth.contract_oauth import IdentityView, ProviderInfo
from stackyard.auth.contract_orgs import Member, Organization
from stackyard.db.contract import DatabaseView, MigrationRecord, MigrationView, PoolView, ServerView
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
from stackyard.notify.contract import (
    Preferences,
    PreferencesUpdate,
    Recipient,
    RunPage,
    RunView,
    StepOutcome,
    TriggerAccepted,
)
from stackyard.notify.feed_contract import BulkResult, FeedCounts, FeedMessage, FeedPage
from stackyard.notify.push_contract import PushSubscriptionIn, PushSubscriptionView
from stackyard.notify.webhook_contract import (
    DeliveryAttempt,
    DeliveryPage,
    DeliverySummary,
    WebhookDelivery,
    WebhookView,
)
from stackyard.ratelimit.contract import CheckResult, PolicyCountsInfo, PolicyInfo, PolicyList
from stackyard.runtime_contract import AppliedConfigInfo, Health
from stackyard.search.contract import (
    DocumentPage,
    IndexStats,
    MultiSearchQuery,
    SearchRequest,
    SearchResponse,
    Task,
    TaskPage,
    TaskSummary,
)
from stackyard.storage.contract import DirectUploadView, FileList, FileView, SignedUrlView

from .admin_async import AsyncAdminEvents, AsyncAdminUsers, AsyncAuthAdmin
from .admin_calls import AdminKeyMissing
from .admin_sync import AdminEvents, AdminUsers, AuthAdmin
from .async_client import AsyncEmails, AsyncEvents, AsyncJobs, AsyncQueues, AsyncStackyard, AsyncSuppressions
from .auth_async import AsyncAccount, AsyncAuth
from .auth_sync import Account, Auth
from .calls import ADMIN_KEY_ENV, API_TOKEN_ENV, API_URL_ENV, DEFAULT_API_URL, attachment
from .config_async import AsyncConfig, AsyncProbes
from .config_sync import Config, Probes
from .databases_async import AsyncDatabases
from .databases_sync import Databases
from .errors import (
    AccountDisabled,
    AdminKeyRefused,
    ApiUnreachable,
    AuthNotConfigured,
    BadRequest,
    Conflict,
    EmailNotVerified,
    EmailTaken,
    Forbidden,
    IndexNotFound,
    InvalidCredentials,
    InvalidDocument,
    InvalidEmail,
    InvalidOAuthState,
    InvalidSearch,
    InvalidToken,
    LastLoginMethod,
    LastOwner,
    MigrationFailed,
    MigrationWaitTimeout,
    NotFound,
    RateLimited,
    RecipientSuppressed,
    RefreshTokenReused,
    SearchKeyRefused,
    SearchUnavailable,
    SignupDisabled,
    StackyardError,
    TooManyAttempts,
    Unauthorized,
    Unavailable,
    Unprocessable,
    WaitTimeout,
    WeakPassword,
)
from .file_calls import Progress
from .files_async import AsyncFiles
from .files_sync import Files
from .notify_async import AsyncFeed, AsyncNotify, AsyncWebhooks
from .notify_calls import RunWaitTimeout
from .notify_sync import Feed, Notify, Webhooks
from .orgs_async import AsyncOrgs
from .orgs_sync import Orgs
from .push_async import AsyncPush
from .push_sync import Push
from .ratelimit_async import AsyncRateLimit
from .ratelimit_sync import RateLimit
from .retry import NO_RETRY, RetryPolicy
from .search_async import AsyncSearch
from .search_calls import SEARCH_KEY_ENV, SearchKeyMissing, TaskWaitTimeout
from .search_sync import Search
from .sync_client import Emails, Events, Jobs, Queues, Stackyard, Suppressions

__all__ = [
    "ADMIN_KEY_ENV",
    "API_TOKEN_ENV",
    "API_URL_ENV",
    "DEFAULT_API_URL",
    "FINISHED_STATES",
    "NO_RETRY",
    "SEARCH_KEY_ENV",
    "Accepted",
    "Account",
    "AccountDisabled",
    "AdminEvents",
    "AdminKeyMissing",
    "AdminKeyRefused",
    "AdminUsers",
    "ApiUnreachable",
    "AppliedConfigInfo",
    "AsyncAccount",
    "AsyncAdminEvents",
    "AsyncAdminUsers",
    "AsyncAuth",
    "AsyncAuthAdmin",
    "AsyncConfig",
    "AsyncDatabases",
    "AsyncEmails",
    "AsyncEvents",
    "AsyncFeed",
    "AsyncFiles",
    "AsyncJobs",
    "AsyncNotify",
    "AsyncOrgs",
    "AsyncProbes",
    "AsyncPush",
    "AsyncQueues",
    "AsyncRateLimit",
    "AsyncSearch",
    "AsyncStackyard",
    "AsyncSuppressions",
    "AsyncWebhooks",
    "AttachmentIn",
    "AttemptError",
    "AuditEvent",
    "AuditPage",
    "Auth",
    "AuthAdmin",
    "AuthNotConfigured",
    "BadRequest",
    "BulkResult",
    "CheckResult",
    "Config",
    "Conflict",
    "DatabaseView",
    "Databases",
    "DeadLetterResult",
    "Deleted",
    "DeliveryAttempt",
    "DeliveryPage",
    "DeliverySummary",
    "DirectUploadView",
    "DocumentPage",
    "EmailAccepted",
    "EmailNotVerified",
    "EmailPage",
    "EmailRecord",
    "EmailStatus",
    "EmailSummary",
    "EmailTaken",
    "Emails",
    "EventResult",
    "Events",
    "Feed",
    "FeedCounts",
    "FeedMessage",
    "FeedPage",
    "FileList",
    "FileView",
    "Files",
    "Forbidden",
    "Health",
    "HttpTarget",
    "IdentityView",
    "IndexNotFound",
    "IndexStats",
    "InvalidCredentials",
    "InvalidDocument",
    "InvalidEmail",
    "InvalidOAuthState",
    "InvalidSearch",
    "InvalidToken",
    "Job",
    "JobPage",
    "JobState",
    "Jobs",
    "JsonWebKey",
    "JsonWebKeySet",
    "LastLoginMethod",
    "LastOwner",
    "Me",
    "Member",
    "MfaRequired",
    "MfaState",
    "MigrationFailed",
    "MigrationRecord",
    "MigrationView",
    "MigrationWaitTimeout",
    "MultiSearchQuery",
    "NotFound",
    "Notify",
    "OpenIdConfiguration",
    "OrgMembership",
    "Organization",
    "Orgs",
    "Passkey",
    "PolicyCountsInfo",
    "PolicyInfo",
    "PolicyList",
    "PoolView",
    "Preferences",
    "PreferencesUpdate",
    "PreviewResult",
    "Probes",
    "Profile",
    "Progress",
    "ProviderInfo",
    "Push",
    "PushSubscriptionIn",
    "PushSubscriptionView",
    "QueueCounts",
    "QueueInfo",
    "Queues",
    "RateLimit",
    "RateLimited",
    "Recipient",
    "RecipientSuppressed",
    "RefreshTokenReused",
    "RetryPolicy",
    "RunPage",
    "RunView",
    "RunWaitTimeout",
    "Search",
    "SearchKeyMissing",
    "SearchKeyRefused",
    "SearchRequest",
    "SearchResponse",
    "SearchUnavailable",
    "ServerView",
    "Session",
    "SessionView",
    "SignedUrlView",
    "SignupDisabled",
    "Stackyard",
    "StackyardError",
    "StepOutcome",
    "Suppression",
    "SuppressionPage",
    "SuppressionReason",
    "Suppressions",
    "Task",
    "TaskPage",
    "TaskSummary",
    "TaskWaitTimeout",
    "TemplateRef",
    "TimelineEvent",
    "TooManyAttempts",
    "TotpEnrollment",
    "TriggerAccepted",
    "Unauthorized",
    "Unavailable",
    "Unprocessable",
    "User",
    "UserDetail",
    "UserPage",
    "WaitTimeout",
    "WeakPassword",
    "WebhookDelivery",
    "WebhookView",
    "Webhooks",
    "attachment",
]
