"""The wire contract of /v1/ratelimit: request and response bodies, shared by the api's
router and the client so the two cannot drift."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ..resources.ratelimit import RateLimitPolicySpec
from .decision import Decision


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class CheckRequest(_Wire):
    model_config = ConfigDict(  # merged with _Wire's (camelCase aliases)
        json_schema_extra={
            "examples": [
                {"policy": "exports-per-user", "key": "user-42", "cost": 5},
                {"policy": "signups-per-ip"},
            ]
        },
    )

    policy: str = Field(min_length=1, max_length=63, description="Name of the RateLimitPolicy.")
    key: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description=(
            "Who is counted: your user id, tenant, API key id, IP… Omitted: the key the policy's "
            "key type takes from this check request itself (its client IP, principal or header)."
        ),
    )
    cost: int = Field(
        default=1, ge=0, le=1_000_000_000, description="Units this request costs; 0 only looks, charging nothing."
    )


class CheckResult(_Wire):
    model_config = ConfigDict(  # merged with _Wire's (camelCase aliases)
        json_schema_extra={
            "examples": [
                {
                    "allowed": False,
                    "policy": "exports-per-user",
                    "key": "user-42",
                    "limit": 100,
                    "remaining": 2,
                    "resetAfter": 41.2,
                    "retryAfter": 3.5,
                    "window": 60.0,
                    "mode": "enforce",
                    "source": "redis",
                }
            ]
        },
    )

    allowed: bool = Field(description="Whether to let the request through (always true for a dryRun policy).")
    policy: str
    key: str = Field(description="The key as counted (long or unusual keys are replaced by a digest).")
    limit: int = Field(description="The quota: the limit, or the burst of tokenBucket and gcra.")
    remaining: int = Field(description="Units left now.")
    reset_after: float = Field(description="Seconds until the quota is whole again.")
    retry_after: float = Field(description="Seconds until a request of this cost may pass; 0 when allowed.")
    window: float = Field(description="The policy's window in seconds.")
    mode: Literal["enforce", "dryRun"]
    source: Literal["redis", "deny-cache", "fail-open", "fail-closed"] = Field(
        description=(
            "Who answered: Redis, this process's deny cache, or the policy's failure mode when Redis "
            "failed or was slower than the policy's timeout."
        )
    )
    would_limit: bool = Field(default=False, description="dryRun: the policy would have refused this request.")

    @classmethod
    def of(cls, decision: Decision) -> CheckResult:
        return cls(
            allowed=decision.allowed or decision.dry_run,
            policy=decision.policy,
            key=decision.key,
            limit=decision.limit,
            remaining=decision.remaining,
            reset_after=round(decision.reset_after, 6),
            retry_after=round(decision.retry_after, 6) if not decision.dry_run else 0.0,
            window=decision.window,
            mode=decision.mode,
            source=decision.source,
            would_limit=decision.dry_run and not decision.allowed,
        )


class PolicyCountsInfo(_Wire):
    allowed: int = 0
    limited: int = 0
    would_limit: int = 0
    failed: int = 0


class PolicyInfo(_Wire):
    spec: RateLimitPolicySpec
    counts: PolicyCountsInfo = Field(
        default_factory=PolicyCountsInfo, description="Decisions of this api process since it started."
    )


class PolicyList(_Wire):
    model_config = ConfigDict(  # merged with _Wire's (camelCase aliases)
        json_schema_extra={
            "examples": [
                {
                    "hash": "3f9a0c1d2b4e5f60",
                    "trustedProxies": ["10.0.0.0/8"],
                    "policies": {
                        "login": {
                            "spec": {
                                "stackRef": {"name": "demo"},
                                "match": {"paths": ["/v1/auth/**"], "methods": ["POST"], "hosts": []},
                                "key": {"type": "ip"},
                                "algorithm": "gcra",
                                "limit": 10,
                                "window": "1m",
                                "burst": 5,
                                "mode": "enforce",
                                "failureMode": "open",
                                "timeout": "10ms",
                                "enforceInApi": True,
                            },
                            "counts": {"allowed": 120, "limited": 3, "wouldLimit": 0, "failed": 0},
                        }
                    },
                }
            ]
        },
    )

    hash: str = Field(description="Hash of the config the policies come from (also the ETag).")
    trusted_proxies: list[str] = Field(description="The Stack's spec.api.trustedProxies.")
    policies: dict[str, PolicyInfo]
