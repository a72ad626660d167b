"""Limits on guessing: attempts per client IP address, and failed logins per account.

- Per IP: at most lockout.ipMaxAttempts attempts (logins, sign-ups, reset and magic-link
  requests) per lockout.ipWindow, counted in fixed windows.
- Per account: after lockout.maxFailures failed logins in a row the address is locked for
  baseDelay, doubling with each further failure up to maxDelay; a success clears it.
  Counted by normalised email whether or not the account exists, so a lock does not tell
  an attacker that an address is registered.
- Per address: at most lockout.mailsPerAddress verification, reset and magic-link emails an
  hour, so nobody can flood an inbox through the api (past it nothing is sent; the answer,
  given before the mail is considered, stays the same)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..resources.base import duration_seconds
from .errors import TooManyAttempts

if TYPE_CHECKING:
    from .context import AuthContext


class AttemptLimits:
    def __init__(self, ctx: AuthContext) -> None:
        self.ctx = ctx
        self.policy = ctx.settings.lockout

    def _account_key(self, email: str) -> str:
        return self.ctx.rkey("fail", email)

    async def check_ip(self, ip: str | None) -> None:
        """Count one attempt from `ip`; refuse when the window's budget is spent."""
        if not ip:
            return
        window = max(1, int(duration_seconds(self.policy.ip_window)))
        now = self.ctx.clock().timestamp()
        index = int(now // window)
        key = self.ctx.rkey("ip", ip, str(index))
        pipe = self.ctx.redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, window + 1)
        count, _ = await pipe.execute()
        if int(count) > self.policy.ip_max_attempts:
            retry = max(1, math.ceil((index + 1) * window - now))
            raise TooManyAttempts(f"too many attempts from this address; try again in {retry} s", retry)

    async def check_account(self, email: str) -> None:
        locked_until = await self.ctx.redis.hget(self._account_key(email), "until")
        if locked_until is None:
            return
        remaining = float(locked_until) - self.ctx.clock().timestamp()
        if remaining > 0:
            retry = math.ceil(remaining)
            raise TooManyAttempts(f"too many failed attempts for this account; try again in {retry} s", retry)

    async def failed(self, email: str) -> int:
        """Count a failure; returns the seconds the account is now locked for (0: not locked)."""
        key = self._account_key(email)
        failures = int(await self.ctx.redis.hincrby(key, "failures", 1))
        max_delay = duration_seconds(self.policy.max_delay)
        await self.ctx.redis.expire(key, int(max(max_delay * 2, 86400)))
        if failures < self.policy.max_failures:
            return 0
        doublings = min(failures - self.policy.max_failures, 60)  # 2**1024 does not fit a float
        delay = min(duration_seconds(self.policy.base_delay) * 2**doublings, max_delay)
        await self.ctx.redis.hset(key, "until", str(self.ctx.clock().timestamp() + delay))
        ceil: int = math.ceil(delay)
        return ceil

    async def mail_allowed(self, email: str) -> bool:
        """Count one auth email to `email` (normalised); False past lockout.mailsPerAddress this hour."""
        hour = int(self.ctx.clock().timestamp() // 3600)
        key = self.ctx.rkey("mail", email, str(hour))
        pipe = self.ctx.redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 3601)
        count, _ = await pipe.execute()
        return int(count) <= self.policy.mails_per_address

    async def succeeded(self, email: str) -> None:
        await self.ctx.redis.delete(self._account_key(email))
