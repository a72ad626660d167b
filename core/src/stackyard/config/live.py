"""The configuration in force in one api or worker process.

Sources offer (config JSON, credentials, credentials revision) as they see them change;
`LiveConfig` validates the pair, swaps it in as a whole, and keeps the last good one when
an offer is bad. Readers take `live.current` once per request or job, so a request never
sees half of one config and half of another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pydantic import ValidationError

from .runtime import RuntimeConfig, content_hash

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppliedConfig:
    config: RuntimeConfig
    credentials: Mapping[str, str] = field(repr=False)
    hash: str
    applied_at: float

    def credential(self, key: str) -> str:
        """A credential by its key; KeyError names the key, never a value."""
        try:
            return self.credentials[key]
        except KeyError:
            raise KeyError(f"credential {key!r} is not in the Stack's credentials Secret") from None


Listener = Callable[[AppliedConfig], None]


class LiveConfig:
    def __init__(self) -> None:
        self._current: AppliedConfig | None = None
        self._listeners: list[Listener] = []
        self._changed = asyncio.Event()
        self.last_error: str | None = None

    @property
    def current(self) -> AppliedConfig | None:
        return self._current

    def require(self) -> AppliedConfig:
        if self._current is None:
            raise RuntimeError("no configuration loaded yet")
        return self._current

    def subscribe(self, listener: Listener) -> None:
        """Call `listener` with every new config (and now, if one is in force)."""
        self._listeners.append(listener)
        if self._current is not None:
            listener(self._current)

    def offer(self, config_json: str, credentials: Mapping[str, str], credentials_revision: int | None) -> bool:
        """Apply a config if it is valid and goes with these credentials; True if applied."""
        digest = content_hash(config_json)
        if self._current is not None and digest == self._current.hash and credentials == self._current.credentials:
            return False
        try:
            config = RuntimeConfig.model_validate_json(config_json)
        except ValidationError as exc:
            first = exc.errors()[0]["msg"]
            self.last_error = (
                f"config {digest} is invalid, keeping {self.hash}: {exc.error_count()} errors, first: {first}"
            )
            log.error(self.last_error)
            return False
        if credentials_revision is not None and credentials_revision != config.credentials_revision:
            log.info(
                "config %s waits for credentials revision %s (have %s)",
                digest,
                config.credentials_revision,
                credentials_revision,
            )
            return False
        applied = AppliedConfig(config=config, credentials=dict(credentials), hash=digest, applied_at=time.time())
        self._current = applied
        self.last_error = None
        log.info("applied config %s (stack %s generation %s)", digest, config.stack, config.generation)
        for listener in self._listeners:
            try:
                listener(applied)
            except Exception:
                log.exception("a config listener failed on config %s", digest)
        self._changed.set()
        self._changed = asyncio.Event()
        return True

    @property
    def hash(self) -> str | None:
        return self._current.hash if self._current else None

    async def wait_changed(self, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
            return True
        except TimeoutError:
            return False
