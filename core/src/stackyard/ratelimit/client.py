"""For the user's other services, until the SDK (issue 15) takes it over:

- `RateLimitClient`: the decision over HTTP, `POST /v1/ratelimit/check` on the stackyard api.
- `RemotePolicies`: the Stack's policies, read from `GET /v1/ratelimit/policies` and kept
  fresh, for `RateLimitMiddleware` in another app deciding straight against Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from types import TracebackType
from typing import Any

import httpx

from .contract import CheckRequest, CheckResult, PolicyList
from .policy import PolicySet

log = logging.getLogger(__name__)


class RateLimitClientError(Exception):
    """The api refused the call; `problem` is its problem+json body."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"{status}: {problem.get('detail') or problem.get('title') or 'error'}")
        self.status = status
        self.problem = problem


class RateLimitClient:
    """async with RateLimitClient("http://demo-api:8080") as limits:
    result = await limits.check("exports-per-user", key=user_id, cost=5)
    if not result.allowed: ...  # wait result.retry_after seconds
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 2.0,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=timeout, headers=headers, transport=transport)

    async def check(self, policy: str, key: str | None = None, cost: int = 1) -> CheckResult:
        body = CheckRequest(policy=policy, key=key, cost=cost).model_dump(by_alias=True, exclude_none=True)
        response = await self.http.post("/v1/ratelimit/check", json=body)
        if response.status_code != 200:
            raise RateLimitClientError(response.status_code, _problem(response))
        return CheckResult.model_validate(response.json())

    async def policies(self, etag: str | None = None) -> PolicyList | None:
        """The policies in force, or None when they are still those of `etag`."""
        response = await self.http.get("/v1/ratelimit/policies", headers={"If-None-Match": etag} if etag else None)
        if response.status_code == 304:
            return None
        if response.status_code != 200:
            raise RateLimitClientError(response.status_code, _problem(response))
        return PolicyList.model_validate(response.json())

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> RateLimitClient:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.aclose()


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"status": response.status_code, "detail": response.text[:200]}
    return body if isinstance(body, dict) else {"detail": str(body)}


class RemotePolicies:
    """The Stack's policies as the stackyard api serves them, refreshed in the background
    every `refresh` seconds (a cheap 304 when nothing changed). The first call waits for
    them; while the api cannot be reached the last ones known stay in force."""

    def __init__(self, client: RateLimitClient, refresh: float = 1.0) -> None:
        self.client = client
        self.refresh = refresh
        self._set: PolicySet | None = None
        self._fetched_at = 0.0
        self._task: asyncio.Task[None] | None = None

    async def get(self) -> PolicySet | None:
        if self._set is None:
            await self._fetch()
        elif time.monotonic() - self._fetched_at > self.refresh and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._fetch())
        return self._set

    async def _fetch(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            listed = await self.client.policies(self._set.version if self._set else None)
        except (httpx.HTTPError, RateLimitClientError) as exc:
            log.warning("cannot read the rate limit policies: %s", exc)
            return
        if listed is not None:
            specs = {name: info.spec for name, info in listed.policies.items()}
            self._set = PolicySet.from_specs(specs, listed.trusted_proxies, listed.hash)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
