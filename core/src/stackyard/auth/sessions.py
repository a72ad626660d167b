"""Sessions in Redis, and the refresh tokens that keep them going.

A session is a hash `sy:auth:{scope}:sess:<sid>` (user, amr, client, times, the SHA-256 of
its current refresh token) with a TTL of the idle timeout, never past the absolute
lifetime; each user has a sorted set of session ids. Every refresh rotates the refresh
token (the old one goes to the session's used set); presenting a used one is taken as
theft and revokes the whole session (RFC 9700's reuse detection). Both happen in one Lua
script, so two refreshes racing cannot both win.

A refresh token is `rt_<sid>.<secret>`: the id locates the session, the secret proves it."""

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

    async def start(self, user: UserRecord, client: ClientInfo, amr: list[str]) -> TokenPair:
        """A new session for a user who just proved who they are (by the methods in amr)."""
        if user.disabled:
            raise AccountDisabled("this account is disabled")
        now = self.ctx.clock()
        sid = "ses_" + sortable_id(_ms(now))
        secret = secrets.token_urlsafe(32)
        absolute = _ms(now) + int(duration_seconds(self.ctx.settings.refresh_token_lifetime) * 1000)
        ttl = min(self._idle_ms, absolute - _ms(now))
        key = self._session_key(sid)
        pipe = self.ctx.redis.pipeline(transaction=False)
        pipe.hset(
            key,
            mapping={
                "user": user.id,
                "amr": json.dumps(amr),
                "ip": client.ip or "",
                "ua": (client.user_agent or "")[:512],
                "created": _ms(now),
                "seen": _ms(now),
                "absolute": absolute,
                "refresh": _hash(secret),
            },
        )
        pipe.pexpire(key, ttl)
        pipe.zadd(self._user_key(user.id), {sid: _ms(now)})
        # The index lives as long as its longest session: only ever lengthened (a shorter
        # refreshTokenLifetime must not drop older sessions from revoke_all).
        pipe.pexpire(self._user_key(user.id), absolute - _ms(now), nx=True)
        pipe.pexpire(self._user_key(user.id), absolute - _ms(now), gt=True)
        await pipe.execute()
        await self.ctx.users.set_fields(user.id, {"lastLoginAt": now}, now=now)
        await self.ctx.audit.record("session.created", user_id=user.id, client=client, session=sid, amr=amr)
        return await self._pair(user, sid, secret, amr)

    async def _pair(self, user: UserRecord, sid: str, secret: str, amr: list[str]) -> TokenPair:
        orgs = await self.ctx.org_claims(user.id)
        access, lifetime = issue_access_token(self.ctx, user, sid, amr, orgs)
        return TokenPair(access, f"{REFRESH_PREFIX}{sid}.{secret}", lifetime, sid)

    async def refresh(self, refresh_token: str, client: ClientInfo) -> TokenPair:
        sid, secret = _parse_refresh(refresh_token)
        new_secret = secrets.token_urlsafe(32)
        now = self.ctx.clock()
        result = await self._rotate(sid, secret, new_secret, now)
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
        amr = json.loads(result[2])
        return await self._pair(user, sid, new_secret, amr)

    async def _rotate(self, sid: str, secret: str, new_secret: str, now: datetime) -> list[Any]:
        session_key = self._session_key(sid)
        user_id = await self.ctx.redis.hget(session_key, "user")
        user_key = self._user_key(_text(user_id) if user_id else "-")
        result: list[Any] = await ROTATE(
            self.ctx.redis,
            [session_key, self._used_key(sid), user_key],
            [_hash(secret), _hash(new_secret), _ms(now), self._idle_ms, USED_TOKENS_KEPT],
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


def _info(sid: str, data: dict[Any, Any], idle_ms: int) -> SessionInfo:
    text = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in data.items()
    }
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
    )
