"""OIDCClient: an application registered with the Stack's OpenID Provider.

The client id is the resource's name. Confidential and machine clients get a client secret
that the operator makes, keeps in a Secret of their own and rotates; public clients (SPAs,
mobile and desktop apps) have none and must use PKCE. Redirect URIs match exactly (no
prefixes, no wildcards), as OAuth 2.1 asks."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, JsonValue, StringConstraints, model_validator

from .base import (
    AGE_COLUMN,
    DISABLED_REASON,
    READY_COLUMN,
    REASON_COLUMN,
    CamelModel,
    ConditionInfo,
    CustomResource,
    Duration,
    KindInfo,
    ObjectName,
    PrinterColumn,
    ResourceStatus,
    StackRef,
    member_ready,
)

ClientType = Literal["confidential", "public", "machine"]
GrantType = Literal["authorization_code", "refresh_token", "client_credentials"]

RedirectUri = Annotated[
    str,
    StringConstraints(
        # https anywhere; http only for loopback hosts (RFC 8252); a private-use scheme for native apps.
        pattern=r"^(https://[^\s#]+|http://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]+)?(/[^\s#]*)?|[a-z][a-z0-9+.-]*\.[a-z0-9+.-]+:/[^\s#]*)$",
        max_length=500,
    ),
]
HttpsUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=500)]
Scope = Annotated[str, StringConstraints(pattern=r"^[\x21\x23-\x5b\x5d-\x7e]+$", min_length=1, max_length=200)]

STANDARD_SCOPES = ("openid", "profile", "email", "offline_access")
DEFAULT_GRANTS: dict[str, tuple[str, ...]] = {
    "confidential": ("authorization_code", "refresh_token"),
    "public": ("authorization_code", "refresh_token"),
    "machine": ("client_credentials",),
}

OIDC_CLIENT_RULES: list[JsonValue] = [
    {
        "rule": "self.type != 'machine' || !has(self.grantTypes) || self.grantTypes == ['client_credentials']",
        "message": "a machine client has only the client_credentials grant",
    },
    {
        "rule": "self.type == 'machine' || !has(self.grantTypes) || !('client_credentials' in self.grantTypes)",
        "message": "client_credentials is for machine clients (type machine)",
    },
    {
        "rule": "!has(self.grantTypes) || !('refresh_token' in self.grantTypes) || "
        "'authorization_code' in self.grantTypes",
        "message": "the refresh_token grant comes with authorization_code",
    },
    {
        "rule": "self.type == 'machine' || (has(self.redirectUris) && size(self.redirectUris) > 0)",
        "message": "spec.redirectUris needs at least one URI for the authorization code flow",
    },
    {
        "rule": "self.type != 'machine' || ((!has(self.redirectUris) || size(self.redirectUris) == 0) && "
        "(!has(self.postLogoutRedirectUris) || size(self.postLogoutRedirectUris) == 0))",
        "message": "a machine client has no redirect URIs",
    },
    {
        "rule": "self.type != 'public' || !has(self.requirePkce) || self.requirePkce",
        "message": "a public client must use PKCE (requirePkce cannot be false)",
    },
]


class TokenLifetimes(CamelModel):
    access_token: Duration | None = Field(
        default=None, description="Lifetime of access tokens; default: the Stack's spec.auth.accessTokenLifetime."
    )
    id_token: Duration = Field(default="1h", description="Lifetime of ID tokens.")
    refresh_token: Duration | None = Field(
        default=None,
        description="Absolute lifetime of a refresh token grant; default: the Stack's refreshTokenLifetime.",
    )
    refresh_token_idle: Duration | None = Field(
        default=None,
        description="A grant not refreshed for this long ends; default: the Stack's spec.auth.sessionIdleTimeout.",
    )
    authorization_code: Duration = Field(default="60s", description="Lifetime of authorization codes (one use).")


class ClientSecretSettings(CamelModel):
    secret_name: ObjectName | None = Field(
        default=None,
        description="The Secret the operator makes with keys clientId and clientSecret; default <name>-oidc-client.",
    )
    rotation_period: Duration | None = Field(
        default=None,
        description=(
            "Make a new client secret this often (e.g. 2160h); unset: only when asked with the annotation "
            "stackyard.dev/rotate-client-secret."
        ),
    )
    grace_period: Duration = Field(
        default="24h",
        description="After a rotation the previous secret is still accepted this long (key previousClientSecret).",
    )


class OIDCClientSpec(CamelModel):
    stack_ref: StackRef = Field(description="The Stack whose OpenID Provider this client is registered with.")
    type: ClientType = Field(
        description=(
            "confidential (a server-side app with a client secret), public (SPA, mobile or desktop app: no "
            "secret, PKCE) or machine (service to service: client credentials only)."
        )
    )
    display_name: str | None = Field(
        default=None, min_length=1, max_length=100, description="Shown on the login and consent pages."
    )
    redirect_uris: list[RedirectUri] = Field(
        default_factory=list,
        max_length=50,
        description="Where authorization responses may go; matched exactly (https, loopback http, or app scheme).",
    )
    post_logout_redirect_uris: list[RedirectUri] = Field(
        default_factory=list, max_length=50, description="Where RP-initiated logout may return to; matched exactly."
    )
    grant_types: list[GrantType] | None = Field(
        default=None,
        description=(
            "Allowed grants; default: authorization_code and refresh_token (confidential, public), "
            "client_credentials (machine)."
        ),
    )
    scopes: list[Scope] = Field(
        default_factory=lambda: list(STANDARD_SCOPES),
        max_length=100,
        description=(
            "Scopes the client may ask for: openid, profile, email, offline_access, and any of your own "
            "(e.g. reports:read, for machine clients). Others are refused (invalid_scope)."
        ),
    )
    audience: str | None = Field(
        default=None,
        max_length=500,
        description="The aud claim of the client's access tokens; default: the Stack's spec.auth.audience.",
    )
    require_pkce: bool = Field(
        default=True,
        description="Require PKCE (S256) on authorization requests; always on for public clients (OAuth 2.1).",
    )
    third_party: bool = Field(
        default=False,
        description="A third-party client: users see a consent page naming the scopes, once per new scope.",
    )
    token_lifetimes: TokenLifetimes = Field(default=TokenLifetimes(), description="Token lifetimes of this client.")
    client_secret: ClientSecretSettings = Field(
        default=ClientSecretSettings(), description="The client secret (confidential and machine clients)."
    )
    logo_uri: HttpsUrl | None = Field(default=None, description="Logo shown on the consent page.")
    client_uri: HttpsUrl | None = Field(default=None, description="The application's home page.")
    policy_uri: HttpsUrl | None = Field(default=None, description="Privacy policy, linked from the consent page.")
    tos_uri: HttpsUrl | None = Field(default=None, description="Terms of service, linked from the consent page.")
    enabled: bool = Field(default=True, description="A disabled client is kept but every request of it is refused.")

    model_config = CamelModel.model_config | {"json_schema_extra": {"x-kubernetes-validations": OIDC_CLIENT_RULES}}

    @model_validator(mode="after")
    def _fits_type(self) -> OIDCClientSpec:
        # The same rules as the CEL above, for configs made without an API server.
        grants = self.allowed_grants()
        if self.type == "machine":
            if grants != ["client_credentials"]:
                raise ValueError("a machine client has only the client_credentials grant")
            if self.redirect_uris or self.post_logout_redirect_uris:
                raise ValueError("a machine client has no redirect URIs")
        else:
            if "client_credentials" in grants:
                raise ValueError("client_credentials is for machine clients (type machine)")
            if not self.redirect_uris:
                raise ValueError("spec.redirectUris needs at least one URI for the authorization code flow")
        if "refresh_token" in grants and "authorization_code" not in grants:
            raise ValueError("the refresh_token grant comes with authorization_code")
        if self.type == "public" and not self.require_pkce:
            raise ValueError("a public client must use PKCE (requirePkce cannot be false)")
        return self

    def allowed_grants(self) -> list[str]:
        return list(self.grant_types if self.grant_types is not None else DEFAULT_GRANTS[self.type])

    @property
    def has_secret(self) -> bool:
        """Whether the client authenticates with a client secret (confidential and machine)."""
        return self.type != "public"

    def secret_name(self, name: str) -> str:
        return self.client_secret.secret_name or f"{name}-oidc-client"

    def label(self, name: str) -> str:
        return self.display_name or name


class OIDCClientStatus(ResourceStatus):
    client_id: str | None = Field(default=None, description="The client id (the resource's name).")
    secret_name: str | None = Field(
        default=None, description="The Secret holding clientId and clientSecret (not for public clients)."
    )
    secret_rotated_at: str | None = Field(
        default=None, description="When the client secret was last made.", json_schema_extra={"format": "date-time"}
    )
    next_secret_rotation: str | None = Field(
        default=None,
        description="When the operator makes the next client secret (rotationPeriod set).",
        json_schema_extra={"format": "date-time"},
    )


ROTATE_CLIENT_SECRET_ANNOTATION = "stackyard.dev/rotate-client-secret"
"""On an OIDCClient: a new value asks the operator for a new client secret now."""


class OIDCClient(CustomResource):
    info = KindInfo(
        kind="OIDCClient",
        plural="oidcclients",
        short_names=["oidc"],
        description=(
            "An application registered with the Stack's OpenID Provider: authorization code with PKCE, "
            "refresh tokens with rotation, client credentials; the operator makes and rotates its client secret."
        ),
        columns=[
            PrinterColumn("Type", ".spec.type"),
            PrinterColumn("Secret", ".status.secretName"),
            PrinterColumn("Third Party", ".spec.thirdParty", "boolean", priority=1),
            PrinterColumn("Enabled", ".spec.enabled", "boolean", priority=1),
            READY_COLUMN,
            REASON_COLUMN,
            AGE_COLUMN,
        ],
        conditions=[
            member_ready(**DISABLED_REASON),
            ConditionInfo(
                "SecretReady",
                "The client secret is in its Secret and in force (confidential and machine clients).",
                {
                    "Created": "True: the operator made the client secret and its Secret.",
                    "InForce": "True: the client secret in the Secret is in force.",
                    "Rotated": "True: a new client secret was made; the previous one is accepted until the grace "
                    "period ends.",
                    "NoSecret": "True: a public client has no client secret.",
                    "SecretInvalid": "False: the Secret's clientSecret was edited into something too weak or "
                    "empty; the secret in force stays.",
                },
            ),
        ],
    )
    kind: Literal["OIDCClient"] = "OIDCClient"
    spec: OIDCClientSpec
    status: OIDCClientStatus = Field(default_factory=OIDCClientStatus)
