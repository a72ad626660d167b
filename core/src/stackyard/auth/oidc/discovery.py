"""The provider's metadata (OpenID Connect Discovery 1.0, RFC 8414), served at
`/.well-known/openid-configuration`. Every URL is the issuer plus one of `PATHS`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ...resources.oidc import STANDARD_SCOPES

if TYPE_CHECKING:
    from ..context import AuthContext

PATHS = {
    "authorization_endpoint": "/oauth2/authorize",
    "token_endpoint": "/oauth2/token",
    "userinfo_endpoint": "/oauth2/userinfo",
    "jwks_uri": "/.well-known/jwks.json",
    "revocation_endpoint": "/oauth2/revoke",
    "introspection_endpoint": "/oauth2/introspect",
    "end_session_endpoint": "/oauth2/logout",
}
CONTINUE_PATH = "/oauth2/authorize/continue"
LOGIN_PAGE = "/oauth2/ui/login"
SIGNUP_PAGE = "/oauth2/ui/signup"
CONSENT_PAGE = "/oauth2/ui/consent"
LOGOUT_PAGE = "/oauth2/ui/logout"
LOGGED_OUT_PAGE = "/oauth2/ui/logged-out"

CLAIMS_SUPPORTED = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "azp",
    "sid",
    "amr",
    "at_hash",
    "email",
    "email_verified",
    "name",
    "updated_at",
]
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
PROMPT_VALUES = ["none", "login", "consent", "select_account", "create"]
"""`create`: OpenID Connect "Initiating User Registration via OpenID Connect 1.0", the sign-up
page first (listed in discovery only while sign-up is open; else it shows the login page)."""
RESPONSE_MODES = ["query", "form_post"]


def signup_open(ctx: AuthContext) -> bool:
    """Whether the hosted pages offer sign-up: the Stack lets anyone sign up and its hosted
    pages offer passwords."""
    return ctx.settings.allow_signup and ctx.settings.hosted_pages.password


def url(ctx: AuthContext, path: str) -> str:
    """An absolute URL of the provider: the issuer plus `path`."""
    return ctx.issuer.rstrip("/") + path


def metadata(ctx: AuthContext, now: datetime | None = None) -> dict[str, Any]:
    """The discovery document. Scopes: the standard ones plus every scope an enabled
    client may ask for; signing algorithms: those of the key set's published keys (both
    during a change of algorithm), or the Stack's `signingAlgorithm` before it has a key."""
    moment = now or ctx.clock()
    algs = sorted({k.alg for k in ctx.keys.keys if k.published(moment)}) or [ctx.settings.signing_algorithm]
    scopes = list(STANDARD_SCOPES) + sorted(
        {s for spec in ctx.oidc_clients.values() if spec.enabled for s in spec.scopes} - set(STANDARD_SCOPES)
    )
    document: dict[str, Any] = {"issuer": ctx.issuer}
    document |= {name: url(ctx, path) for name, path in PATHS.items()}
    document |= {
        "scopes_supported": scopes,
        "response_types_supported": ["code"],
        "response_modes_supported": RESPONSE_MODES,
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": CLAIMS_SUPPORTED,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "prompt_values_supported": [p for p in PROMPT_VALUES if p != "create" or signup_open(ctx)],
        "authorization_response_iss_parameter_supported": True,
        "frontchannel_logout_supported": False,
        "backchannel_logout_supported": False,
    }
    return document
