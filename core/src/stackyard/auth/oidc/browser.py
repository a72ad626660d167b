"""The OpenID Provider's browser session: who is signed in to the hosted pages, across clients.

It is an ordinary stackyard session (`Sessions.start`, so it shows in the user's session
list, is audited and ends with "sign out everywhere"); the cookie holds its refresh token,
which is checked and never rotated. `auth_time` is when the session started."""

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
    pair = await ctx.sessions.start(user, client, amr)
    info = await ctx.sessions.get(pair.session_id)
    auth_time = info.created_at if info is not None else ctx.clock()
    return pair.refresh_token, BrowserSession(pair.session_id, user.id, auth_time, amr)


async def current_browser_session(ctx: AuthContext, cookie: str | None) -> BrowserSession | None:
    """The live session the cookie names; None when absent, ended, or not its current token."""
    if not cookie:
        return None
    info = await ctx.sessions.holder(cookie)
    if info is None:
        return None
    return BrowserSession(info.id, info.user_id, info.created_at, info.amr)


async def end_browser_session(ctx: AuthContext, cookie: str | None, client: ClientInfo) -> BrowserSession | None:
    """Ends the session the cookie names (RP-initiated or hosted logout); what it was, if any."""
    session = await current_browser_session(ctx, cookie)
    if session is not None:
        await ctx.sessions.revoke(session.sid, "signed out of the OpenID Provider", client)
    return session
