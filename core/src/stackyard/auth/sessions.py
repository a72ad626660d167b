"""Sessions in Redis, and the refresh tokens that keep them going.

A session is a hash `sy:auth:{scope}:sess:<sid>` (user, amr, client, times, the SHA-256 of
its current refresh token) with a TTL of the idle timeout, never past the absolute
lifetime; each user has a sorted set of session ids. Every refresh rotates the refresh
token (the old one goes to the session's used set); presenting a used one is taken as
theft and revokes the whole session (RFC 9700's reuse detection). Both happen in one Lua
script, so two refreshes racing cannot both win.

A refresh token is `rt_<sid>.<secret>`: the id locates the session, the secret proves it.

Two other kinds of session share this machinery (hash field `kind`): the OpenID Provider's
browser session (`op`, its refresh token lives in a cookie and is never rotated) and a grant
of an OIDC client (`grant`, `open_grant`/`rotate_grant`: bound to one client, with its
scopes, the browser session it came from, and the client's lifetimes). `refresh` refuses
both, so neither becomes a first-party session through /v1/auth/refresh."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..jobs.ids import sortable_id
from ..luascript import LuaScript
from ..resources.base import duration_seconds
from .errors import AccountDisabled, InvalidToken, RefreshTokenReused
from .tokens import issue_access_token

if TYPE_CHECKING:
    from .context import AuthContext
    from .users import UserRecord

REFRESH_PREFIX = "rt_"
USED_TOKENS_KEPT = 50


@dataclass(frozen=True)
class ClientInfo:
    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: str
    token_type: str = "Bearer"

    def body(self) -> dict[str, Any]:
        return {
            "accessToken": self.access_token,
            "refreshToken": self.refresh_token,
            "tokenType": self.token_type,
            "expiresIn": self.expires_in,
            "sessionId": self.session_id,
        }


@dataclass(frozen=True)
class GrantRotation:
    """A grant's refresh token, rotated: the new token and what the grant holds."""

    session_id: str
    refresh_token: str
    user: UserRecord
    amr: list[str]
    client_id: str
    scopes: list[str]
    browser_sid: str
    """The provider's browser session the grant came from (the ID token's sid)."""
    offline: bool
    """Whether the grant outlives that browser session (offline_access)."""
    auth_time: int
    """Unix time the user signed in (the browser session's start)."""


@dataclass(frozen=True)
class GrantInfo:
    """A live grant of an OIDC client, read without rotating (introspection, userinfo)."""

    session_id: str
    user_id: str
    client_id: str
    scopes: list[str]
    browser_sid: str
    offline: bool
    auth_time: int
    amr: list[str]
    expires_at: datetime


class GrantOfAnotherClient(InvalidToken):
    """A refresh token presented by a client other than the one it was issued to; nothing
    is rotated or revoked."""


@dataclass(frozen=True)
class SessionInfo:
    id: str
    user_id: str
    amr: list[str]
    ip: str | None
    user_agent: str | None
    device: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    kind: str = ""
    """"" for an app session, "op" for the OpenID Provider's browser session, "grant" for an
    OIDC client's grant."""
    client_id: str | None = None
    """The OIDC client of a grant."""

    def body(self, current: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "device": self.device,
            "ip": self.ip,
            "userAgent": self.user_agent,
            "amr": self.amr,
            "createdAt": self.created_at,
            "lastSeenAt": self.last_seen_at,
            "expiresAt": self.expires_at,
            "current": self.id == current,
        }


# KEYS: session hash, used-token set, user's session set
# ARGV: presented hash, new hash, now ms, idle ms
# -> {1, user, amr} rotated | {0} unknown or expired | {-1, user} reuse (session revoked)
ROTATE = LuaScript(
    """
local current = redis.call('HGET', KEYS[1], 'refresh')
if not current then return {0} end
if current ~= ARGV[1] then
  if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
    local user = redis.call('HGET', KEYS[1], 'user')
    redis.call('DEL', KEYS[1], KEYS[2])
    redis.call('ZREM', KEYS[3], string.match(KEYS[1], '[^:]+$'))
    return {-1, user}
  end
  return {0}
end
local absolute = tonumber(redis.call('HGET', KEYS[1], 'absolute'))
local now = tonumber(ARGV[3])
if now >= absolute then
  redis.call('DEL', KEYS[1], KEYS[2])
  return {0}
end
redis.call('SADD', KEYS[2], current)
if redis.call('SCARD', KEYS[2]) > tonumber(ARGV[5]) then redis.call('SPOP', KEYS[2]) end
redis.call('HSET', KEYS[1], 'refresh', ARGV[2], 'seen', ARGV[3])
local ttl = math.min(tonumber(ARGV[4]), absolute - now)
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return {1, redis.call('HGET', KEYS[1], 'user'), redis.call('HGET', KEYS[1], 'amr')}
"""
)

_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari"))
_SYSTEMS = (
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def describe_device(user_agent: str | None) -> str:
    """ "Chrome on macOS" from a User-Agent, or the product token of a non-browser client."""
    if not user_agent:
        return "unknown"
    browser = next((name for token, name in _BROWSERS if token in user_agent), None)
    system = next((name for token, name in _SYSTEMS if token in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    match = re.match(r"[\w.-]+(/[\w.-]+)?", user_agent)
    return (browser or system or (match.group(0) if match else "unknown"))[:80]


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _from_ms(value: bytes | str | int | None) -> datetime:
    return datetime.fromtimestamp(int(value or 0) / 1000, UTC)


class LivenessCache:
    """Sessions this process saw alive in Redis within the last `ttl` seconds, so that every
    authenticated request does not cost a round trip. A session revoked through this process
    is forgotten at once; one revoked through another api replica stops working there within
    `ttl` (1 s). Bounded: when full, it starts afresh."""

    def __init__(self, ttl: float = 1.0, size: int = 100_000) -> None:
        self.ttl, self.size = ttl, size
        self._until: dict[str, float] = {}

    def seen_alive(self, sid: str) -> bool:
        until = self._until.get(sid)
        return until is not None and time.monotonic() < until

    def remember(self, sid: str) -> None:
        if len(self._until) >= self.size:
            self._until.clear()
        self._until[sid] = time.monotonic() + self.ttl

    def forget(self, sid: str) -> None:
        self._until.pop(sid, None)


class Sessions:
    def __init__(self, ctx: AuthContext) -> None:
        self.ctx = ctx

    def _session_key(self, sid: str) -> str:
        return self.ctx.rkey("sess", sid)

    def _used_key(self, sid: str) -> str:
        return self.ctx.rkey("sess-used", sid)

    def _user_key(self, user_id: str) -> str:
        return self.ctx.rkey("user-sess", user_id)

    @property
    def _idle_ms(self) -> int:
        return int(duration_seconds(self.ctx.settings.session_idle_timeout) * 1000)

    async def start(self, user: UserRecord, client: ClientInfo, amr: list[str], *, kind: str = "") -> TokenPair:
        """A new session for a user who just proved who they are (by the methods in amr);
        kind "op" makes the OpenID Provider's browser session (see the module doc)."""
        sid, secret = await self._create(
            user,
            client,
            amr,
            lifetime_ms=int(duration_seconds(self.ctx.settings.refresh_token_lifetime) * 1000),
            idle_ms=self._idle_ms,
            fields={"kind": kind} if kind else {},
        )
        return await self._pair(user, sid, secret, amr)

    async def open_grant(
        self,
        user: UserRecord,
        client: ClientInfo,
        amr: list[str],
        *,
        client_id: str,
        scopes: list[str],
        browser_sid: str,
        offline: bool,
        auth_time: int,
        lifetime: float,
        idle: float,
    ) -> tuple[str, str]:
        """(session id, refresh token) of a new grant of an OIDC client to a user: a session
        of kind "grant" holding the client, the scopes, the browser session it came from (and
        ends with, unless `offline`) and the client's lifetimes (seconds). Its access and ID
        tokens are the caller's to make."""
        fields = {
            "kind": "grant",
            "client": client_id,
            "scope": " ".join(scopes),
            "bsid": browser_sid,
            "offline": 1 if offline else 0,
            "authTime": auth_time,
            "idle": int(idle * 1000),
        }
        sid, secret = await self._create(
            user, client, amr, lifetime_ms=int(lifetime * 1000), idle_ms=int(idle * 1000), fields=fields
        )
        return sid, f"{REFRESH_PREFIX}{sid}.{secret}"

    async def _create(
        self,
        user: UserRecord,
        client: ClientInfo,
        amr: list[str],
        *,
        lifetime_ms: int,
        idle_ms: int,
        fields: dict[str, str | int],
    ) -> tuple[str, str]:
        if user.disabled:
            raise AccountDisabled("this account is disabled")
        now = self.ctx.clock()
        sid = "ses_" + sortable_id(_ms(now))
        secret = secrets.token_urlsafe(32)
        absolute = _ms(now) + lifetime_ms
        ttl = max(1, min(idle_ms, absolute - _ms(now)))
        key = self._session_key(sid)
        pipe = self.ctx.redis.pipeline(transaction=False)
        mapping: dict[Any, Any] = {
            "user": user.id,
            "amr": json.dumps(amr),
            "ip": client.ip or "",
            "ua": (client.user_agent or "")[:512],
            "created": _ms(now),
            "seen": _ms(now),
            "absolute": absolute,
            "refresh": _hash(secret),
        }
        mapping.update(fields)
        pipe.hset(key, mapping=mapping)
        pipe.pexpire(key, ttl)
        pipe.zadd(self._user_key(user.id), {sid: _ms(now)})
        # The index lives as long as its longest session: only ever lengthened (a shorter
        # refreshTokenLifetime must not drop older sessions from revoke_all).
        pipe.pexpire(self._user_key(user.id), absolute - _ms(now), nx=True)
        pipe.pexpire(self._user_key(user.id), absolute - _ms(now), gt=True)
        await pipe.execute()
        await self.ctx.users.set_fields(user.id, {"lastLoginAt": now}, now=now)
        extra = {"oidcClient": fields["client"]} if "client" in fields else {}
        await self.ctx.audit.record("session.created", user_id=user.id, client=client, session=sid, amr=amr, **extra)
        return sid, secret

    async def _pair(self, user: UserRecord, sid: str, secret: str, amr: list[str]) -> TokenPair:
        orgs = await self.ctx.org_claims(user.id)
        access, lifetime = issue_access_token(self.ctx, user, sid, amr, orgs)
        return TokenPair(access, f"{REFRESH_PREFIX}{sid}.{secret}", lifetime, sid)

    async def refresh(self, refresh_token: str, client: ClientInfo) -> TokenPair:
        sid, secret = _parse_refresh(refresh_token)
        fields = await self._fields(sid)
        if fields.get("kind"):
            # A browser session's cookie or an OIDC grant's token: not an app session's.
            raise InvalidToken("the refresh token is unknown, expired or revoked")
        new_secret = secrets.token_urlsafe(32)
        user, amr = await self._rotated(sid, secret, new_secret, client, fields)
        return await self._pair(user, sid, new_secret, amr)

    async def rotate_grant(self, refresh_token: str, client: ClientInfo, *, client_id: str) -> GrantRotation:
        """Rotates an OIDC grant's refresh token for the client presenting it. A token of
        another client raises GrantOfAnotherClient before anything is rotated; a reused one
        raises RefreshTokenReused and ends the grant; an unknown, expired or revoked one
        InvalidToken. A grant tied to a browser session that has ended is revoked."""
        sid, secret = _parse_refresh(refresh_token)
        fields = await self._fields(sid)
        if fields.get("kind") != "grant":
            raise InvalidToken("the refresh token is unknown, expired or revoked")
        if not hmac.compare_digest(fields.get("client", "").encode(), client_id.encode()):
            raise GrantOfAnotherClient("the refresh token was issued to another client")
        browser_sid = fields.get("bsid", "")
        offline = fields.get("offline") == "1"
        if not offline and not await self.ctx.redis.exists(self._session_key(browser_sid)):
            await self.revoke(sid, "the browser session it was tied to ended", client)
            raise InvalidToken("the grant ended with the user's session at the provider (no offline_access)")
        new_secret = secrets.token_urlsafe(32)
        user, amr = await self._rotated(sid, secret, new_secret, client, fields)
        return GrantRotation(
            session_id=sid,
            refresh_token=f"{REFRESH_PREFIX}{sid}.{new_secret}",
            user=user,
            amr=amr,
            client_id=client_id,
            scopes=fields.get("scope", "").split(),
            browser_sid=browser_sid,
            offline=offline,
            auth_time=int(fields.get("authTime") or 0),
        )

    async def grant(self, sid: str) -> GrantInfo | None:
        """The live OIDC grant with this session id; None when ended or not a grant."""
        data = await self.ctx.redis.hgetall(self._session_key(sid))
        text = _texts(data)
        if text.get("kind") != "grant":
            return None
        info = _info(sid, data, int(text.get("idle") or self._idle_ms))
        return GrantInfo(
            session_id=sid,
            user_id=info.user_id,
            client_id=text.get("client", ""),
            scopes=text.get("scope", "").split(),
            browser_sid=text.get("bsid", ""),
            offline=text.get("offline") == "1",
            auth_time=int(text.get("authTime") or 0),
            amr=info.amr,
            expires_at=info.expires_at,
        )

    async def grant_of_token(self, refresh_token: str) -> GrantInfo | None:
        """The grant whose current refresh token this is, without rotating; None otherwise."""
        try:
            sid, secret = _parse_refresh(refresh_token)
        except InvalidToken:
            return None
        data = await self.ctx.redis.hgetall(self._session_key(sid))
        stored = _texts(data).get("refresh", "")
        if not data or not hmac.compare_digest(stored.encode(), _hash(secret).encode()):
            return None
        return await self.grant(sid)

    async def _fields(self, sid: str) -> dict[str, str]:
        names = ("kind", "client", "scope", "bsid", "offline", "authTime", "idle")
        values = await self.ctx.redis.hmget(self._session_key(sid), list(names))
        return {name: _text(value) for name, value in zip(names, values, strict=True) if value is not None}

    async def _rotated(
        self, sid: str, secret: str, new_secret: str, client: ClientInfo, fields: dict[str, str]
    ) -> tuple[UserRecord, list[str]]:
        now = self.ctx.clock()
        idle_ms = int(fields.get("idle") or self._idle_ms)
        result = await self._rotate(sid, secret, new_secret, now, idle_ms)
        status = int(result[0])
        if status == -1:
            self.ctx.liveness.forget(sid)
            user_id = result[1].decode() if isinstance(result[1], bytes) else result[1]
            await self.ctx.audit.record(
                "session.revoked", user_id=user_id, client=client, session=sid, reason="refresh token reused"
            )
            raise RefreshTokenReused("this refresh token was already used; the session is revoked, log in again")
        if status != 1:
            raise InvalidToken("the refresh token is unknown, expired or revoked")
        user_id = result[1].decode() if isinstance(result[1], bytes) else str(result[1])
        user = await self.ctx.users.by_id(user_id)
        if user is None or user.disabled:
            await self.revoke(sid, "account disabled or deleted")
            raise InvalidToken("the session's account is disabled or deleted")
        amr: list[str] = json.loads(result[2])
        return user, amr

    async def _rotate(
        self, sid: str, secret: str, new_secret: str, now: datetime, idle_ms: int | None = None
    ) -> list[Any]:
        session_key = self._session_key(sid)
        user_id = await self.ctx.redis.hget(session_key, "user")
        user_key = self._user_key(_text(user_id) if user_id else "-")
        result: list[Any] = await ROTATE(
            self.ctx.redis,
            [session_key, self._used_key(sid), user_key],
            [_hash(secret), _hash(new_secret), _ms(now), idle_ms or self._idle_ms, USED_TOKENS_KEPT],
        )
        return result

    async def get(self, sid: str) -> SessionInfo | None:
        data = await self.ctx.redis.hgetall(self._session_key(sid))
        return _info(sid, data, self._idle_ms) if data else None

    async def holder(self, refresh_token: str) -> SessionInfo | None:
        """The session whose current refresh token this is, without rotating it (a browser
        session of the OpenID Provider keeps its token in a cookie); None otherwise."""
        try:
            sid, secret = _parse_refresh(refresh_token)
        except InvalidToken:
            return None
        data = await self.ctx.redis.hgetall(self._session_key(sid))
        if not data:
            return None
        current = data.get(b"refresh") or data.get("refresh")
        stored = current.decode() if isinstance(current, bytes) else str(current or "")
        if not hmac.compare_digest(stored.encode(), _hash(secret).encode()):
            return None
        return _info(sid, data, self._idle_ms)

    async def alive(self, sid: str) -> bool:
        """Whether the session is live; a yes is trusted for LivenessCache.ttl seconds."""
        if self.ctx.liveness.seen_alive(sid):
            return True
        alive = bool(await self.ctx.redis.exists(self._session_key(sid)))
        if alive:
            self.ctx.liveness.remember(sid)
        return alive

    async def list(self, user_id: str) -> list[SessionInfo]:
        """The user's live sessions, newest first (ended ones are pruned from the index)."""
        sids: list[str] = [_text(s) for s in await self.ctx.redis.zrevrange(self._user_key(user_id), 0, 199)]
        pipe = self.ctx.redis.pipeline(transaction=False)
        for sid in sids:
            pipe.hgetall(self._session_key(sid))
        found, ended = [], []
        for sid, data in zip(sids, await pipe.execute(), strict=True):
            if data:
                found.append(_info(sid, data, self._idle_ms))
            else:
                ended.append(sid)
        if ended:
            await self.ctx.redis.zrem(self._user_key(user_id), *ended)
        return found

    async def revoke(self, sid: str, reason: str, client: ClientInfo | None = None) -> bool:
        self.ctx.liveness.forget(sid)
        session_key = self._session_key(sid)
        user_id = await self.ctx.redis.hget(session_key, "user")
        if user_id is None:
            return False
        uid = user_id.decode() if isinstance(user_id, bytes) else str(user_id)
        pipe = self.ctx.redis.pipeline(transaction=False)
        pipe.delete(session_key, self._used_key(sid))
        pipe.zrem(self._user_key(uid), sid)
        await pipe.execute()
        await self.ctx.audit.record("session.revoked", user_id=uid, client=client, session=sid, reason=reason)
        return True

    async def revoke_all(
        self, user_id: str, reason: str, *, except_session: str | None = None, client: ClientInfo | None = None
    ) -> int:
        sids: list[str] = [_text(s) for s in await self.ctx.redis.zrange(self._user_key(user_id), 0, -1)]
        count = 0
        for sid in sids:
            if sid != except_session and await self.revoke(sid, reason, client):
                count += 1
        return count


def _parse_refresh(token: str) -> tuple[str, str]:
    if not token.startswith(REFRESH_PREFIX) or "." not in token or len(token) > 200:
        raise InvalidToken("not a refresh token")
    sid, _, secret = token[len(REFRESH_PREFIX) :].partition(".")
    if not sid.startswith("ses_") or not secret:
        raise InvalidToken("not a refresh token")
    return sid, secret


def _texts(data: dict[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in data.items()}


def _info(sid: str, data: dict[Any, Any], idle_ms: int) -> SessionInfo:
    text = _texts(data)
    idle_ms = int(text.get("idle") or idle_ms)
    seen = int(text.get("seen") or 0)
    expires = min(seen + idle_ms, int(text.get("absolute") or 0))
    return SessionInfo(
        id=sid,
        user_id=text.get("user", ""),
        amr=json.loads(text.get("amr") or "[]"),
        ip=text.get("ip") or None,
        user_agent=text.get("ua") or None,
        device=describe_device(text.get("ua")),
        created_at=_from_ms(text.get("created")),
        last_seen_at=_from_ms(text.get("seen")),
        expires_at=_from_ms(expires),
        kind=text.get("kind", ""),
        client_id=text.get("client") or None,
    )
