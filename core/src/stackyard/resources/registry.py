"""Every kind of the stackyard.dev API, in the order they are documented."""

from __future__ import annotations

from .auth import IdentityProvider
from .base import CustomResource
from .bucket import Bucket
from .database import Database
from .email import EmailProvider, EmailTemplate
from .jobs import JobQueue, Schedule
from .notify import NotificationWorkflow, Webhook
from .oidc import OIDCClient
from .ratelimit import RateLimitPolicy
from .search import SearchIndex
from .stack import Stack

KINDS: list[type[CustomResource]] = [
    Stack,
    EmailProvider,
    EmailTemplate,
    RateLimitPolicy,
    JobQueue,
    Schedule,
    IdentityProvider,
    Database,
    Bucket,
    NotificationWorkflow,
    Webhook,
    SearchIndex,
    OIDCClient,
]
BY_KIND: dict[str, type[CustomResource]] = {k.info.kind: k for k in KINDS}
