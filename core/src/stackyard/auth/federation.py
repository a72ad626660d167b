"""Login with Google, GitHub or any OpenID provider, from the Stack's `IdentityProvider`s.

The authorization code flow (RFC 6749) with the protections current guidance asks for
(RFC 9700): `state` against login CSRF, PKCE S256 binding the code to this login (RFC 7636),
and, for OpenID providers, a `nonce` checked in the signed id_token. The state, nonce and
code_verifier live in a single-use `oauth-state` token for 10 minutes, with the provider,
the page to return to (`redirect_to`, which must be under appUrl or an allowed URL) and the
mode:

- cookie: the callback starts the session in HttpOnly cookies and redirects to redirect_to;
- code: the callback redirects to redirect_to with a one-time `code` (60 s) that the app's
  backend exchanges at POST /v1/auth/oauth/exchange for tokens (optionally bound to the
  app's own PKCE challenge).

Who logs in (see `link_identity`): an identity (provider, subject) already linked is that
user; else an account with the same email is linked only when the provider says the email
is verified, and either the account's own email is verified or the provider allows linking
by verified email (then the account's unverified password is dropped, so that whoever
registered the address without proving it cannot keep a way in); else, when sign-up is
allowed, a new account. An email the provider has not verified never links (409).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote_plus, urlencode, urlsplit, urlunsplit

import httpx
import jwt

from ..config.runtime import credential_key
from ..problems import Conflict, NotFound, Problem, ServiceUnavailable, UnprocessableContent
from ..resources.auth import GITHUB_API_URL, GITHUB_AUTHORIZATION_URL, GITHUB_TOKEN_URL, IdentityProviderSpec
from ..resources.stack import AuthSettings
from .context import AuthContext
from .errors import EmailTaken, SignupDisabled
from .flows import MfaChallenge, finish_first_factor
from .sessions import ClientInfo, TokenPair
from .users import Identity, UserRecord, identity_key

STATE_SECONDS = 600
CODE_SECONDS = 60
CACHE_SECONDS = 600
CLOCK_LEEWAY = 60
LoginMode = Literal["cookie", "code"]
ID_TOKEN_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"})
"""Asymmetric only: an HS256 id_token would be signed with the client secret, and none is no signature."""
GITHUB_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}


# -- problems ---------------------------------------------------------------------------


class IdentityProviderNotFound(NotFound):
    slug, title = "identity-provider-not-found", "No such identity provider"


class RedirectNotAllowed(Problem):
    status, slug, title = 400, "redirect-not-allowed", "Redirect URL not allowed"


class InvalidOAuthState(Problem):
    """The callback's state is unknown, expired, already used or for another provider."""

    status, slug, title = 400, "invalid-oauth-state", "Invalid or expired login state"


class OAuthLoginFailed(Problem):
    """The provider's answer does not prove who the user is (code refused, id_token invalid)."""

    status, slug, title = 401, "oauth-login-failed", "Login with the identity provider failed"


class IdentityProviderUnavailable(ServiceUnavailable):
    status, slug, title = 502, "identity-provider-unavailable", "Identity provider unavailable"


class IdentityEmailUnverified(Conflict):
    slug, title = "identity-email-unverified", "The identity provider has not verified this email address"


class AccountLinkRefused(Conflict):
    slug, title = "account-link-refused", "An account with this email exists and cannot be linked"


class IdentityEmailMissing(UnprocessableContent):
    slug, title = "identity-email-missing", "The identity provider gave no email address"


class LastLoginMethod(Conflict):
    slug, title = "last-login-method", "This is the account's only way to log in"


# -- redirects --------------------------------------------------------------------------


def _origin_and_path(url: str) -> tuple[str, str, str] | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return None
    default_port = 443 if parts.scheme == "https" else 80
    origin = f"{parts.scheme}://{parts.hostname.lower()}:{parts.port or default_port}"
    return origin, parts.path or "/", parts.query


def redirect_allowed(url: str, settings: AuthSettings) -> bool:
    """Whether `url` is under appUrl or one of spec.auth.allowedRedirectUrls: the same scheme,
    host and port, and a path under the allowed one at a segment boundary (so
    https://app.acme.dev.evil.com and https://app.acme.dev/docs-evil are not under
    https://app.acme.dev and https://app.acme.dev/docs)."""
    target = _origin_and_path(url)
    if target is None or "\\" in url or any(c in url for c in "\r\n\t"):
        return False
    for allowed in [settings.app_url, *settings.allowed_redirect_urls]:
        base = _origin_and_path(allowed) if allowed else None
        if base is None or base[0] != target[0]:
            continue
        prefix, path = base[1], target[1]
        if path == prefix or path.startswith(prefix if prefix.endswith("/") else prefix + "/"):
            return True
    return False


def with_query(url: str, params: dict[str, str]) -> str:
    """`url` with `params` added to its query (the fragment dropped)."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


# -- PKCE -------------------------------------------------------------------------------


def pkce_challenge(verifier: str) -> str:
    """S256: BASE64URL(SHA256(verifier)) without padding (RFC 7636 §4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


# -- providers --------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str
    userinfo: str | None = None
    jwks_uri: str | None = None
    issuer: str | None = None
    auth_methods: tuple[str, ...] = ()


@dataclass
class _Cached:
    value: Any
    until: float


_discovery: dict[str, _Cached] = {}
_jwks: dict[str, _Cached] = {}


async def _get_json(http: httpx.AsyncClient, url: str, what: str, **kwargs: Any) -> Any:
    try:
        answer = await http.get(url, **kwargs)
    except httpx.HTTPError as exc:
        raise IdentityProviderUnavailable(f"{what} could not be fetched ({type(exc).__name__})") from None
    if answer.status_code != 200:
        raise IdentityProviderUnavailable(f"{what} answered HTTP {answer.status_code}")
    try:
        return answer.json()
    except ValueError:
        raise IdentityProviderUnavailable(f"{what} is not JSON") from None


async def discover(http: httpx.AsyncClient, issuer: str) -> dict[str, Any]:
    """The issuer's OpenID discovery document, cached for 10 minutes; its `issuer` must be
    the configured one (OpenID Connect Discovery §4.3)."""
    cached = _discovery.get(issuer)
    if cached is not None and cached.until > time.monotonic():
        document: dict[str, Any] = cached.value
        return document
    document = await _get_json(
        http, f"{issuer}/.well-known/openid-configuration", f"the discovery document of {issuer}"
    )
    if not isinstance(document, dict) or str(document.get("issuer", "")).rstrip("/") != issuer:
        raise IdentityProviderUnavailable(f"the discovery document of {issuer} names another issuer")
    for needed in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(document.get(needed), str):
            raise IdentityProviderUnavailable(f"the discovery document of {issuer} has no {needed}")
    _discovery[issuer] = _Cached(document, time.monotonic() + CACHE_SECONDS)
    return document


async def signing_keys(http: httpx.AsyncClient, jwks_uri: str, *, refresh: bool = False) -> jwt.PyJWKSet:
    """The provider's JWKS, cached for 10 minutes; `refresh` fetches it again (an unknown kid:
    the provider rotated its keys)."""
    cached = _jwks.get(jwks_uri)
    if cached is not None and cached.until > time.monotonic() and not refresh:
        keys: jwt.PyJWKSet = cached.value
        return keys
    document = await _get_json(http, jwks_uri, "the provider's JWKS")
    try:
        keys = jwt.PyJWKSet.from_dict(document)
    except jwt.PyJWTError as exc:
        raise IdentityProviderUnavailable(f"the provider's JWKS is unusable: {exc}") from None
    _jwks[jwks_uri] = _Cached(keys, time.monotonic() + CACHE_SECONDS)
    return keys


def forget_cached_metadata() -> None:
    """Drop cached discovery documents and key sets (tests; a provider replaced in place)."""
    _discovery.clear()
    _jwks.clear()


async def endpoints(http: httpx.AsyncClient, spec: IdentityProviderSpec) -> Endpoints:
    if spec.type == "github":
        return Endpoints(
            authorization=spec.authorization_url or GITHUB_AUTHORIZATION_URL,
            token=spec.token_url or GITHUB_TOKEN_URL,
            auth_methods=("client_secret_post",),
        )
    issuer = spec.issuer_url()
    assert issuer is not None  # the model requires it for oidc; google's is fixed
    document = await discover(http, issuer)
    methods = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    return Endpoints(
        authorization=document["authorization_endpoint"],
        token=document["token_endpoint"],
        userinfo=document.get("userinfo_endpoint"),
        jwks_uri=document["jwks_uri"],
        issuer=issuer,
        auth_methods=tuple(str(m) for m in methods),
    )


def token_auth_method(spec: IdentityProviderSpec, found: Endpoints) -> str:
    """How to send the client secret: the spec's choice, else basic when the provider
    supports it (the default of RFC 6749 §2.3.1), else post; Google and GitHub take post."""
    if spec.token_endpoint_auth_method:
        return spec.token_endpoint_auth_method
    if spec.type in ("github", "google"):
        return "client_secret_post"
    return "client_secret_basic" if "client_secret_basic" in found.auth_methods else "client_secret_post"


def provider_spec(ctx: AuthContext, name: str) -> IdentityProviderSpec:
    spec = ctx.identity_providers.get(name)
    if not isinstance(spec, IdentityProviderSpec) or not spec.enabled:
        raise IdentityProviderNotFound(f"no enabled IdentityProvider {name!r} in this Stack", provider=name)
    return spec


def enabled_providers(ctx: AuthContext) -> list[dict[str, str]]:
    """What a login page shows: name, type and label of each enabled provider (no secret)."""
    return [
        {"name": name, "type": spec.type, "displayName": spec.label(name)}
        for name, spec in sorted(ctx.identity_providers.items())
        if isinstance(spec, IdentityProviderSpec) and spec.enabled
    ]


# -- the flow ---------------------------------------------------------------------------


async def begin_login(
    ctx: AuthContext,
    http: httpx.AsyncClient,
    name: str,
    *,
    callback_url: str,
    redirect_to: str | None,
    mode: LoginMode,
    app_code_challenge: str | None = None,
) -> str:
    """The provider's authorization URL for a new login; the state behind it is kept 10 minutes."""
    spec = provider_spec(ctx, name)
    target = redirect_to or ctx.settings.app_url
    if not target:
        raise RedirectNotAllowed("give redirect_to (or set spec.auth.appUrl in the Stack)")
    if not redirect_allowed(target, ctx.settings):
        raise RedirectNotAllowed(
            "redirect_to must be under spec.auth.appUrl or one of spec.auth.allowedRedirectUrls", redirectTo=target
        )
    if app_code_challenge is not None and mode != "code":
        raise Problem("code_challenge is for mode=code (it binds the one-time login code)")
    subject = {"redirectTo": target, "mode": mode, "appChallenge": app_code_challenge}
    url, _ = await _authorization_url(ctx, http, spec, name, callback_url, subject)
    return url


async def begin_hosted_login(
    ctx: AuthContext, http: httpx.AsyncClient, name: str, *, callback_url: str, request_id: str
) -> tuple[str, str]:
    """(the provider's authorization URL, the state) for a login from the OpenID Provider's
    hosted pages: the state remembers the waiting authorization request `request_id` instead
    of a page of the app, and only `take_state(..., hosted=True)` takes it. The caller binds
    the state to the browser (a cookie) and comes back to `callback_url`."""
    spec = provider_spec(ctx, name)
    subject = {"redirectTo": "", "mode": "hosted", "appChallenge": None, "request": request_id}
    return await _authorization_url(ctx, http, spec, name, callback_url, subject)


async def _authorization_url(
    ctx: AuthContext,
    http: httpx.AsyncClient,
    spec: IdentityProviderSpec,
    name: str,
    callback_url: str,
    subject: dict[str, Any],
) -> tuple[str, str]:
    """(the provider's authorization URL, its state); the state behind it is kept 10 minutes."""
    found = await endpoints(http, spec)
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(24)
    subject = subject | {"provider": name, "verifier": verifier, "nonce": nonce, "callback": callback_url}
    state = await ctx.onetime.issue("oauth-state", subject, STATE_SECONDS)
    params = {
        "response_type": "code",
        "client_id": spec.client_id,
        "redirect_uri": callback_url,
        "scope": " ".join(spec.requested_scopes()),
        "state": state,
        "code_challenge": pkce_challenge(verifier),
        "code_challenge_method": "S256",
    }
    if spec.oidc:
        params["nonce"] = nonce
    separator = "&" if urlsplit(found.authorization).query else "?"
    return found.authorization + separator + urlencode(params), state


@dataclass(frozen=True)
class ProviderIdentity:
    """Who the provider says the user is."""

    subject: str
    email: str | None
    email_verified: bool
    profile: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CallbackState:
    provider: str
    redirect_to: str
    mode: LoginMode | Literal["hosted"]
    verifier: str
    nonce: str
    callback: str
    app_challenge: str | None
    request_id: str | None = None
    """hosted mode: the authorization request waiting at the OpenID Provider's pages."""


async def take_state(ctx: AuthContext, name: str, state: str | None, *, hosted: bool = False) -> CallbackState:
    """The login this callback belongs to, once (a second use of the state is refused). The
    api's callback takes only its own logins, the hosted pages' (`hosted`) only theirs."""
    subject = await ctx.onetime.consume("oauth-state", state or "")
    if subject is None or subject.get("provider") != name or (subject.get("mode") == "hosted") != hosted:
        raise InvalidOAuthState("the login state is unknown, expired or already used: start the login again")
    return CallbackState(
        provider=name,
        redirect_to=subject["redirectTo"],
        mode=subject["mode"],
        verifier=subject["verifier"],
        nonce=subject["nonce"],
        callback=subject["callback"],
        app_challenge=subject.get("appChallenge"),
        request_id=subject.get("request"),
    )


def provider_error_redirect(state: CallbackState, error: str, description: str | None) -> str:
    """Where a provider's refusal (error=access_denied, ...) sends the browser: redirect_to
    with error and error_description (the provider's words, shortened)."""
    params = {"error": error[:100]}
    if description:
        params["error_description"] = description[:300]
    return with_query(state.redirect_to, params)


async def identify(
    ctx: AuthContext,
    http: httpx.AsyncClient,
    state: CallbackState,
    code: str,
    *,
    secret: str | None,
    iss: str | None = None,
) -> ProviderIdentity:
    """Redeem the code (with the PKCE verifier and the client secret, from the Stack's
    credentials under `client_secret_key`) and learn who logged in."""
    spec = provider_spec(ctx, state.provider)
    if not secret:
        raise IdentityProviderUnavailable(f"the client secret of IdentityProvider {state.provider!r} is not set")
    found = await endpoints(http, spec)
    if iss is not None and found.issuer is not None and iss.rstrip("/") != found.issuer:
        raise OAuthLoginFailed("the authorization response comes from another issuer (RFC 9207)")
    tokens = await exchange_code(http, spec, found, secret, code, state)
    if spec.type == "github":
        return await github_identity(http, spec, tokens["access_token"])
    claims = await verified_id_token(http, spec, found, tokens.get("id_token"), state.nonce)
    return await oidc_identity(http, found, claims, tokens["access_token"])


def client_secret_key(name: str) -> str:
    """Where the operator puts the provider's client secret in the Stack's credentials."""
    return credential_key("IdentityProvider", name, "clientSecret")


async def exchange_code(
    http: httpx.AsyncClient,
    spec: IdentityProviderSpec,
    found: Endpoints,
    secret: str,
    code: str,
    state: CallbackState,
) -> dict[str, Any]:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": state.callback,
        "code_verifier": state.verifier,
    }
    headers = {"Accept": "application/json"}
    if token_auth_method(spec, found) == "client_secret_basic":
        # RFC 6749 §2.3.1: the id and secret are form-encoded before Basic encoding.
        pair = f"{quote_plus(spec.client_id)}:{quote_plus(secret)}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    else:
        form |= {"client_id": spec.client_id, "client_secret": secret}
    try:
        answer = await http.post(found.token, data=form, headers=headers)
    except httpx.HTTPError as exc:
        raise IdentityProviderUnavailable(f"the token endpoint could not be reached ({type(exc).__name__})") from None
    try:
        body = answer.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if answer.status_code >= 500:
        raise IdentityProviderUnavailable(f"the token endpoint answered HTTP {answer.status_code}")
    # GitHub answers its errors with 200 and an error field.
    if answer.status_code != 200 or "error" in body or not isinstance(body.get("access_token"), str):
        error = str(body.get("error") or f"HTTP {answer.status_code}")[:100]
        raise OAuthLoginFailed(f"the provider refused the authorization code ({error})", providerError=error)
    return body


async def verified_id_token(
    http: httpx.AsyncClient, spec: IdentityProviderSpec, found: Endpoints, token: Any, nonce: str
) -> dict[str, Any]:
    if not isinstance(token, str) or not token:
        raise OAuthLoginFailed("the provider answered no id_token (is the openid scope granted?)")
    assert found.jwks_uri is not None and found.issuer is not None
    keys = await signing_keys(http, found.jwks_uri)
    try:
        key = pick_key(keys, token)
    except KeyError:
        key = pick_key(await signing_keys(http, found.jwks_uri, refresh=True), token)
    # Google documents both forms of its issuer in id_tokens.
    issuers = [found.issuer, "accounts.google.com"] if spec.type == "google" else [found.issuer]
    return check_id_token(token, key, issuer=issuers, client_id=spec.client_id, nonce=nonce)


def pick_key(keys: jwt.PyJWKSet, token: str) -> jwt.PyJWK:
    """The JWK that signed `token` (by kid; the only key when the token names none)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise OAuthLoginFailed("the id_token is not a JWS") from None
    if header.get("alg") not in ID_TOKEN_ALGORITHMS:
        raise OAuthLoginFailed(f"the id_token's algorithm {header.get('alg')!r} is not accepted")
    kid = header.get("kid")
    if kid is None:
        if len(keys.keys) == 1:
            return keys.keys[0]
        raise OAuthLoginFailed("the id_token names no key (kid) and the provider has several")
    for key in keys.keys:
        if key.key_id == kid:
            return key
    raise KeyError(kid)


def check_id_token(
    token: str, key: jwt.PyJWK, *, issuer: str | list[str], client_id: str, nonce: str
) -> dict[str, Any]:
    """OpenID Connect Core §3.1.3.7: signature, iss, aud, exp (and iat), azp when there are
    several audiences, and the nonce of this login."""
    alg = jwt.get_unverified_header(token).get("alg")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[str(alg)],
            audience=client_id,
            issuer=issuer,
            leeway=CLOCK_LEEWAY,
            options={"require": ["iss", "sub", "aud", "exp", "iat"]},
        )
    except jwt.PyJWTError as exc:
        raise OAuthLoginFailed(f"the id_token is not valid: {exc}") from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if (len(audiences) > 1 or "azp" in claims) and claims.get("azp") != client_id:
        raise OAuthLoginFailed("the id_token was issued to another client (azp)")
    if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
        raise OAuthLoginFailed("the id_token's nonce is not this login's")
    return claims


def _verified(value: Any) -> bool:
    # Some providers send "true" as a string.
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _profile(claims: dict[str, Any]) -> dict[str, Any]:
    profile = {
        "name": claims.get("name"),
        "givenName": claims.get("given_name"),
        "familyName": claims.get("family_name"),
        "picture": claims.get("picture"),
        "locale": claims.get("locale"),
    }
    return {k: str(v)[:500] for k, v in profile.items() if isinstance(v, str) and v}


async def oidc_identity(
    http: httpx.AsyncClient, found: Endpoints, claims: dict[str, Any], access_token: str
) -> ProviderIdentity:
    """From the id_token's claims; the userinfo endpoint fills in the email when the id_token
    does not carry it (its sub must be the id_token's)."""
    if "email" not in claims and found.userinfo:
        info = await _get_json(
            http, found.userinfo, "the userinfo endpoint", headers={"Authorization": f"Bearer {access_token}"}
        )
        if not isinstance(info, dict) or info.get("sub") != claims["sub"]:
            raise OAuthLoginFailed("the userinfo answer is about another subject")
        claims = {**info, **claims}
    email = claims.get("email")
    return ProviderIdentity(
        subject=str(claims["sub"]),
        email=email if isinstance(email, str) and email else None,
        email_verified=_verified(claims.get("email_verified")),
        profile=_profile(claims),
    )


async def github_identity(http: httpx.AsyncClient, spec: IdentityProviderSpec, access_token: str) -> ProviderIdentity:
    """GET /user and /user/emails: the primary email, verified or not as GitHub says."""
    api = (spec.api_url or GITHUB_API_URL).rstrip("/")
    headers = GITHUB_HEADERS | {"Authorization": f"Bearer {access_token}"}
    user = await _get_json(http, f"{api}/user", "GitHub's /user", headers=headers)
    if not isinstance(user, dict) or "id" not in user:
        raise OAuthLoginFailed("GitHub's /user answer has no id")
    email, verified = user.get("email"), False
    try:
        emails = await _get_json(http, f"{api}/user/emails", "GitHub's /user/emails", headers=headers)
    except IdentityProviderUnavailable:  # no user:email scope: the public email, unverified
        emails = []
    for entry in emails if isinstance(emails, list) else []:
        if isinstance(entry, dict) and entry.get("primary"):
            email, verified = entry.get("email"), entry.get("verified") is True
    profile = {"name": user.get("name") or user.get("login"), "picture": user.get("avatar_url")}
    return ProviderIdentity(
        subject=str(user["id"]),
        email=email if isinstance(email, str) and email else None,
        email_verified=verified,
        profile={k: str(v)[:500] for k, v in profile.items() if isinstance(v, str) and v},
    )


# -- who logs in ------------------------------------------------------------------------


async def link_identity(ctx: AuthContext, name: str, identity: ProviderIdentity, client: ClientInfo) -> UserRecord:
    """The user this identity logs in as: linked before, linked now by verified email, or new."""
    spec = provider_spec(ctx, name)
    user = await ctx.users.by_identity(name, identity.subject)
    if user is not None:
        return user
    if identity.email is None:
        raise IdentityEmailMissing(f"{spec.label(name)} did not share an email address (check the scopes)")
    linked = Identity(
        provider=name,
        subject=identity.subject,
        email=identity.email,
        email_verified=identity.email_verified,
        linked_at=ctx.clock(),
    )
    existing = await ctx.users.by_email(identity.email)
    if existing is None:
        if not (spec.allow_signup and ctx.settings.allow_signup):
            raise SignupDisabled(f"no account uses this email address, and sign-up with {spec.label(name)} is closed")
        try:
            created = await ctx.users.create(
                identity.email,
                email_verified=identity.email_verified,
                profile=identity.profile,
                identities=[linked],
                now=ctx.clock(),
            )
        except EmailTaken:  # made a moment ago (by this same login, twice?): as any existing account
            again = await ctx.users.by_identity(name, identity.subject)
            if again is not None:
                return again
            existing = await ctx.users.by_email(identity.email)
            if existing is None:
                raise
        else:
            await ctx.audit.record("user.created", user_id=created.id, client=client, method=f"oauth:{name}")
            await ctx.audit.record("identity.linked", user_id=created.id, client=client, provider=name)
            return created
    return await _link_existing(ctx, spec, name, existing, linked, client)


async def _link_existing(
    ctx: AuthContext, spec: IdentityProviderSpec, name: str, user: UserRecord, linked: Identity, client: ClientInfo
) -> UserRecord:
    if not linked.email_verified:
        raise IdentityEmailUnverified(
            f"an account uses this email address, and {spec.label(name)} has not verified it: verify the address "
            f"with {spec.label(name)}, or log in another way"
        )
    fields: dict[str, Any] = {}
    if not user.email_verified:
        if not spec.link_by_verified_email:
            raise AccountLinkRefused(
                "an account with this email address exists and its address is not verified: "
                "confirm it (or log in) first"
            )
        # Whoever made this account never proved the address; its owner just did. A password
        # set by someone else must not survive, nor their sessions.
        fields = {"emailVerified": True, "passwordHash": None}
        await ctx.sessions.revoke_all(user.id, reason="identity-linked")
    await ctx.users.add_identity(user.id, linked)
    if fields:
        await ctx.users.set_fields(user.id, fields, now=ctx.clock())
        await ctx.audit.record("email.verified", user_id=user.id, client=client, method=f"oauth:{name}")
    await ctx.audit.record("identity.linked", user_id=user.id, client=client, provider=name, byEmail=True)
    refreshed = await ctx.users.by_id(user.id)
    return refreshed or user


async def finish_login(
    ctx: AuthContext, user: UserRecord, client: ClientInfo, name: str, *, session_kind: str = ""
) -> TokenPair | MfaChallenge:
    """The session (or, when the account has a second factor, the MFA challenge); `session_kind`
    "op" makes it the OpenID Provider's browser session (the hosted pages)."""
    return await finish_first_factor(ctx, user, client, f"oauth:{name}", session_kind=session_kind)


async def issue_login_code(ctx: AuthContext, user: UserRecord, state: CallbackState, client: ClientInfo) -> str:
    """Code mode: a one-time code for the app's backend (60 s), bound to the login's client
    and, when the app gave one, to its PKCE challenge."""
    subject = {
        "user": user.id,
        "provider": state.provider,
        "ip": client.ip,
        "ua": client.user_agent,
        "challenge": state.app_challenge,
    }
    return await ctx.onetime.issue("oauth-code", subject, CODE_SECONDS)


async def exchange_login_code(ctx: AuthContext, code: str, code_verifier: str | None) -> TokenPair | MfaChallenge:
    subject = await ctx.onetime.consume("oauth-code", code)
    if subject is None:
        raise InvalidOAuthState("the login code is unknown, expired or already used")
    challenge = subject.get("challenge")
    if challenge is not None and (
        code_verifier is None or not hmac.compare_digest(pkce_challenge(code_verifier), str(challenge))
    ):
        raise InvalidOAuthState("the login code needs the code_verifier of its code_challenge")
    user = await ctx.users.by_id(subject["user"])
    if user is None:
        raise InvalidOAuthState("the login code's account no longer exists")
    client = ClientInfo(ip=subject.get("ip"), user_agent=subject.get("ua"))
    return await finish_login(ctx, user, client, subject["provider"])


# -- identities of a user -----------------------------------------------------------------


def identities_of(ctx: AuthContext, user: UserRecord) -> list[dict[str, Any]]:
    specs = ctx.identity_providers
    return [
        {
            "provider": i.provider,
            "type": specs[i.provider].type if i.provider in specs else None,
            "displayName": specs[i.provider].label(i.provider) if i.provider in specs else None,
            "email": i.email,
            "emailVerified": i.email_verified,
            "linkedAt": i.linked_at,
        }
        for i in user.identities
    ]


async def unlink(ctx: AuthContext, user: UserRecord, name: str, client: ClientInfo) -> None:
    """Remove the user's identity at `name`, unless it is their only way to log in (no
    password, no passkey, no other identity): a password can be set first (forgot password)."""
    found = [i for i in user.identities if i.provider == name]
    if not found:
        raise IdentityProviderNotFound(f"no identity from {name!r} is linked to this account", provider=name)
    if user.password_hash is None and user.passkey_count == 0 and len(found) == len(user.identities):
        raise LastLoginMethod(f"{name} is this account's only way to log in: set a password or add a passkey first")
    # The lists are written whole: $pull with a condition is not in every MongoDB-wire server.
    kept = [i for i in user.identities if i.provider != name]
    await ctx.users.set_fields(
        user.id,
        {
            "identities": [i.document() for i in kept],
            "identityKeys": [identity_key(i.provider, i.subject) for i in kept],
        },
        now=ctx.clock(),
    )
    await ctx.audit.record("identity.unlinked", user_id=user.id, client=client, provider=name)
