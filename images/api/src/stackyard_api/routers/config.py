"""GET /v1/config: which configuration this process applies (hash and generation, no secret)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import ConfigDict, Field
from stackyard.resources.base import CamelModel

from ..deps import RuntimeDep
from ..errors import problem_responses

router = APIRouter(prefix="/v1/config", tags=["config"])


class AppliedConfigInfo(CamelModel):
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
    last_error: str | None = Field(description="Why the last offered config was refused, if it was.")


@router.get(
    "",
    response_model=AppliedConfigInfo,
    response_model_by_alias=True,
    summary="The configuration this process applies",
    responses=problem_responses(429, 503),
)
async def get_config(runtime: RuntimeDep) -> AppliedConfigInfo:
    return AppliedConfigInfo.model_validate(runtime.describe_config())
