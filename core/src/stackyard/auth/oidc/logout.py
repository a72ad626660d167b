"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0), the end_session_endpoint.

`validate_logout` checks the request: `id_token_hint` (an ID token of this provider,
expired ones accepted), `client_id` (must be the hint's audience when both are sent),
`post_logout_redirect_uri` (exactly one of the client's postLogoutRedirectUris; it needs a
client, named by client_id or the hint), `state`. An invalid request is an error page,
never a redirect. `needs_confirmation` says whether to ask the user first (no hint, or a
hint about someone else than the signed-in user: a third party could otherwise sign the
user out). `end_session` ends the browser session (the cookie's, else the hint's) and its
grants that lack offline_access, and says where to go: the post-logout URI with `state`, or the
provider's logged-out page."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from ..sessions import ClientInfo
from .browser import BrowserSession, end_browser_session, end_grants_of
from .clients import find_client, post_logout_uri_registered
from .discovery import LOGGED_OUT_PAGE, url
from .errors import INVALID_REQUEST, OAuthError
from .id_tokens import audiences, verify_id_token_hint

if TYPE_CHECKING:
    from ..context import AuthContext

CONFIRMATION_SECONDS = 600
"""How long the logout confirmation page's request is kept."""


@dataclass(frozen=True)
class LogoutRequest:
    client_id: str | None = None
    post_logout_redirect_uri: str | None = None
    state: str | None = None
    hint_sub: str | None = None
    """The user the id_token_hint is about (None: no hint)."""
    hint_sid: str | None = None
    ui_locales: str | None = None

    def redirect_url(self) -> str | None:
        """The post-logout redirect with state, when one was asked."""
        if self.post_logout_redirect_uri is None:
            return None
        separator = "&" if "?" in self.post_logout_redirect_uri else "?"
        query = urlencode({"state": self.state}) if self.state is not None else ""
        return self.post_logout_redirect_uri + (separator + query if query else "")


def validate_logout(ctx: AuthContext, params: Mapping[str, str]) -> LogoutRequest:
    """A valid logout request; raises OAuthError invalid_request (shown as an error page)."""
    client_id = params.get("client_id") or None
    hint_sub = hint_sid = None
    hint = params.get("id_token_hint")
    if hint:
        claims = verify_id_token_hint(ctx, hint)
        auds = audiences(claims)
        if client_id is not None and client_id not in auds:
            raise OAuthError(INVALID_REQUEST, "id_token_hint was not issued to client_id")
        if client_id is None and len(auds) == 1:
            client_id = auds[0]
        hint_sub = str(claims["sub"])
        hint_sid = claims.get("sid") if isinstance(claims.get("sid"), str) else None
    redirect = params.get("post_logout_redirect_uri") or None
    if client_id is not None and find_client(ctx, client_id) is None:
        raise OAuthError(INVALID_REQUEST, "client_id is not a registered, enabled client")
    if redirect is not None:
        spec = find_client(ctx, client_id)
        if spec is None:
            raise OAuthError(INVALID_REQUEST, "post_logout_redirect_uri needs client_id or id_token_hint")
        if not post_logout_uri_registered(spec, redirect):
            raise OAuthError(INVALID_REQUEST, "post_logout_redirect_uri is not registered for this client")
    state = params.get("state")
    if state is not None and len(state) > 2048:
        raise OAuthError(INVALID_REQUEST, "state is too long")
    return LogoutRequest(
        client_id=client_id,
        post_logout_redirect_uri=redirect,
        state=state,
        hint_sub=hint_sub,
        hint_sid=hint_sid,
        ui_locales=params.get("ui_locales") or None,
    )


def needs_confirmation(request: LogoutRequest, browser: BrowserSession | None) -> bool:
    """Whether the user should confirm first: a session exists and the request does not
    prove it comes from an app of that user (no id_token_hint, or one about another user)."""
    return browser is not None and request.hint_sub != browser.user_id


async def end_session(ctx: AuthContext, request: LogoutRequest, cookie: str | None, client: ClientInfo) -> str:
    """Ends the browser session of the cookie (and its grants without offline_access);
    the URL to send the user to. The api clears the cookie.

    Without the cookie (a cross-site POST does not carry a SameSite=Lax cookie), the
    session the id_token_hint names (`sid`) is ended instead, if it is still that user's."""
    ended = await end_browser_session(ctx, cookie, client)
    if ended is None and request.hint_sid and request.hint_sub:
        info = await ctx.sessions.get(request.hint_sid)
        if info is not None and info.kind == "op" and info.user_id == request.hint_sub:
            await ctx.sessions.revoke(info.id, "signed out of the OpenID Provider (id_token_hint)", client)
            await end_grants_of(ctx, info.id, client)
    return request.redirect_url() or url(ctx, LOGGED_OUT_PAGE)


async def save_logout(ctx: AuthContext, request: LogoutRequest) -> str:
    """Keeps a validated request for the confirmation page; the token to put in its form."""
    return await ctx.onetime.issue("oidc-logout", asdict(request), CONFIRMATION_SECONDS)


async def load_logout(ctx: AuthContext, token: str | None, *, consume: bool = False) -> LogoutRequest | None:
    """The request kept by save_logout (consumed once confirmed); None when unknown or expired."""
    if not token:
        return None
    subject = await (ctx.onetime.consume if consume else ctx.onetime.peek)("oidc-logout", token)
    if subject is None:
        return None
    return LogoutRequest(**subject)
