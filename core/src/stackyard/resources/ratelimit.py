"""RateLimitPolicy: a limit enforced on the api and offered to other services."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

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
    StackRef,
    member_ready,
)

HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
PathPattern = Annotated[str, StringConstraints(pattern=r"^/[^\s]*$", max_length=500)]
HostPattern = Annotated[str, StringConstraints(pattern=r"^(\*\.)?[a-z0-9.-]+(:[0-9]+)?$", max_length=253)]


class RateLimitMatch(CamelModel):
    paths: list[PathPattern] = Field(
        default_factory=list,
        max_length=50,
        description="Path patterns: * matches one segment, ** any number, e.g. /v1/auth/**. Empty matches every path.",
    )
    methods: list[HttpMethod] = Field(default_factory=list, description="HTTP methods; empty matches every method.")
    hosts: list[HostPattern] = Field(
        default_factory=list, max_length=50, description="Host names (*.example.com allowed); empty matches every host."
    )


class RateLimitKey(CamelModel):
    type: Literal["ip", "user", "apiKey", "header", "global"] = Field(
        default="ip",
        description=(
            "What is counted separately: the client IP, the token's subject, the API key, a "
            "header, or everything together."
        ),
    )
    header: str | None = Field(
        default=None, max_length=100, pattern=r"^[A-Za-z0-9-]+$", description="Header name when type is header."
    )


class RateLimitPolicySpec(CamelModel):
    stack_ref: StackRef = Field(description="The Stack whose api enforces this policy.")
    match: RateLimitMatch = Field(default=RateLimitMatch(), description="Which requests the policy applies to.")
    key: RateLimitKey = Field(
        default=RateLimitKey(),
        description="How requests are grouped.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "(self.type == 'header') == has(self.header)",
                    "message": "key.header must be set when key.type is header, and only then",
                }
            ]
        },
    )
    algorithm: Literal["fixedWindow", "slidingWindow", "tokenBucket", "gcra"] = Field(
        default="slidingWindow", description="Counting algorithm."
    )
    limit: int = Field(ge=1, le=1_000_000_000, description="Requests (cost units) allowed per window.")
    window: Duration = Field(
        description="The window, e.g. 1s, 1m, 1h; for tokenBucket and gcra the refill period of limit."
    )
    burst: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000_000,
        description="tokenBucket and gcra: the most that may pass at once (default: limit).",
    )
    mode: Literal["enforce", "dryRun"] = Field(
        default="enforce",
        description="enforce refuses what is over the limit; dryRun counts and logs it but lets it through.",
    )
    failure_mode: Literal["open", "closed"] = Field(
        default="open",
        description=(
            "When Redis fails or is slower than the timeout: let requests through (open) or refuse them (closed)."
        ),
    )
    timeout: Duration = Field(
        default="10ms",
        description=(
            "Time budget of one decision (the Redis round trip); beyond it the failure mode decides, e.g. 10ms, 50ms."
        ),
    )
    enforce_in_api: bool = Field(
        default=True,
        description=(
            "Whether the stackyard api enforces this policy on its own matching requests; false for a policy "
            "that only other services use (POST /v1/ratelimit/check, the client, the ASGI middleware)."
        ),
    )

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.burst) || self.algorithm == 'tokenBucket' || self.algorithm == 'gcra'",
                    "message": "burst applies only to the tokenBucket and gcra algorithms",
                },
                {
                    "rule": "self.algorithm != 'tokenBucket' || !has(self.burst) || self.burst >= self.limit",
                    "message": "burst must be at least limit for tokenBucket",
                },
                {"rule": "duration(self.window) >= duration('1ms')", "message": "window must be at least 1ms"},
                {
                    "rule": "duration(self.timeout) >= duration('1ms') && duration(self.timeout) <= duration('10s')",
                    "message": "timeout must be between 1ms and 10s",
                },
            ]
        }
    }


class RateLimitPolicy(CustomResource):
    info = KindInfo(
        kind="RateLimitPolicy",
        plural="ratelimitpolicies",
        short_names=["rlp"],
        description=(
            "A rate limit the api enforces on matching requests and offers to other services "
            "through /v1/ratelimit/check."
        ),
        columns=[
            PrinterColumn("Algorithm", ".spec.algorithm"),
            PrinterColumn("Limit", ".spec.limit", "integer"),
            PrinterColumn("Window", ".spec.window"),
            PrinterColumn("Mode", ".spec.mode"),
            READY_COLUMN,
            REASON_COLUMN,
            AGE_COLUMN,
        ],
        conditions=[member_ready()],
    )
    kind: Literal["RateLimitPolicy"] = "RateLimitPolicy"
    spec: RateLimitPolicySpec
    status: ResourceStatus = Field(default_factory=ResourceStatus)
