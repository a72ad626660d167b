"""`AsyncStackyard.config` and `AsyncStackyard.health`: which configuration the api
applies, and whether it lives and is ready. What each call sends is in `config_calls`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stackyard.runtime_contract import AppliedConfigInfo, Health

from . import config_calls

if TYPE_CHECKING:
    from .async_client import AsyncStackyard


class AsyncConfig:
    def __init__(self, client: AsyncStackyard) -> None:
        self._client = client

    def __repr__(self) -> str:
        return "AsyncConfig()"

    async def get(self) -> AppliedConfigInfo:
        """The configuration the api applies: its hash and the Stack's generation it was
        rendered from, the capabilities and the names of the resources in force (no secret),
        and `last_error` when the last config offered was refused."""
        return await self._client.send(config_calls.get_config())


class AsyncProbes:
    def __init__(self, client: AsyncStackyard) -> None:
        self._client = client

    def __repr__(self) -> str:
        return "AsyncProbes()"

    async def live(self) -> Health:
        """/healthz: the api process answers."""
        return await self._client.send(config_calls.healthz())

    async def ready(self) -> Health:
        """/readyz: the api has a config and reaches Redis. Not ready is an answer (`ready`
        false, `checks` says why), not an exception, and is not retried."""
        return await self._client.send(config_calls.readyz())
