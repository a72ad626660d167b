"""The wire contract of what every stackyard process says about itself: GET /v1/config (the
configuration it applies) and the probes /healthz and /readyz. Shared by the api's routers
and the SDK (`stackyard.client`) so that the two cannot drift."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .resources.base import CamelModel


class AppliedConfigInfo(CamelModel):
    """GET /v1/config: which configuration this process applies (hash and generation, no secret)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "hash": "3f9a0c1d2b4e5f60",
                    "stack": "demo",
                    "namespace": "default",
                    "generation": 3,
                    "credentialsRevision": 2,
                    "appliedAt": 1764050000.0,
                    "capabilities": {"auth": True, "email": True, "jobs": True, "rateLimit": True},
                    "emailProviders": ["resend", "smtp"],
                    "emailTemplates": ["welcome"],
                    "rateLimitPolicies": ["login"],
                    "jobQueues": ["default", "reports"],
                    "schedules": ["nightly-report"],
                    "identityProviders": ["google"],
                    "databases": ["main"],
                    "buckets": ["default", "media"],
                    "notificationWorkflows": ["comment-created"],
                    "webhooks": ["crm"],
                    "searchIndexes": ["products"],
                    "oidcClients": ["demo-spa", "demo-web"],
                    "lastError": None,
                }
            ]
        },
    )

    hash: str = Field(description="Content hash of the RuntimeConfig in force.")
    stack: str
    namespace: str
    generation: int = Field(description="metadata.generation of the Stack the config was rendered from.")
    credentials_revision: int
    applied_at: float = Field(description="Unix time at which this process applied it.")
    capabilities: dict[str, Any]
    email_providers: list[str]
    email_templates: list[str] = Field(default_factory=list)
    rate_limit_policies: list[str]
    job_queues: list[str] = Field(default_factory=list)
    schedules: list[str] = Field(default_factory=list)
    identity_providers: list[str] = Field(default_factory=list)
    databases: list[str] = Field(default_factory=list, description="Databases in force, by name.")
    buckets: list[str] = Field(default_factory=list, description="Buckets (file stores) in force, by name.")
    notification_workflows: list[str] = Field(
        default_factory=list, description="NotificationWorkflows in force, by name."
    )
    webhooks: list[str] = Field(default_factory=list, description="Webhooks in force, by name.")
    search_indexes: list[str] = Field(
        default_factory=list, description="SearchIndexes in force, by name (each its index uid in /v1/indexes)."
    )
    oidc_clients: list[str] = Field(
        default_factory=list, description="OIDCClients in force, by name (each its client_id); no client secret."
    )
    last_error: str | None = Field(description="Why the last offered config was refused, if it was.")


class Health(BaseModel):
    """/healthz and /readyz: `status` is "ok" or "not ready"; `checks` says what was checked
    (config, redis, ...) and, when not ready, why."""

    status: str
    checks: dict[str, str] = {}

    @property
    def ready(self) -> bool:
        return self.status == "ok"
