"""The Stack: one deployment of the platform."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from .base import (
    AGE_COLUMN,
    READY_COLUMN,
    REASON_COLUMN,
    CamelModel,
    ConditionInfo,
    CustomResource,
    Duration,
    KindInfo,
    ObjectName,
    Pair,
    PairedModel,
    PrinterColumn,
    ResourceStatus,
    SecretKeyRef,
    duration_seconds,
    secret_reasons,
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


HeaderName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", max_length=100)]

ORIGIN_PATTERN = r"^(\*|[a-z][a-z0-9+.-]*://[a-z0-9.\[\]:-]+)$"
Origin = Annotated[str, StringConstraints(pattern=ORIGIN_PATTERN, max_length=300)]
CorsMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
CREDENTIALS_WITH_ANY_ORIGIN = "allowCredentials cannot be true when allowedOrigins has '*'; list the origins instead"


class CorsSettings(CamelModel):
    """Which browser pages on other origins may call the api (the Fetch standard's CORS)."""

    allowed_origins: list[Origin] = Field(
        default_factory=list,
        max_length=100,
        description=(
            "Origins whose pages may call the api: exact origins, scheme://host[:port] in lower case without a "
            "path or trailing slash (https://shop.example.com, http://localhost:5173), or '*' for any. "
            "Empty: no CORS headers at all, so browsers on other origins cannot read the api's answers."
        ),
    )
    allowed_methods: list[CorsMethod] = Field(
        default=["GET", "POST", "PUT", "PATCH", "DELETE"],
        max_length=6,
        description="Methods a preflight may ask for.",
    )
    allowed_headers: list[HeaderName] = Field(
        default=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id"],
        max_length=50,
        description=(
            "Request headers a preflight may ask for, besides the CORS-safelisted ones (Accept, Accept-Language, "
            "Content-Language, Content-Type); '*' allows any. Add X-CSRF-Token for cookie sessions and "
            "X-Meilisearch-Client for Meilisearch's JavaScript clients."
        ),
    )
    exposed_headers: list[HeaderName] = Field(
        default=["RateLimit-Policy", "RateLimit", "Retry-After"],
        max_length=50,
        description="Answer headers a page's script may read, besides the CORS-safelisted ones.",
    )
    allow_credentials: bool = Field(
        default=False,
        description=(
            "Let pages send cookies and read the answers to requests that carry them "
            "(Access-Control-Allow-Credentials); not with allowedOrigins '*'."
        ),
    )
    max_age: Duration = Field(
        default="10m", description="How long a browser may keep a preflight's answer (browsers cap it: 2h in Chrome)."
    )

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!(has(self.allowCredentials) && self.allowCredentials && has(self.allowedOrigins) "
                    "&& self.allowedOrigins.exists(o, o == '*'))",
                    "message": CREDENTIALS_WITH_ANY_ORIGIN,
                },
                {
                    "rule": "!has(self.maxAge) || duration(self.maxAge) <= duration('24h')",
                    "message": "maxAge must be at most 24h",
                },
            ]
        }
    }

    @model_validator(mode="after")
    def _no_credentials_with_any_origin(self) -> CorsSettings:
        if self.allow_credentials and "*" in self.allowed_origins:
            raise ValueError(CREDENTIALS_WITH_ANY_ORIGIN)
        if duration_seconds(self.max_age) > 24 * 3600:
            raise ValueError("maxAge must be at most 24h")
        return self


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
    cors: CorsSettings = Field(
        default_factory=CorsSettings,
        description=(
            "Cross-origin requests from browser pages (CORS), followed live. Off until allowedOrigins lists an origin."
        ),
    )


class RedisConnection(CamelModel):
    url_secret_ref: SecretKeyRef = Field(
        description=(
            "Secret key holding the Redis URL (redis:// or rediss://, password included; "
            "redis+cluster:// or rediss+cluster:// for one node of a Redis Cluster)."
        )
    )


class DatabaseRef(CamelModel):
    name: ObjectName = Field(description="Name of a Database of this Stack, in the same namespace.")


class MongoConnection(PairedModel):
    pairs = (
        Pair(
            "uri_secret_ref", "database_ref", "exactly one of mongodb.uriSecretRef and mongodb.databaseRef must be set"
        ),
    )

    uri_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the MongoDB connection string; or set databaseRef."
    )
    database: str = Field(
        default="stackyard",
        min_length=1,
        max_length=63,
        pattern=r"^[^/\\. \"$]+$",
        description="Database name (with uriSecretRef; a Database names its own).",
    )
    database_ref: DatabaseRef | None = Field(
        default=None,
        description=(
            "A Database resource whose connection, pool and client settings the api and worker use for "
            "stackyard's own collections; or set uriSecretRef."
        ),
    )


class OtlpHeader(CamelModel):
    name: HeaderName = Field(description="Header name, e.g. x-honeycomb-team or Authorization.")
    value_secret_ref: SecretKeyRef = Field(description="Secret key holding the header's value (an API key).")


class SentrySettings(CamelModel):
    dsn_secret_ref: SecretKeyRef = Field(description="Secret key holding the Sentry DSN.")
    environment: str | None = Field(
        default=None, max_length=64, description="Sentry environment; the Stack's namespace when absent."
    )
    sample_rate: float = Field(default=1.0, ge=0.0, le=1.0, description="Share of errors sent to Sentry.")


class TelemetrySettings(CamelModel):
    enabled: bool = Field(default=True, description="Export traces, metrics and logs over OTLP.")
    endpoint: str | None = Field(
        default=None,
        max_length=500,
        pattern=r"^https?://",
        description=(
            "OTLP endpoint, e.g. http://otel-collector:4318 (http/protobuf: /v1/traces, /v1/metrics and "
            "/v1/logs are added) or http://otel-collector:4317 (grpc). Absent: OTEL_EXPORTER_OTLP_ENDPOINT "
            "of the pod, else nothing is exported."
        ),
    )
    protocol: Literal["http/protobuf", "grpc"] = Field(default="http/protobuf", description="OTLP transport.")
    headers: list[OtlpHeader] = Field(
        default_factory=list,
        max_length=10,
        description="Headers sent with every export (vendor API keys), values from Secrets.",
    )
    sampling_ratio: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description=(
            "Share of traces sampled, by trace id; a request that arrives with a sampled traceparent is "
            "sampled too (parent-based)."
        ),
    )
    export_logs: bool = Field(default=True, description="Export logs over OTLP too (they always go to stderr).")
    sentry: SentrySettings | None = Field(default=None, description="Also send errors to Sentry.")


class PasswordPolicy(CamelModel):
    min_length: int = Field(default=12, ge=8, le=128, description="Minimum password length.")
    reject_common: bool = Field(
        default=True, description="Refuse passwords from the offline list of common and breached ones."
    )


class LockoutPolicy(CamelModel):
    max_failures: int = Field(
        default=5, ge=1, le=100, description="Failed logins in a row before an account is locked for a while."
    )
    base_delay: Duration = Field(
        default="30s", description="Lock after maxFailures; each further failure doubles it, up to maxDelay."
    )
    max_delay: Duration = Field(default="1h", description="The longest an account stays locked.")
    ip_max_attempts: int = Field(
        default=100, ge=1, le=100000, description="Login and signup attempts one IP address may make per ipWindow."
    )
    ip_window: Duration = Field(default="15m", description="Window of ipMaxAttempts.")
    mails_per_address: int = Field(
        default=5,
        ge=1,
        le=1000,
        description=(
            "Verification, reset and magic-link emails one address may receive per hour; past it, requests "
            "are answered as usual and nothing is sent (no inbox flooding)."
        ),
    )


class AuthLinks(CamelModel):
    """Where the links in auth emails point: URL templates with {token}, pages of your app
    that post the token back to the api. Unset: <appUrl>/auth/<flow>?token={token}."""

    verify_email: str | None = Field(default=None, max_length=500, pattern=r"^https?://.*\{token\}")
    reset_password: str | None = Field(default=None, max_length=500, pattern=r"^https?://.*\{token\}")
    magic_link: str | None = Field(default=None, max_length=500, pattern=r"^https?://.*\{token\}")
    change_email: str | None = Field(default=None, max_length=500, pattern=r"^https?://.*\{token\}")


class CookieSettings(CamelModel):
    secure: bool = Field(
        default=True, description="Secure cookies (and the __Host- prefix); turn off only for plain-HTTP development."
    )
    same_site: Literal["lax", "strict", "none"] = Field(default="lax", description="SameSite of the session cookies.")


class PasskeySettings(CamelModel):
    rp_id: str | None = Field(
        default=None,
        max_length=253,
        description="WebAuthn relying party id (your site's domain); default: appUrl's host.",
    )
    rp_name: str = Field(default="stackyard", max_length=100, description="Name shown by the authenticator.")
    origins: list[Annotated[str, StringConstraints(max_length=500, pattern=r"^https?://")]] = Field(
        default_factory=list, max_length=20, description="Origins allowed in WebAuthn ceremonies; default: appUrl."
    )


class HostedPagesSettings(CamelModel):
    """The OpenID Provider's own pages (login, MFA, consent, logout): their look and which
    login methods they offer."""

    app_name: str | None = Field(
        default=None, min_length=1, max_length=100, description="Name shown on the pages; default: the Stack's name."
    )
    logo_url: Annotated[str, StringConstraints(max_length=500, pattern=r"^https?://[^\s]+$")] | None = Field(
        default=None, description="Logo at the top of every page."
    )
    primary_color: Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")] = Field(
        default="#4f46e5", description="Buttons and links (#rrggbb); its text colour is chosen for contrast."
    )
    background_color: Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")] = Field(
        default="#f8fafc", description="Page background (#rrggbb)."
    )
    color_scheme: Literal["light", "dark", "auto"] = Field(
        default="auto", description="light, dark, or the visitor's system preference (auto)."
    )
    support_url: Annotated[str, StringConstraints(max_length=500, pattern=r"^(https?|mailto):[^\s]+$")] | None = Field(
        default=None, description="A help link in the pages' footer."
    )
    password: bool = Field(default=True, description="Offer email and password.")
    magic_link: bool = Field(default=True, description="Offer a sign-in link by email.")
    passkeys: bool = Field(default=True, description="Offer passkeys (WebAuthn).")
    social: bool = Field(default=True, description="Offer the Stack's enabled IdentityProviders.")


class AuthSettings(CamelModel):
    issuer: str | None = Field(
        default=None,
        max_length=500,
        pattern=r"^https?://",
        description="Token issuer URL; defaults to the api's Service URL.",
    )
    audience: str | None = Field(
        default=None, max_length=500, description="The aud claim of access tokens; defaults to the issuer."
    )
    app_url: str | None = Field(
        default=None,
        max_length=500,
        pattern=r"^https?://",
        description="Your application's base URL: links in auth emails, passkey origin, default redirect.",
    )
    email_from: str | None = Field(
        default=None,
        max_length=320,
        description="From address of verification, reset and magic-link emails, e.g. 'Acme <auth@acme.dev>'.",
    )
    links: AuthLinks = Field(default=AuthLinks(), description="Overrides of the links in auth emails.")
    allow_signup: bool = Field(default=True, description="Let anyone sign up (else only admins create users).")
    require_email_verification: bool = Field(
        default=True, description="Refuse password login until the email address is verified."
    )
    access_token_lifetime: Duration = Field(default="15m", description="Lifetime of access tokens (JWT).")
    refresh_token_lifetime: Duration = Field(
        default="720h", description="Absolute lifetime of a session (its refresh tokens stop working then)."
    )
    session_idle_timeout: Duration = Field(default="168h", description="A session not refreshed for this long ends.")
    signing_key_rotation: Duration = Field(
        default="720h", description="How often the operator rotates the signing key."
    )
    signing_algorithm: Literal["EdDSA", "ES256", "RS256"] = Field(
        default="RS256",
        description=(
            "JWS algorithm of access and ID tokens: RS256 (RSA 2048, the one every OpenID Connect relying "
            "party accepts without a setting, and OpenID Connect Discovery requires), EdDSA (Ed25519, the "
            "smallest tokens and cheapest signing) or ES256 (P-256). A change rotates the key."
        ),
    )
    verification_token_lifetime: Duration = Field(default="24h", description="Lifetime of email verification links.")
    reset_token_lifetime: Duration = Field(default="1h", description="Lifetime of password reset links.")
    magic_link_lifetime: Duration = Field(default="15m", description="Lifetime of magic login links.")
    password_policy: PasswordPolicy = Field(default=PasswordPolicy(), description="Rules for new passwords.")
    lockout: LockoutPolicy = Field(default=LockoutPolicy(), description="Limits on failed logins.")
    cookies: CookieSettings = Field(default=CookieSettings(), description="Browser session cookies.")
    passkeys: PasskeySettings = Field(default=PasskeySettings(), description="WebAuthn relying party.")
    allowed_redirect_urls: list[Annotated[str, StringConstraints(max_length=500, pattern=r"^https?://")]] = Field(
        default_factory=list,
        max_length=50,
        description="URLs (prefixes) that social login may redirect to after login; appUrl is always allowed.",
    )
    admin_api_key_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the admin API key (for /v1/auth/admin); unset: admin API off."
    )
    audit_retention: Duration = Field(default="2160h", description="How long security events are kept (90 days).")
    hosted_pages: HostedPagesSettings = Field(
        default=HostedPagesSettings(),
        description="The OpenID Provider's login, consent and logout pages (OIDCClients): look and login methods.",
    )


class EmailSettings(CamelModel):
    log_retention: Duration = Field(
        default="720h", description="How long the delivery log keeps a message (720h: 30 days)."
    )
    idempotency_window: Duration = Field(
        default="24h", description="How long an idempotency key answers its first message."
    )


class SearchSettings(CamelModel):
    """The search component: one pod (a StatefulSet) holding the index files of every
    SearchIndex of the Stack on its volume; deployed only while the Stack has a SearchIndex."""

    storage: Quantity = Field(default="10Gi", description="Size of the volume holding the index files.")
    storage_class_name: str | None = Field(
        default=None, max_length=253, description="StorageClass of that volume; the cluster's default when absent."
    )
    resources: ComputeResources = Field(
        default=ComputeResources(requests={"cpu": "250m", "memory": "512Mi"}),
        description="Requests and limits of the search pod.",
    )
    node_selector: dict[str, str] = Field(default_factory=dict, description="nodeSelector of the search pod.")
    search_api_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding a search-only API key: it may search (for instant search from browsers) "
        "but not write, read tasks or list documents. The admin API key may do everything.",
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
    search: SearchSettings = Field(default=SearchSettings(), description="The search component (SearchIndexes).")
    capabilities: Capabilities = Field(default=Capabilities(), description="Which capabilities are on.")


class StackStatus(ResourceStatus):
    config_hash: str | None = Field(default=None, description="Hash of the RuntimeConfig in force.")
    members: dict[str, int] = Field(default_factory=dict, description="Resources of each kind folded into the config.")


NOT_EVALUATED = {"NotEvaluated": "Unknown: Ready is False, so this is not checked until the spec applies."}
"""The reason of each Stack condition besides Ready while Ready is False (the operator's render)."""


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
        conditions=[
            ConditionInfo(
                "Ready",
                "The Stack's config is applied: its ConfigMap, credentials Secret and workloads carry it. While "
                "it is False, the config in force stays and the Stack's other conditions are Unknown "
                "(NotEvaluated) until a spec applies.",
                {
                    "ConfigApplied": "True: the config of status.configHash is applied.",
                    "Invalid": "False: the spec does not parse or breaks a rule (the message names the field).",
                    **secret_reasons("spec.redis, spec.mongodb or spec.telemetry", "nothing is applied"),
                    "DatabaseNotFound": "False: spec.mongodb.databaseRef names no Database of this Stack.",
                    "DatabaseInvalid": "False: the Database spec.mongodb.databaseRef names is not valid.",
                    "ApplyFailed": "False: the API server refused or failed an object of the Stack; tried again.",
                },
            ),
            ConditionInfo(
                "MembersReady",
                "Every resource naming the Stack in spec.stackRef is in force.",
                {
                    "AllMembersReady": "True: every member is in force.",
                    "MembersInvalid": "False: the message lists each member that is not, with its Ready reason.",
                    **NOT_EVALUATED,
                },
            ),
            ConditionInfo(
                "Available",
                "Every component (api, worker, and search while a SearchIndex is in force) has a ready pod.",
                {
                    "PodsReady": "True: the message counts the ready replicas of each component.",
                    "PodsNotReady": "False: a component has no ready pod (the message counts them).",
                    **NOT_EVALUATED,
                },
            ),
            ConditionInfo(
                "AuthReady",
                "The auth signing keys and encryption key are in force, and the admin API key resolves.",
                {
                    "KeysReady": "True: the signing keys are published; the message says when the next rotation "
                    "step is.",
                    "KeysInForce": "True: the keys in force stay (the auth-keys Secret was not read this time).",
                    "InvalidKeys": "False: the auth-keys Secret holds a value that does not parse; the keys in "
                    "force stay and are not rotated.",
                    **secret_reasons("spec.auth.adminApiKeySecretRef", "the admin API is off until it resolves"),
                    **NOT_EVALUATED,
                },
            ),
            ConditionInfo(
                "SearchReady",
                "The search component serves the SearchIndexes in force and the search-only API key resolves. "
                "Set only when the Stack has a SearchIndex in force or spec.search.searchApiKeySecretRef.",
                {
                    "Deployed": "True: the search StatefulSet serves the SearchIndexes in force.",
                    "NoIndexes": "True: no SearchIndex is in force; the search component is not deployed.",
                    "VolumeImmutable": "False: spec.search asks for another volume size or class than the "
                    "StatefulSet was made with; the old one stays.",
                    **secret_reasons("spec.search.searchApiKeySecretRef", "only the admin API key can search"),
                    **NOT_EVALUATED,
                },
            ),
        ],
    )
    kind: Literal["Stack"] = "Stack"
    spec: StackSpec
    status: StackStatus = Field(default_factory=StackStatus)
