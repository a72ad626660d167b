"""AuthContext: what one auth request needs, made from the config in force."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pymongo.asynchronous.database import AsyncDatabase

from ..clients import AnyRedis
from ..resources.oidc import OIDCClientSpec
from ..resources.stack import AuthSettings
from .attempts import AttemptLimits
from .audit import AuditLog
from .keys import KeySet
from .mail import AuthMailer
from .onetime import OneTimeTokens
from .passwords import PasswordHasher
from .sessions import LivenessCache, Sessions
from .users import UserStore

if TYPE_CHECKING:
    from ..notify.events import EventSink


def utc_now() -> datetime:
    return datetime.now(UTC)


async def no_orgs(user_id: str) -> dict[str, str]:
    return {}


@dataclass
class AuthContext:
    redis: AnyRedis
    db: AsyncDatabase[Any]
    settings: AuthSettings
    keys: KeySet
    issuer: str
    audience: str
    scope: str
    hasher: PasswordHasher
    encryption_key: bytes | None = None
    mailer: AuthMailer | None = None
    identity_providers: dict[str, Any] = field(default_factory=dict)
    admin_api_key: str | None = None
    clock: Callable[[], datetime] = utc_now
    liveness: LivenessCache = field(default_factory=LivenessCache)
    """Sessions seen alive lately; one per process (the api keeps it across requests)."""
    org_claims: Callable[[str], Awaitable[dict[str, str]]] = no_orgs
    """The `orgs` claim of a user's tokens: organisation id -> role."""
    events: EventSink | None = None
    """Where user.created, user.updated and user.deleted go (platform events; none: not emitted)."""
    oidc_clients: dict[str, OIDCClientSpec] = field(default_factory=dict)
    """The OIDCClients of the config in force, by client id (their name)."""
    oidc_client_secrets: dict[str, list[str]] = field(default_factory=dict)
    """Client id -> the client secrets accepted now: the current one, then the previous one
    during a rotation's grace period. Public clients have none."""

    def __post_init__(self) -> None:
        self.users = UserStore(self.db, self.events)
        self.sessions = Sessions(self)
        self.audit = AuditLog(self)
        self.attempts = AttemptLimits(self)
        self.onetime = OneTimeTokens(self)

    def rkey(self, *parts: str) -> str:
        """A Redis key of this Stack's auth state; one hash tag per Stack keeps a session's keys
        (and its Lua scripts) on one Redis Cluster slot."""
        return f"sy:auth:{{{self.scope}}}:" + ":".join(parts)
