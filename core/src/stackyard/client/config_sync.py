"""`Stackyard.config` and `Stackyard.health`: which configuration the api
applies, and whether it lives and is ready. What each call sends is in `config_calls`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stackyard.runtime_contract import AppliedConfigInfo, Health

from . import config_calls

if TYPE_CHECKING:
    from .sync_client import Stackyard


class Config:
    def __init__(self, client: Stackyard) -> None:
        self._client = client

    def __repr__(self) -> str:
        return "Config()"

    def get(self) -> AppliedConfigInfo:
        """The configuration the api applies: its hash and the Stack's generation it was
        rendered from, the capabilities and the names of the resources in force (no secret),
        and `last_error` when the last config offered was refused."""
        return self._client.send(config_calls.get_config())


class Probes:
    def __init__(self, client: Stackyard) -> None:
        self._client = client

    def __repr__(self) -> str:
        return "Probes()"

    def live(self) -> Health:
        """/healthz: the api process answers."""
        return self._client.send(config_calls.healthz())

    def ready(self) -> Health:
        """/readyz: the api has a config and reaches Redis. Not ready is an answer (`ready`
        false, `checks` says why), not an exception, and is not retried."""
        return self._client.send(config_calls.readyz())
