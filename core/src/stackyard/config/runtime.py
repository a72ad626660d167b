"""The RuntimeConfig: everything the api and worker need from the custom resources
of one Stack, rendered by the operator into a ConfigMap (never a secret value: those
go to the Stack's credentials Secret, under the keys that `credential_key` names)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import Field

from ..resources.auth import IdentityProviderSpec
from ..resources.base import CamelModel
from ..resources.bucket import BucketSpec
from ..resources.database import DatabaseSpec
from ..resources.email import EmailProviderSpec, EmailTemplateSpec
from ..resources.jobs import JobQueueSpec, ScheduleSpec
from ..resources.notify import NotificationWorkflowSpec, WebhookSpec
from ..resources.oidc import OIDCClientSpec
from ..resources.ratelimit import RateLimitPolicySpec
from ..resources.search import SearchIndexSpec
from ..resources.stack import StackSpec

CONFIG_KEY = "config.json"
HASH_ANNOTATION = "stackyard.dev/config-hash"
CREDENTIALS_REVISION_ANNOTATION = "stackyard.dev/credentials-revision"

REDIS_URL = "stack.redis.url"
MONGODB_URI = "stack.mongodb.uri"
AUTH_SIGNING_KEYS = "stack.auth.signingKeys"
"""The access-token signing key set (JSON of `stackyard.auth.keys.KeySet`), made and rotated by the operator."""
AUTH_ENCRYPTION_KEY = "stack.auth.encryptionKey"
"""32 random bytes, base64, made once by the operator: encrypts TOTP secrets at rest."""
AUTH_ADMIN_API_KEY = "stack.auth.adminApiKey"
"""The admin API key, from the Stack's spec.auth.adminApiKeySecretRef."""
NOTIFY_VAPID_PRIVATE_KEY = "stack.notify.vapidPrivateKey"
"""The web push VAPID key pair's private key (PEM, P-256), made once by the operator."""
NOTIFY_VAPID_PUBLIC_KEY = "stack.notify.vapidPublicKey"
"""Its public key: the uncompressed point, base64url (what browsers take as applicationServerKey)."""
SEARCH_API_KEY = "stack.search.apiKey"
"""The search-only API key, from the Stack's spec.search.searchApiKeySecretRef."""
TELEMETRY_SENTRY_DSN = "stack.telemetry.sentryDsn"
"""The Sentry DSN, from the Stack's spec.telemetry.sentry.dsnSecretRef."""


def telemetry_header_key(name: str) -> str:
    """Credentials key of one OTLP export header (spec.telemetry.headers[].valueSecretRef)."""
    return f"stack.telemetry.header.{name.lower()}"


def credential_key(kind: str, name: str, credential: str) -> str:
    """Key in the credentials Secret for one credential of one resource,
    e.g. credential_key("EmailProvider", "resend", "apiKey") == "emailprovider.resend.apiKey"."""
    return f"{kind.lower()}.{name}.{credential}"


class RuntimeConfig(CamelModel):
    stack: str = Field(description="Name of the Stack.")
    namespace: str = Field(description="Namespace of the Stack.")
    generation: int = Field(ge=0, description="metadata.generation of the Stack rendered.")
    credentials_revision: int = Field(
        default=0, ge=0, description="Revision of the credentials Secret this config goes with."
    )
    spec: StackSpec
    email_providers: dict[str, EmailProviderSpec] = Field(default_factory=dict)
    email_templates: dict[str, EmailTemplateSpec] = Field(default_factory=dict)
    rate_limit_policies: dict[str, RateLimitPolicySpec] = Field(default_factory=dict)
    job_queues: dict[str, JobQueueSpec] = Field(
        default_factory=dict, description="JobQueues by name; a queue named default exists even when absent."
    )
    schedules: dict[str, ScheduleSpec] = Field(default_factory=dict)
    identity_providers: dict[str, IdentityProviderSpec] = Field(default_factory=dict)
    databases: dict[str, DatabaseSpec] = Field(
        default_factory=dict, description="Databases by name; the Stack's spec.mongodb.databaseRef may name one."
    )
    buckets: dict[str, BucketSpec] = Field(default_factory=dict, description="Buckets (file stores) by name.")
    notification_workflows: dict[str, NotificationWorkflowSpec] = Field(
        default_factory=dict, description="NotificationWorkflows by name."
    )
    webhooks: dict[str, WebhookSpec] = Field(default_factory=dict, description="Webhooks by name.")
    search_indexes: dict[str, SearchIndexSpec] = Field(
        default_factory=dict, description="SearchIndexes by name (the name is the index's uid in the API)."
    )
    oidc_clients: dict[str, OIDCClientSpec] = Field(
        default_factory=dict, description="OIDCClients by name (the name is the client id)."
    )

    @property
    def stack_database(self) -> DatabaseSpec | None:
        """The Database the Stack's own collections live in (None: spec.mongodb.uriSecretRef)."""
        ref = self.spec.mongodb.database_ref
        return self.databases.get(ref.name) if ref is not None else None

    @property
    def stack_database_name(self) -> str:
        """Name of the MongoDB database holding stackyard's own collections."""
        database = self.stack_database
        return database.connection.database if database is not None else self.spec.mongodb.database

    def canonical_json(self) -> str:
        """Deterministic JSON: sorted keys, no whitespace; what the ConfigMap holds."""
        return canonical_json(self.model_dump(mode="json", by_alias=True))

    @property
    def hash(self) -> str:
        return content_hash(self.canonical_json())


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
