"""The stackyard.dev/v1alpha1 API: pydantic models from which the CRDs are generated."""

from .auth import IdentityProvider, IdentityProviderSpec
from .base import (
    API_VERSION,
    GROUP,
    VERSION,
    Condition,
    CustomResource,
    ResourceStatus,
    SecretKeyRef,
    StackRef,
    duration_seconds,
)
from .database import Database, DatabaseSpec, DatabaseStatus
from .email import EmailProvider, EmailProviderSpec, EmailTemplate, EmailTemplateSpec
from .jobs import JobQueue, JobQueueSpec, Schedule, ScheduleSpec, ScheduleStatus
from .ratelimit import RateLimitPolicy, RateLimitPolicySpec
from .registry import BY_KIND, KINDS
from .stack import Stack, StackSpec

__all__ = [
    "API_VERSION",
    "BY_KIND",
    "GROUP",
    "KINDS",
    "VERSION",
    "Condition",
    "CustomResource",
    "Database",
    "DatabaseSpec",
    "DatabaseStatus",
    "EmailProvider",
    "EmailProviderSpec",
    "EmailTemplate",
    "EmailTemplateSpec",
    "IdentityProvider",
    "IdentityProviderSpec",
    "JobQueue",
    "JobQueueSpec",
    "RateLimitPolicy",
    "RateLimitPolicySpec",
    "ResourceStatus",
    "Schedule",
    "ScheduleSpec",
    "ScheduleStatus",
    "SecretKeyRef",
    "Stack",
    "StackRef",
    "StackSpec",
    "duration_seconds",
]
