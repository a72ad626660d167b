"""IdentityProvider: a social or enterprise login (Google, GitHub, any OpenID provider)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, JsonValue, StringConstraints, model_validator

from .base import (
    AGE_COLUMN,
    DISABLED_REASON,
    READY_COLUMN,
    REASON_COLUMN,
    SECRET_REASONS,
    CamelModel,
    CustomResource,
    KindInfo,
    PrinterColumn,
    ResourceStatus,
    SecretKeyRef,
    StackRef,
    member_ready,
)

IDENTITY_PROVIDER_TYPES = ("google", "github", "oidc")
GOOGLE_ISSUER = "https://accounts.google.com"
GITHUB_AUTHORIZATION_URL = "https://github.com/login/oauth/authorize"
GITHUB_TOKEN_URL = "https://github.com/login/oauth/access_token"
GITHUB_API_URL = "https://api.github.com"
DEFAULT_SCOPES: dict[str, tuple[str, ...]] = {
    "google": ("openid", "email", "profile"),
    "oidc": ("openid", "email", "profile"),
    "github": ("read:user", "user:email"),
}

EndpointUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s?#]+$", max_length=500)]
Scope = Annotated[str, StringConstraints(pattern=r"^[\x21\x23-\x5b\x5d-\x7e]+$", min_length=1, max_length=200)]

IDENTITY_PROVIDER_RULES: list[JsonValue] = [
    {"rule": "self.type != 'oidc' || has(self.issuer)", "message": "spec.issuer is required when type is oidc"},
    {
        "rule": f"self.type != 'google' || !has(self.issuer) || self.issuer == '{GOOGLE_ISSUER}'",
        "message": f"a google provider's issuer is {GOOGLE_ISSUER} (leave spec.issuer out)",
    },
    {"rule": "self.type != 'github' || !has(self.issuer)", "message": "spec.issuer is for google and oidc, not github"},
    {
        "rule": "self.type == 'github' || (!has(self.authorizationUrl) && !has(self.tokenUrl) && !has(self.apiUrl))",
        "message": "authorizationUrl, tokenUrl and apiUrl are for GitHub Enterprise (type github); "
        "an OpenID provider's endpoints come from its discovery document",
    },
]


class IdentityProviderSpec(CamelModel):
    stack_ref: StackRef = Field(description="The Stack whose users may log in with this provider.")
    type: Literal["google", "github", "oidc"] = Field(
        description="google, github (github.com or GitHub Enterprise) or oidc (any OpenID Connect provider)."
    )
    display_name: str | None = Field(
        default=None, min_length=1, max_length=100, description="Shown on the login button; default: the type's name."
    )
    client_id: str = Field(min_length=1, max_length=500, description="The OAuth client id the provider gave you.")
    client_secret_secret_ref: SecretKeyRef = Field(description="Secret key holding the OAuth client secret.")
    issuer: EndpointUrl | None = Field(
        default=None,
        description=(
            "The OpenID issuer (its /.well-known/openid-configuration is read); required for oidc, "
            f"fixed to {GOOGLE_ISSUER} for google."
        ),
    )
    authorization_url: EndpointUrl | None = Field(
        default=None, description=f"GitHub Enterprise: the authorize endpoint (default {GITHUB_AUTHORIZATION_URL})."
    )
    token_url: EndpointUrl | None = Field(
        default=None, description=f"GitHub Enterprise: the access-token endpoint (default {GITHUB_TOKEN_URL})."
    )
    api_url: EndpointUrl | None = Field(
        default=None,
        description=f"GitHub Enterprise: the REST API base, e.g. https://ghe.acme.dev/api/v3 "
        f"(default {GITHUB_API_URL}).",
    )
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post"] | None = Field(
        default=None,
        description=(
            "How the client secret is sent to the token endpoint; default: what the discovery document "
            "supports (basic first), client_secret_post for GitHub and Google."
        ),
    )
    scopes: list[Scope] = Field(
        default_factory=list,
        max_length=50,
        description="Scopes to ask for; empty: openid email profile (google, oidc) or read:user user:email (github).",
    )
    allow_signup: bool = Field(
        default=True, description="A first login with no matching account creates one (spec.auth.allowSignup too)."
    )
    link_by_verified_email: bool = Field(
        default=True,
        description=(
            "A first login whose email (verified by the provider) belongs to an account whose own email is "
            "not yet verified links to it; an account with a verified email links either way."
        ),
    )
    enabled: bool = Field(default=True, description="A disabled provider is kept but offers no login.")

    model_config = CamelModel.model_config | {
        "json_schema_extra": {"x-kubernetes-validations": IDENTITY_PROVIDER_RULES}
    }

    @model_validator(mode="after")
    def _endpoints_fit_type(self) -> IdentityProviderSpec:
        # The same rules as the CEL above, for configs made without an API server.
        if self.type == "oidc" and self.issuer is None:
            raise ValueError("spec.issuer is required when type is oidc")
        if self.type == "google" and self.issuer not in (None, GOOGLE_ISSUER):
            raise ValueError(f"a google provider's issuer is {GOOGLE_ISSUER} (leave spec.issuer out)")
        if self.type == "github" and self.issuer is not None:
            raise ValueError("spec.issuer is for google and oidc, not github")
        if self.type != "github" and (self.authorization_url or self.token_url or self.api_url):
            raise ValueError("authorizationUrl, tokenUrl and apiUrl are for GitHub Enterprise (type github)")
        return self

    def secret_refs(self) -> dict[str, SecretKeyRef]:
        """The Secret keys this provider needs, by the credential name they fill."""
        return {"clientSecret": self.client_secret_secret_ref}

    @property
    def oidc(self) -> bool:
        """Whether logins are OpenID Connect (an id_token is verified), not plain OAuth2."""
        return self.type != "github"

    def issuer_url(self) -> str | None:
        if self.type == "google":
            return GOOGLE_ISSUER
        return self.issuer.rstrip("/") if self.issuer else None

    def requested_scopes(self) -> list[str]:
        """The scopes asked for: the spec's, or the type's defaults; openid always for OIDC."""
        scopes = list(self.scopes or DEFAULT_SCOPES[self.type])
        if self.oidc and "openid" not in scopes:
            scopes.insert(0, "openid")
        return scopes

    def label(self, name: str) -> str:
        """What a login button says."""
        return self.display_name or {"google": "Google", "github": "GitHub"}.get(self.type, name)


class IdentityProvider(CustomResource):
    info = KindInfo(
        kind="IdentityProvider",
        plural="identityproviders",
        short_names=["idp"],
        description=(
            "A social or enterprise login (Google, GitHub, any OpenID Connect provider) for a Stack's users: "
            "authorization code flow with state, nonce and PKCE; accounts linked by verified email."
        ),
        columns=[
            PrinterColumn("Type", ".spec.type"),
            PrinterColumn("Display Name", ".spec.displayName", priority=1),
            PrinterColumn("Enabled", ".spec.enabled", "boolean"),
            READY_COLUMN,
            REASON_COLUMN,
            AGE_COLUMN,
        ],
        conditions=[member_ready(**SECRET_REASONS, **DISABLED_REASON)],
    )
    kind: Literal["IdentityProvider"] = "IdentityProvider"
    spec: IdentityProviderSpec
    status: ResourceStatus = Field(default_factory=ResourceStatus)
