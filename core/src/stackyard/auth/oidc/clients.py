"""The OIDCClients in force: lookup, client authentication and redirect URI matching.

Client authentication (RFC 6749 §2.3.1, OpenID Connect Core §9):
- `client_secret_basic`: `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`;
  the id and secret are form-url-decoded after base64 (so a secret with `:` or `%` works);
- `client_secret_post`: `client_id` and `client_secret` in the form body;
- `none`: a public client sends only `client_id` (it must use PKCE).
Using two methods in one request is refused. A secret is compared in constant time with
every secret the client has now (the current one, and the previous one during a rotation's
grace period); a public client that sends a secret is refused.

Redirect URIs match exactly, as strings (no normalisation, no prefixes, no wildcards), with
one exception from RFC 8252 §7.3, for public clients only (native apps, which listen on an
ephemeral port): for a registered loopback `http://127.0.0.1`, `[::1]` or `localhost` URI,
any port is accepted; the scheme, host, path and query must still be equal. A confidential
client's loopback URI matches exactly, port included (RFC 8252 is about native apps; a
server-side app listens on a known port)."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote_plus, urlsplit

from ...resources.oidc import OIDCClientSpec
from .errors import INVALID_REQUEST, OAuthError

if TYPE_CHECKING:
    from ..context import AuthContext

AuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class AuthenticatedClient:
    """A client that proved who it is (or a public client that named itself)."""

    client_id: str
    spec: OIDCClientSpec
    method: AuthMethod


def find_client(ctx: AuthContext, client_id: str | None) -> OIDCClientSpec | None:
    """The enabled client with this id; None when unknown or disabled."""
    if not client_id:
        return None
    spec = ctx.oidc_clients.get(client_id)
    if spec is None or not spec.enabled:
        return None
    return spec


def secret_matches(ctx: AuthContext, client_id: str, presented: str) -> bool:
    """Constant-time comparison with each accepted secret (every one is compared)."""
    matched = False
    for secret in ctx.oidc_client_secrets.get(client_id, []):
        if secret and hmac.compare_digest(secret.encode(), presented.encode()):
            matched = True
    return matched


def _basic(authorization: str) -> tuple[str, str] | None:
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError.invalid_client("the Authorization header is not valid Basic credentials", basic=True) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError.invalid_client("the Authorization header is not valid Basic credentials", basic=True)
    return unquote_plus(client_id), unquote_plus(secret)


def authenticate_client(ctx: AuthContext, *, authorization: str | None, form: Mapping[str, str]) -> AuthenticatedClient:
    """The client of a token, introspection or revocation request, from its Authorization
    header and form. Raises OAuthError invalid_client (401 + `WWW-Authenticate: Basic` when
    the header was used) or invalid_request (two methods at once)."""
    basic = _basic(authorization) if authorization else None
    form_id, form_secret = form.get("client_id"), form.get("client_secret")
    if basic is not None:
        if form_secret is not None:
            raise OAuthError(INVALID_REQUEST, "use one client authentication method, not Basic and client_secret")
        client_id, secret = basic
        if form_id is not None and form_id != client_id:
            raise OAuthError.invalid_client("client_id does not match the Authorization header", basic=True)
        spec = find_client(ctx, client_id)
        if spec is None or not spec.has_secret or not secret_matches(ctx, client_id, secret):
            raise OAuthError.invalid_client("client authentication failed", basic=True)
        return AuthenticatedClient(client_id, spec, "client_secret_basic")
    if not form_id:
        raise OAuthError.invalid_client("no client authentication (client_id is missing)", basic=False)
    spec = find_client(ctx, form_id)
    if spec is None:
        raise OAuthError.invalid_client("client authentication failed", basic=False)
    if form_secret is not None:
        if not spec.has_secret or not secret_matches(ctx, form_id, form_secret):
            raise OAuthError.invalid_client("client authentication failed", basic=False)
        return AuthenticatedClient(form_id, spec, "client_secret_post")
    if spec.has_secret:
        raise OAuthError.invalid_client("this client must authenticate with its client secret", basic=False)
    return AuthenticatedClient(form_id, spec, "none")


def _is_loopback_http(uri: str) -> bool:
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - a malformed port raises ValueError
    except ValueError:
        return False
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS and parts.username is None


def _without_port(uri: str) -> tuple[str, str | None, str, str]:
    parts = urlsplit(uri)
    return parts.scheme, parts.hostname, parts.path, parts.query


def uri_registered(registered: list[str], uri: str | None, *, loopback_any_port: bool = False) -> bool:
    """Whether `uri` is one of `registered`: exact string equality, or, with
    `loopback_any_port` (public clients), for loopback http URIs (RFC 8252 §7.3) equality of
    everything but the port."""
    if not uri:
        return False
    if uri in registered:
        return True
    if not loopback_any_port or "#" in uri or not _is_loopback_http(uri):
        return False
    presented = _without_port(uri)
    return any(_is_loopback_http(r) and _without_port(r) == presented for r in registered)


def loopback_any_port(spec: OIDCClientSpec) -> bool:
    """RFC 8252 §7.3 (any port on a loopback URI) is for native apps: public clients only."""
    return spec.type == "public"


def redirect_uri_registered(spec: OIDCClientSpec, uri: str | None) -> bool:
    return uri_registered(list(spec.redirect_uris), uri, loopback_any_port=loopback_any_port(spec))


def post_logout_uri_registered(spec: OIDCClientSpec, uri: str | None) -> bool:
    return uri_registered(list(spec.post_logout_redirect_uris), uri, loopback_any_port=loopback_any_port(spec))
