"""The Stack: one deployment of the platform."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from .base import (
    AGE_COLUMN,
    READY_COLUMN,
    REASON_COLUMN,
    CamelModel,
    CustomResource,
    Duration,
    KindInfo,
    PrinterColumn,
    ResourceStatus,
    SecretKeyRef,
)

Quantity = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$", max_length=32)]


class ImageSettings(CamelModel):
    registry: str = Field(
        default="ghcr.io/stackyard",
        max_length=200,
        description=(
            "Registry and path prefix; images are <registry>/stackyard-api:<tag> and <registry>/stackyard-worker:<tag>."
        ),
    )
    tag: str = Field(
        default="0.1.0", max_length=128, pattern=r"^[\w][\w.-]*$", description="Image tag for api and worker."
    )
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent", description="imagePullPolicy."
    )
    pull_secrets: list[Annotated[str, StringConstraints(max_length=253)]] = Field(
        default_factory=list, max_length=8, description="Names of image pull Secrets."
    )


class ComputeResources(CamelModel):
    requests: dict[str, Quantity] = Field(
        default_factory=dict, description="Requests, e.g. {cpu: 100m, memory: 128Mi}."
    )
    limits: dict[str, Quantity] = Field(default_factory=dict, description="Limits, e.g. {memory: 256Mi}.")


class WorkloadSettings(CamelModel):
    replicas: int = Field(default=2, ge=0, le=100, description="Number of pods.")
    resources: ComputeResources = Field(
        default=ComputeResources(requests={"cpu": "100m", "memory": "128Mi"}, limits={"memory": "512Mi"}),
        description="Compute resources of each pod.",
    )
    node_selector: dict[str, str] = Field(default_factory=dict, description="nodeSelector of the pods.")


def _check_cidrs(values: list[str]) -> list[str]:
    for value in values:
        if "/" not in value:
            raise ValueError(f"{value!r} is not a CIDR (write e.g. 10.0.0.0/8 or 203.0.113.7/32)")
        ipaddress.ip_network(value, strict=False)  # ValueError names the bad value
    return values


Cidr = Annotated[str, StringConstraints(max_length=49, pattern=r"^[0-9a-fA-F:.]+/[0-9]{1,3}$")]


class ApiSettings(WorkloadSettings):
    trusted_proxies: Annotated[list[Cidr], AfterValidator(_check_cidrs)] = Field(
        default_factory=list,
        max_length=50,
        description=(
            "CIDRs of the proxies and load balancers in front of the api. Only when the connecting peer is in "
            "one of them are X-Forwarded-For and Forwarded read for the client IP (walking right to left past "
            "trusted hops); otherwise the peer's own address is the client. Empty: headers are never trusted."
        ),
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self.all(c, isCIDR(c))", "message": "trustedProxies must be CIDRs, e.g. 10.0.0.0/8"}
            ]
        },
    )


class RedisConnection(CamelModel):
    url_secret_ref: SecretKeyRef = Field(
        description=(
            "Secret key holding the Redis URL (redis:// or rediss://, password included; "
            "redis+cluster:// or rediss+cluster:// for one node of a Redis Cluster)."
        )
    )


class MongoConnection(CamelModel):
    uri_secret_ref: SecretKeyRef = Field(description="Secret key holding the MongoDB connection string.")
    database: str = Field(
        default="stackyard", min_length=1, max_length=63, pattern=r"^[^/\\. \"$]+$", description="Database name."
    )


class TelemetrySettings(CamelModel):
    enabled: bool = Field(default=True, description="Export traces, metrics and logs over OTLP.")
    endpoint: str | None = Field(
        default=None,
        max_length=500,
        pattern=r"^https?://",
        description="OTLP endpoint, e.g. http://otel-collector:4318.",
    )
    protocol: Literal["http/protobuf", "grpc"] = Field(default="http/protobuf", description="OTLP transport.")
    sampling_ratio: float = Field(default=1.0, ge=0.0, le=1.0, description="Share of traces sampled (parent-based).")


class PasswordPolicy(CamelModel):
    min_length: int = Field(default=12, ge=8, le=128, description="Minimum password length.")
    reject_common: bool = Field(
        default=True, description="Refuse passwords from the offline list of common and breached ones."
    )


class AuthSettings(CamelModel):
    issuer: str | None = Field(
        default=None,
        max_length=500,
        pattern=r"^https?://",
        description="Token issuer URL; defaults to the api's Service URL.",
    )
    access_token_lifetime: Duration = Field(default="15m", description="Lifetime of access tokens (JWT).")
    refresh_token_lifetime: Duration = Field(
        default="720h", description="Absolute lifetime of a session's refresh tokens."
    )
    signing_key_rotation: Duration = Field(
        default="720h", description="How often the operator rotates the signing key."
    )
    password_policy: PasswordPolicy = Field(default=PasswordPolicy(), description="Rules for new passwords.")


class EmailSettings(CamelModel):
    log_retention: Duration = Field(
        default="720h", description="How long the delivery log keeps a message (720h: 30 days)."
    )
    idempotency_window: Duration = Field(
        default="24h", description="How long an idempotency key answers its first message."
    )


class Capabilities(CamelModel):
    auth: bool = Field(default=True, description="Authentication and sessions.")
    email: bool = Field(default=True, description="Transactional email.")
    jobs: bool = Field(default=True, description="Durable jobs and schedules.")
    rate_limit: bool = Field(default=True, description="Rate limiting.")


class StackSpec(CamelModel):
    image: ImageSettings = Field(default=ImageSettings(), description="Container images of api and worker.")
    api: ApiSettings = Field(default=ApiSettings(), description="The api Deployment and how it sees clients.")
    worker: WorkloadSettings = Field(default=WorkloadSettings(replicas=1), description="The worker Deployment.")
    redis: RedisConnection = Field(description="Redis: queues, limits, sessions, tokens, breaker state.")
    mongodb: MongoConnection = Field(description="MongoDB: users, delivery log, notifications, file metadata.")
    telemetry: TelemetrySettings = Field(default=TelemetrySettings(), description="OpenTelemetry export.")
    auth: AuthSettings = Field(
        default=AuthSettings(),
        description="Authentication settings.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "duration(self.accessTokenLifetime) <= duration('24h')",
                    "message": (
                        "accessTokenLifetime must be at most 24h: access tokens cannot be revoked before they expire"
                    ),
                },
                {
                    "rule": "duration(self.signingKeyRotation) > duration(self.accessTokenLifetime)",
                    "message": "signingKeyRotation must be longer than accessTokenLifetime",
                },
            ]
        },
    )
    email: EmailSettings = Field(default=EmailSettings(), description="Transactional email: log and idempotency.")
    capabilities: Capabilities = Field(default=Capabilities(), description="Which capabilities are on.")


class StackStatus(ResourceStatus):
    config_hash: str | None = Field(default=None, description="Hash of the RuntimeConfig in force.")
    members: dict[str, int] = Field(default_factory=dict, description="Resources of each kind folded into the config.")


class Stack(CustomResource):
    info = KindInfo(
        kind="Stack",
        plural="stacks",
        short_names=["stk"],
        description="One deployment of the stackyard platform: api and worker workloads and their live configuration.",
        columns=[
            READY_COLUMN,
            PrinterColumn("Config", ".status.configHash", description="RuntimeConfig hash in force"),
            REASON_COLUMN,
            AGE_COLUMN,
        ],
    )
    kind: Literal["Stack"] = "Stack"
    spec: StackSpec
    status: StackStatus = Field(default_factory=StackStatus)
