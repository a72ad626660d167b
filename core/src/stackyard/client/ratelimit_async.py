"""`AsyncStackyard.ratelimit`: the Stack's RateLimitPolicies for your own services — one
decision per request (check) and the policies in force with their counts. What each call
sends is in `ratelimit_calls`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stackyard.ratelimit.contract import CheckResult, PolicyList

from . import ratelimit_calls

if TYPE_CHECKING:
    from .async_client import AsyncStackyard


class AsyncRateLimit:
    """No key is needed: the api decides for whoever asks (keep it inside your network)."""

    def __init__(self, client: AsyncStackyard) -> None:
        self._client = client

    def __repr__(self) -> str:
        return "AsyncRateLimit()"

    async def check(self, policy: str, key: str | None = None, cost: int = 1) -> CheckResult:
        """Charge `cost` to `key` under the RateLimitPolicy `policy` and say whether the
        request may go on: act on `allowed`, and when it is false wait `retry_after` seconds.
        A refusal is an answer, not an exception. `key` None: the key the policy's key type
        takes from this request itself (its IP, principal or header); `cost` 0 only looks.
        NotFound (with `extensions["policy"]`) when the Stack has no such policy;
        Unprocessable when the policy needs a key and none was given."""
        return await self._client.send(ratelimit_calls.check(policy, key, cost))

    async def policies(self) -> PolicyList:
        """Every RateLimitPolicy in force (none while the Stack's capabilities.rateLimit is
        false), with the api process's decision counts, and the config hash they come from."""
        return await self._client.send(ratelimit_calls.policies())
