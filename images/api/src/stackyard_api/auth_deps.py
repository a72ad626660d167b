"""Auth for every router: the AuthContext of the config in force, the caller's verified
access token (bearer header, or the session cookie with its CSRF check), the client's
address, and the admin API key.

`PrincipalMiddleware` verifies a bearer token once per request, before the rate limits, so
that a RateLimitPolicy keyed by `user` counts the token's subject."""

from __future__ import annotations

import base64
import hmac
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from stackyard.auth.context import AuthContext, utc_now
from stackyard.auth.errors import AuthNotConfigured, CsrfRefused, InvalidToken
from stackyard.auth.keys import KeySet
from stackyard.auth.mail import AuthMailer
from stackyard.auth.orgs import Organizations, org_claims
from stackyard.auth.passwords import PasswordHasher
from stackyard.auth.sessions import ClientInfo, LivenessCache, TokenPair
from stackyard.auth.tokens import AccessClaims, verify_access_token
from stackyard.config import (
    AUTH_ADMIN_API_KEY,
    AUTH_ENCRYPTION_KEY,
    AUTH_SIGNING_KEYS,
    AppliedConfig,
    credential_key,
)
from stackyard.db.schema import stack_index_policy
from stackyard.notify.events import PlatformEvents
from stackyard.problems import CapabilityOff, Problem
from stackyard.ratelimit.keys import client_ip, parse_networks
from stackyard.resources.base import duration_seconds
from stackyard.runtime import Runtime
from starlette.responses import Response

from .deps import RuntimeDep
from .routers import emails

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "x-csrf-token"


VERIFIED_CACHE_SIZE = 50_000


@dataclass(frozen=True)
class StackAuth:
    """What one config gives auth, parsed once: keys, issuer, audience, secrets; and the
    access tokens it verified (a token is checked once, then trusted until it expires)."""

    hash: str
    keys: KeySet
    issuer: str
    audience: str
    encryption_key: bytes | None
    admin_api_key: str | None
    oidc_client_secrets: dict[str, list[str]] = field(default_factory=dict, repr=False)
    """OIDCClient name -> its accepted client secrets (current, then previous), from the credentials."""
    verified: dict[str, AccessClaims] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, applied: AppliedConfig) -> StackAuth:
        config = applied.config
        settings = config.spec.auth
        issuer = (settings.issuer or f"http://{config.stack}-api.{config.namespace}.svc").rstrip("/")
        raw_key = applied.credentials.get(AUTH_ENCRYPTION_KEY)
        return cls(
            hash=applied.hash,
            keys=KeySet.from_json(applied.credentials.get(AUTH_SIGNING_KEYS)),
            issuer=issuer,
            audience=settings.audience or issuer,
            encryption_key=base64.b64decode(raw_key) if raw_key else None,
            admin_api_key=applied.credentials.get(AUTH_ADMIN_API_KEY) or None,
            oidc_client_secrets=oidc_client_secrets(applied),
        )

    def verify(self, token: str, now: datetime) -> AccessClaims:
        """verify_access_token, remembered per token string until the token expires. The key
        set is this config's: a new credentials Secret (keys rotated or revoked) starts afresh."""
        claims = self.verified.get(token)
        if claims is not None and now.timestamp() <= claims.exp:
            return claims
        claims = verify_access_token(token, self.keys, issuer=self.issuer, audience=self.audience, now=now)
        if len(self.verified) >= VERIFIED_CACHE_SIZE:
            self.verified.clear()
        self.verified[token] = claims
        return claims


def oidc_client_secrets(applied: AppliedConfig) -> dict[str, list[str]]:
    """The client secrets each OIDCClient with one accepts now: the current one, then the
    previous one while a rotation's grace period lasts. A client whose secret the operator
    has not written yet is absent (so it cannot authenticate, rather than with an empty secret)."""
    accepted: dict[str, list[str]] = {}
    for name, spec in sorted(applied.config.oidc_clients.items()):
        if not spec.has_secret:
            continue
        found = (
            applied.credentials.get(credential_key("OIDCClient", name, key))
            for key in ("clientSecret", "previousClientSecret")
        )
        present = [secret for secret in found if secret]
        if present:
            accepted[name] = present
    return accepted


class AuthState:
    """Kept by the app between requests: the parsed StackAuth and the AuthContext of the
    config in force, the password hasher, the sessions seen alive lately, and the databases
    whose indexes were ensured."""

    def __init__(self) -> None:
        self.hasher = PasswordHasher()
        self.liveness = LivenessCache()
        self.stack: StackAuth | None = None
        self.context: AuthContext | None = None
        self._applied: AppliedConfig | None = None
        self.indexed: set[str] = set()

    def stack_auth(self, applied: AppliedConfig) -> StackAuth:
        # Keyed on the applied config object itself: a new credentials Secret (rotated keys)
        # makes a new one even when the config's hash stays.
        if self.stack is None or self._applied is not applied:
            self.stack, self._applied, self.context = StackAuth.of(applied), applied, None
        return self.stack


def auth_state(request: Request) -> AuthState:
    state: AuthState | None = getattr(request.app.state, "auth", None)
    if state is None:
        state = request.app.state.auth = AuthState()
    return state


async def client_info(request: Request) -> ClientInfo:
    runtime: Runtime = request.app.state.runtime
    applied = runtime.live.current
    trusted = parse_networks(tuple(applied.config.spec.api.trusted_proxies)) if applied else ()
    peer = request.client.host if request.client else None
    headers = {k.lower(): v for k, v in request.headers.items()}
    return ClientInfo(ip=client_ip(peer, headers, trusted), user_agent=request.headers.get("user-agent"))


async def _mailer(runtime: Runtime, request: Request) -> AuthMailer | None:
    config = runtime.config.config
    if not config.spec.capabilities.email or not config.spec.auth.email_from:
        return None
    try:
        service = await emails.email_service(runtime, emails.email_state(request))
    except CapabilityOff:
        return None
    return AuthMailer(service, config.spec.auth, frozenset(config.email_templates), app_name=config.stack)


async def auth_context(request: Request, runtime: RuntimeDep) -> AuthContext:
    """The AuthContext of the config in force, made once per config (it holds no request state)."""
    applied = runtime.config
    config = applied.config
    if not config.spec.capabilities.auth:
        raise CapabilityOff("the auth capability is off in this Stack (spec.capabilities.auth)")
    state = auth_state(request)
    stack = state.stack_auth(applied)
    if state.context is not None:
        return state.context
    database = runtime.database
    context = AuthContext(
        redis=runtime.redis,
        db=database,
        settings=config.spec.auth,
        keys=stack.keys,
        issuer=stack.issuer,
        audience=stack.audience,
        scope=f"{config.namespace}/{config.stack}",
        hasher=state.hasher,
        encryption_key=stack.encryption_key,
        mailer=await _mailer(runtime, request),
        identity_providers=dict(getattr(config, "identity_providers", {}) or {}),
        admin_api_key=stack.admin_api_key,
        liveness=state.liveness,
        org_claims=org_claims(database),
        events=PlatformEvents.of_runtime(runtime),
        oidc_clients=dict(config.oidc_clients),
        oidc_client_secrets=stack.oidc_client_secrets,
    )
    if database.name not in state.indexed:
        policy = stack_index_policy(config)
        await context.users.ensure_indexes(policy)
        await context.audit.ensure_indexes(policy)
        await Organizations(context).ensure_indexes(policy)
        state.indexed.add(database.name)
    if state.stack is stack:
        state.context = context
    return context


# -- cookies -------------------------------------------------------------------------


@dataclass(frozen=True)
class CookieNames:
    access: str
    refresh: str
    csrf: str


def cookie_names(secure: bool) -> CookieNames:
    if secure:
        return CookieNames("__Host-sy_at", "__Secure-sy_rt", "__Host-sy_csrf")
    return CookieNames("sy_at", "sy_rt", "sy_csrf")


REFRESH_COOKIE_PATH = "/v1/auth"


def set_session_cookies(response: Response, context: AuthContext, pair: TokenPair, csrf: str) -> None:
    """Cookie mode: the tokens go to HttpOnly cookies (never to script), the CSRF token to a
    readable cookie that the app echoes in the X-CSRF-Token header."""
    settings = context.settings.cookies
    names = cookie_names(settings.secure)
    common: dict[str, Any] = {"secure": settings.secure, "samesite": settings.same_site}
    response.set_cookie(names.access, pair.access_token, max_age=pair.expires_in, path="/", httponly=True, **common)
    refresh_age = int(duration_seconds(context.settings.refresh_token_lifetime))
    response.set_cookie(
        names.refresh, pair.refresh_token, max_age=refresh_age, path=REFRESH_COOKIE_PATH, httponly=True, **common
    )
    response.set_cookie(names.csrf, csrf, max_age=refresh_age, path="/", httponly=False, **common)


def clear_session_cookies(response: Response, context: AuthContext) -> None:
    settings = context.settings.cookies
    names = cookie_names(settings.secure)
    common: dict[str, Any] = {"secure": settings.secure, "samesite": settings.same_site, "httponly": True}
    response.delete_cookie(names.access, path="/", **common)
    response.delete_cookie(names.refresh, path=REFRESH_COOKIE_PATH, **common)
    response.delete_cookie(names.csrf, path="/", secure=settings.secure, samesite=settings.same_site)


def check_csrf(request: Request, context: AuthContext) -> None:
    """Double submit: an unsafe request carried by cookies must repeat the CSRF cookie's value
    in X-CSRF-Token (a cross-site page can send the cookie but cannot read it)."""
    if request.method not in UNSAFE_METHODS:
        return
    names = cookie_names(context.settings.cookies.secure)
    cookie = request.cookies.get(names.csrf, "")
    header = request.headers.get(CSRF_HEADER, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), header.encode()):
        raise CsrfRefused("a request authenticated by cookie needs the X-CSRF-Token header (the sy_csrf cookie)")


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def cookie_token(request: Request, context: AuthContext, which: str) -> str | None:
    names = cookie_names(context.settings.cookies.secure)
    return request.cookies.get(getattr(names, which)) or None


def first_party_client(context: AuthContext, client_id: str) -> bool:
    """Whether an OIDC client's access tokens may call the api as their user: an enabled,
    first-party OIDCClient (your own app). A third-party client's tokens are for the scopes the
    user consented to, not for the user's account, sessions or data here."""
    spec = context.oidc_clients.get(client_id)
    return spec is not None and spec.enabled and not spec.third_party


async def current_claims(request: Request, context: Annotated[AuthContext, Depends(auth_context)]) -> AccessClaims:
    """The caller's verified access token, whose session is still alive; an OIDC client's
    token only when the client is first-party (`first_party_client`)."""
    token = bearer(request)
    from_cookie = False
    if token is None:
        token = cookie_token(request, context, "access")
        from_cookie = token is not None
    if token is None:
        raise InvalidToken("authenticate with an access token (Authorization: Bearer <token>) or a session cookie")
    verified = request.scope.get("state", {}).get("claims")
    claims = (
        verified
        if isinstance(verified, AccessClaims) and not from_cookie
        else verify_access_token(
            token, context.keys, issuer=context.issuer, audience=context.audience, now=context.clock()
        )
    )
    if from_cookie:
        check_csrf(request, context)
    return await accepted(context, claims)


async def accepted(context: AuthContext, claims: AccessClaims) -> AccessClaims:
    """A verified access token's claims, when the api takes them: an OIDC client's token only
    from a first-party client, and only while its session lives."""
    if claims.client_id is not None and not first_party_client(context, claims.client_id):
        raise InvalidToken(
            "an access token of a third-party OIDC client, or of one no longer registered, is not accepted here"
        )
    if not await context.sessions.alive(claims.sid):
        raise InvalidToken("the session of this token has ended")
    return claims


async def admin_key(request: Request, context: Annotated[AuthContext, Depends(auth_context)]) -> AuthContext:
    """The admin API: `Authorization: Bearer <admin API key>` (from spec.auth.adminApiKeySecretRef)."""
    if context.admin_api_key is None:
        raise AuthNotConfigured("the admin API is off: set spec.auth.adminApiKeySecretRef in the Stack")
    presented = bearer(request) or ""
    if not hmac.compare_digest(presented.encode(), context.admin_api_key.encode()):
        raise AdminKeyRefused("the admin API needs the admin API key as a bearer token")
    return context


class AdminKeyRefused(Problem):
    status, slug, title = 401, "admin-key", "Admin API key refused"


AuthDep = Annotated[AuthContext, Depends(auth_context)]
ClaimsDep = Annotated[AccessClaims, Depends(current_claims)]
ClientDep = Annotated[ClientInfo, Depends(client_info)]
AdminDep = Annotated[AuthContext, Depends(admin_key)]


class PrincipalMiddleware:
    """Puts the verified bearer token's claims (and `principal.subject` for rate limits) on the
    request scope. An invalid token is left for the route to refuse; this never answers."""

    def __init__(self, app: Any, runtime: Runtime, state: AuthState) -> None:
        self.app, self.runtime, self.state = app, runtime, state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            claims = self._claims(scope)
            if claims is not None:
                state = scope.setdefault("state", {})
                state["claims"] = claims
                state["principal"] = {"subject": claims.sub}
        await self.app(scope, receive, send)

    def _claims(self, scope: Any) -> AccessClaims | None:
        token = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, rest = value.decode("latin-1").partition(" ")
                token = rest.strip() if scheme.lower() == "bearer" else None
                break
        applied = self.runtime.live.current
        if not token or applied is None or token.count(".") != 2:
            return None
        try:
            return self.state.stack_auth(applied).verify(token, utc_now())
        except Problem:
            return None
