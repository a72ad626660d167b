"""The collections and indexes of every stackyard capability, declared once.

The capabilities' `ensure_indexes()` methods keep these in place (through
`ensure_capability_indexes`, under the Stack's Database's index policy), and the worker
keeps them with a Database's own spec.indexes when the Database is the Stack's. The
collection names here are the capabilities' (`stackyard.auth.users.COLLECTION`, ...).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from ..config import RuntimeConfig
from ..problems import ServiceUnavailable
from .indexes import Drift, IndexDefinition, IndexPolicy, index, reconcile

log = logging.getLogger(__name__)

USERS = "users"
AUTH_EVENTS = "auth_events"
ORGANIZATIONS = "organizations"
MEMBERSHIPS = "memberships"
EMAIL_SUPPRESSIONS = "email_suppressions"
EMAILS = "emails"
FILES = "files"
NOTIFICATION_RUNS = "notification_runs"
NOTIFICATION_PREFERENCES = "notification_preferences"
FEED_MESSAGES = "feed_messages"
PUSH_SUBSCRIPTIONS = "push_subscriptions"
WEBHOOK_DELIVERIES = "webhook_deliveries"
EMAIL_TTL_INDEX = "expiresAt_ttl"
"""The delivery log's TTL index; made without TTL where the server has none (then the
worker's sweep deletes expired records)."""

_NEWEST = ("_id", -1)

CAPABILITY_INDEXES: tuple[IndexDefinition, ...] = (
    # auth: one account per normalised email; sign-in by a linked identity
    index(USERS, ("emailNormalized", 1), name="email_unique", unique=True),
    index(USERS, ("identityKeys", 1), name="identity"),
    # auth: a user's and a type's audit events, newest first
    index(AUTH_EVENTS, ("userId", 1), _NEWEST, name="user_events"),
    index(AUTH_EVENTS, ("type", 1), _NEWEST, name="type_events"),
    # organisations: unique slugs, one membership per user and organisation, a user's orgs
    index(ORGANIZATIONS, ("slug", 1), name="slug_unique", unique=True),
    index(MEMBERSHIPS, ("orgId", 1), ("userId", 1), name="org_user_unique", unique=True),
    index(MEMBERSHIPS, ("userId", 1), ("createdAt", 1), name="user_orgs"),
    # email: the suppression list's reason filter
    index(EMAIL_SUPPRESSIONS, ("reason", 1), ("_id", 1)),
    # email: the delivery log's filters, newest first; lookups of provider events; retention
    index(EMAILS, ("status", 1), _NEWEST),
    index(EMAILS, ("recipients", 1), _NEWEST),
    index(EMAILS, ("fromAddress", 1), _NEWEST),
    index(EMAILS, ("template", 1), _NEWEST),
    index(EMAILS, ("provider", 1), _NEWEST),
    index(EMAILS, ("tagPairs", 1), _NEWEST),
    index(EMAILS, ("providerMessageId", 1), ("provider", 1)),
    index(EMAILS, ("expiresAt", 1), name=EMAIL_TTL_INDEX, expireAfterSeconds=0),
    # storage: an owner's files in a Bucket, newest first; the sweep's leftovers (pending,
    # deleting) by age; retention by expiry (no TTL index: the sweep deletes the objects too)
    index(FILES, ("bucket", 1), ("owner", 1), _NEWEST, name="bucket_owner_files"),
    index(FILES, ("state", 1), ("updatedAt", 1), name="state_age"),
    index(FILES, ("bucket", 1), ("expiresAt", 1), name="bucket_expiry"),
    # notify: a trigger's runs, a recipient's and a workflow's runs, newest first
    index(NOTIFICATION_RUNS, ("triggerId", 1), ("_id", 1), name="trigger_runs"),
    index(NOTIFICATION_RUNS, ("recipient", 1), _NEWEST, name="recipient_runs"),
    index(NOTIFICATION_RUNS, ("workflow", 1), _NEWEST, name="workflow_runs"),
    # notify: a user's feed newest first by delivery (a delayed step delivers long after its
    # run's id was made), with the unread and unseen counts
    index(FEED_MESSAGES, ("recipient", 1), ("archivedAt", 1), ("createdAt", -1), _NEWEST, name="recipient_feed"),
    index(FEED_MESSAGES, ("recipient", 1), ("readAt", 1), ("archivedAt", 1), name="recipient_unread"),
    index(FEED_MESSAGES, ("recipient", 1), ("seenAt", 1), ("archivedAt", 1), name="recipient_unseen"),
    # notify: a user's web push subscriptions
    index(PUSH_SUBSCRIPTIONS, ("userId", 1), name="user_subscriptions"),
    # webhooks: an endpoint's deliveries, newest first, by event type and status
    index(WEBHOOK_DELIVERIES, ("webhook", 1), _NEWEST, name="webhook_deliveries"),
    index(WEBHOOK_DELIVERIES, ("webhook", 1), ("status", 1), _NEWEST, name="webhook_status"),
    index(WEBHOOK_DELIVERIES, ("eventType", 1), _NEWEST, name="event_deliveries"),
)


class IndexesNotReady(ServiceUnavailable):
    """A capability's index could not be created (e.g. a unique index over duplicates)."""

    slug, title = "indexes-not-ready", "Database indexes not ready"


def capability_indexes(collections: Iterable[str] | None = None) -> list[IndexDefinition]:
    """The capabilities' indexes, all or those of these collections."""
    if collections is None:
        return list(CAPABILITY_INDEXES)
    wanted = set(collections)
    unknown = wanted - {i.collection for i in CAPABILITY_INDEXES}
    if unknown:
        raise ValueError(f"no capability indexes on {sorted(unknown)}")
    return [i for i in CAPABILITY_INDEXES if i.collection in wanted]


def stack_index_policy(config: RuntimeConfig) -> IndexPolicy:
    """The index policy of the Stack's Database (enforce without one)."""
    database = config.stack_database
    return database.index_policy if database is not None else "enforce"


_ENSURED: set[tuple[int, str, tuple[str, ...]]] = set()
"""(client, database, collections) whose indexes this process has ensured."""


async def ensure_capability_indexes_once(
    db: AsyncDatabase[Any], collections: Iterable[str], policy: IndexPolicy = "enforce"
) -> None:
    """`ensure_capability_indexes` the first time this process meets these collections in this
    database (of this client); later calls cost a set lookup, so request paths may call it."""
    key = (id(db.client), db.name, tuple(sorted(collections)))
    if key not in _ENSURED:
        await ensure_capability_indexes(db, key[2], policy)
        _ENSURED.add(key)


async def ensure_capability_indexes(
    db: AsyncDatabase[Any], collections: Iterable[str], policy: IndexPolicy = "enforce"
) -> Drift:
    """Keep the indexes of these collections as declared (under "report", only compare);
    IndexesNotReady when one cannot be made under "enforce"."""
    drift = await reconcile(db, capability_indexes(collections), policy)
    if policy == "enforce" and drift.errors:
        raise IndexesNotReady(f"database {db.name}: {drift.message()}")
    if not drift.in_sync:
        log.warning("database %s: capability indexes out of step (policy %s): %s", db.name, policy, drift.message())
    return drift
