"""The OpenID Provider's response bodies (/.well-known/openid-configuration, /oauth2/*), as the
OAuth 2.0 and OpenID Connect specifications name their members (snake_case). They describe
the api's answers in its OpenAPI document; the answers themselves come from
`stackyard.auth.oidc`. OIDC client libraries, not the SDK, call these endpoints."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .contract import OpenIdConfiguration


class ProviderMetadata(OpenIdConfiguration):
    """OpenID Connect Discovery 1.0 / RFC 8414 metadata of the Stack's OpenID Provider."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "issuer": "https://auth.acme.dev",
                    "authorization_endpoint": "https://auth.acme.dev/oauth2/authorize",
                    "token_endpoint": "https://auth.acme.dev/oauth2/token",
                    "userinfo_endpoint": "https://auth.acme.dev/oauth2/userinfo",
                    "jwks_uri": "https://auth.acme.dev/.well-known/jwks.json",
                    "revocation_endpoint": "https://auth.acme.dev/oauth2/revoke",
                    "introspection_endpoint": "https://auth.acme.dev/oauth2/introspect",
                    "end_session_endpoint": "https://auth.acme.dev/oauth2/logout",
                    "scopes_supported": ["openid", "profile", "email", "offline_access"],
                    "response_types_supported": ["code"],
                    "response_modes_supported": ["query", "form_post"],
                    "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["EdDSA"],
                    "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
                    "code_challenge_methods_supported": ["S256"],
                    "claims_supported": ["iss", "sub", "aud", "exp", "iat", "email", "name"],
                    "authorization_response_iss_parameter_supported": True,
                }
            ]
        },
    )
    authorization_endpoint: str
    revocation_endpoint: str
    introspection_endpoint: str
    end_session_endpoint: str
    scopes_supported: list[str] = Field(
        description="The standard scopes and every scope a registered OIDCClient may ask for."
    )
    grant_types_supported: list[str]
    response_modes_supported: list[str]
    code_challenge_methods_supported: list[str] = Field(description="PKCE: S256 only (plain is refused).")


class TokenResponse(BaseModel):
    """A successful token response (RFC 6749 §5.1, OpenID Connect Core §3.1.3.3)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "eyJhbGciOiJFZERTQSIsImtpZCI6IjIwMjYxMTI2LWFiIiwidHlwIjoiYXQrand0In0.e30.sig",
                    "token_type": "Bearer",
                    "expires_in": 900,
                    "scope": "openid email profile",
                    "id_token": "eyJhbGciOiJFZERTQSIsImtpZCI6IjIwMjYxMTI2LWFiIiwidHlwIjoiSldUIn0.e30.sig",
                    "refresh_token": "rt_ses_4f1c.Zq3T0s9...",
                }
            ]
        }
    )
    access_token: str = Field(description="A JWT (typ at+jwt) with client_id, scope and, for a user, sid.")
    token_type: str = Field(description="Always Bearer.")
    expires_in: int = Field(description="Seconds until the access token expires.")
    scope: str = Field(description="The scopes granted, space-separated.")
    id_token: str | None = Field(default=None, description="With the openid scope: the ID token.")
    refresh_token: str | None = Field(
        default=None,
        description="When the client has the refresh_token grant and a user is involved; one use (rotated).",
    )


class OAuthErrorBody(BaseModel):
    """An error of the token, revocation, introspection or userinfo endpoint (RFC 6749 §5.2)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"error": "invalid_grant", "error_description": "the authorization code is invalid or expired"}
            ]
        }
    )
    error: str = Field(
        description=(
            "invalid_request, invalid_client, invalid_grant, unauthorized_client, unsupported_grant_type, "
            "invalid_scope (token); invalid_token, insufficient_scope (userinfo)."
        )
    )
    error_description: str | None = Field(default=None, description="For the developer; never holds a secret.")


class UserInfo(BaseModel):
    """The user's claims (OpenID Connect Core §5.3.2), by the access token's scopes."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "sub": "usr_01HZX3",
                    "email": "ana@example.com",
                    "email_verified": True,
                    "name": "Ana",
                    "updated_at": 1795000000,
                }
            ]
        },
    )
    sub: str = Field(description="The user's id (as in the ID token).")
    email: str | None = Field(default=None, description="Scope email.")
    email_verified: bool | None = Field(default=None, description="Scope email.")
    name: str | None = Field(default=None, description="Scope profile.")
    updated_at: int | None = Field(default=None, description="Scope profile: Unix time of the last change.")


class IntrospectionResponse(BaseModel):
    """RFC 7662 §2.2: `active` false for a token that is unknown, expired, revoked or another
    client's (nothing else is said then)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "active": True,
                    "token_type": "Bearer",
                    "scope": "openid email",
                    "client_id": "shop",
                    "sub": "usr_01HZX3",
                    "exp": 1795000900,
                    "iat": 1795000000,
                    "iss": "https://auth.acme.dev",
                    "aud": "https://api.acme.dev",
                },
                {"active": False},
            ]
        },
    )
    active: bool
    token_type: str | None = None
    scope: str | None = None
    client_id: str | None = None
    sub: str | None = None
    exp: int | None = None
    iat: int | None = None
    iss: str | None = None
    aud: str | list[str] | None = None
    sid: str | None = None
