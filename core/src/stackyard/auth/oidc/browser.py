"""The OpenID Provider's browser session: who is signed in to the hosted pages, across clients.

It is an ordinary stackyard session (`Sessions.start`, so it shows in the user's session
list, is audited and ends with "sign out everywhere"); the cookie holds its refresh token,
which is checked and never rotated (kind "op": /v1/auth/refresh refuses it). `auth_time`
is when the session started.

The grants a client got through it without offline_access end with it: their session ids
are in a Redis set per browser session (`tie_grant`), revoked by `end_browser_session`
(and a grant whose browser session expired is refused at its next refresh)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ..sessions import ClientInfo

if TYPE_CHECKING:
    from ..context import AuthContext
    from ..users import UserRecord

COOKIE = "sy_op"
"""Name of the cookie (HttpOnly, Path=/, SameSite=Lax: the authorize request arrives as a
top-level navigation from the client's site); `__Host-sy_op` when cookies are secure."""


def cookie_name(secure: bool) -> str:
    return f"__Host-{COOKIE}" if secure else COOKIE


@dataclass(frozen=True)
class BrowserSession:
    sid: str
    user_id: str
    auth_time: datetime
    amr: list[str]


async def start_browser_session(
    ctx: AuthContext, user: UserRecord, amr: list[str], client: ClientInfo
) -> tuple[str, BrowserSession]:
    """(cookie value, session) for a user who just signed in on the hosted pages."""
    pair = await ctx.sessions.start(user, client, amr, kind="op")
    info = await ctx.sessions.get(pair.session_id)
    auth_time = info.created_at if info is not None else ctx.clock()
    return pair.refresh_token, BrowserSession(pair.session_id, user.id, auth_time, amr)


async def current_browser_session(ctx: AuthContext, cookie: str | None) -> BrowserSession | None:
    """The live session the cookie names; None when absent, ended, or not its current token."""
    if not cookie:
        return None
    info = await ctx.sessions.holder(cookie)
    if info is None or info.kind != "op":
        return None
    return BrowserSession(info.id, info.user_id, info.created_at, info.amr)


def _grants_key(ctx: AuthContext, browser_sid: str) -> str:
    return ctx.rkey("oidc-bs-grants", browser_sid)


async def tie_grant(ctx: AuthContext, browser_sid: str, grant_sid: str, ttl: float) -> None:
    """Records that the grant ends with the browser session (no offline_access)."""
    key = _grants_key(ctx, browser_sid)
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.sadd(key, grant_sid)
    pipe.expire(key, max(1, int(ttl)), nx=True)
    pipe.expire(key, max(1, int(ttl)), gt=True)
    await pipe.execute()


async def end_grants_of(ctx: AuthContext, browser_sid: str, client: ClientInfo | None = None) -> int:
    """Revokes the grants tied to a browser session; how many were live."""
    key = _grants_key(ctx, browser_sid)
    members = await ctx.redis.smembers(key)
    count = 0
    for member in members:
        sid = member.decode() if isinstance(member, bytes) else str(member)
        if await ctx.sessions.revoke(sid, "signed out of the OpenID Provider", client):
            count += 1
    await ctx.redis.delete(key)
    return count


async def end_browser_session(ctx: AuthContext, cookie: str | None, client: ClientInfo) -> BrowserSession | None:
    """Ends the session the cookie names (RP-initiated or hosted logout) and the grants tied
    to it; what it was, if any."""
    session = await current_browser_session(ctx, cookie)
    if session is not None:
        await ctx.sessions.revoke(session.sid, "signed out of the OpenID Provider", client)
        await end_grants_of(ctx, session.sid, client)
    return session
