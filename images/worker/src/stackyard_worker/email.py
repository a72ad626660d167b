"""The worker's email: the built-in job function `stackyard.email.send` with the providers,
breakers, delivery log and suppression list of the config in force; the EmailProviders'
status; and the delivery log's retention sweep where MongoDB has no TTL index."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx
from stackyard.db.schema import stack_index_policy
from stackyard.email.delivery import RATE_KEY_PREFIX, Breakers, Providers
from stackyard.email.log import DeliveryLog
from stackyard.email.sending import SEND_FUNCTION, EmailSending, email_function
from stackyard.email.suppressions import SuppressionList
from stackyard.jobs import FunctionRegistry
from stackyard.notify.events import PlatformEvents
from stackyard.ratelimit import RateLimiter
from stackyard.runtime import Runtime
from stackyard.status_reports import ClusterStatus

from .email_status import ProviderStatusReporter

log = logging.getLogger(__name__)

SWEEP_EVERY = 3600.0
"""Seconds between retention sweeps of the delivery log (where TTL indexes are missing)."""


class StackEmail:
    def __init__(self, runtime: Runtime, cluster: ClusterStatus) -> None:
        self.runtime = runtime
        self.http = httpx.AsyncClient(limits=httpx.Limits(max_connections=200, max_keepalive_connections=50))
        self.providers: Providers | None = None
        self.breakers: Breakers | None = None
        self._applied: tuple[str, int] | None = None
        self._indexed: set[str] = set()
        self._lock = asyncio.Lock()
        self._sending: EmailSending | None = None
        self.reporter = ProviderStatusReporter(runtime, lambda: self.providers, lambda: self.breakers, cluster=cluster)

    def functions(self) -> FunctionRegistry:
        registry = FunctionRegistry()
        registry.add(SEND_FUNCTION, email_function(self.current))
        return registry

    async def current(self) -> EmailSending:
        """The sending context of the config in force (rebuilt when the config changes)."""
        applied = self.runtime.config
        if self._sending is not None and self._applied == (applied.hash, id(self.runtime.redis)):
            return self._sending
        async with self._lock:
            applied = self.runtime.config
            key = (applied.hash, id(self.runtime.redis))
            if self._sending is not None and self._applied == key:
                return self._sending
            config = applied.config
            if self.providers is None:
                self.providers = Providers(config.email_providers, applied.credentials, self.http)
            else:
                await self.providers.update(config.email_providers, applied.credentials)
            self.breakers = Breakers(self.runtime.redis)
            database = self.runtime.database
            delivery_log = DeliveryLog(database, events=PlatformEvents.of_runtime(self.runtime))
            suppressions = SuppressionList(database)
            if database.name not in self._indexed:
                policy = stack_index_policy(config)
                await delivery_log.ensure_indexes(policy)
                await suppressions.ensure_indexes(policy)
                self._indexed.add(database.name)
            self._sending = EmailSending(
                providers=self.providers,
                breakers=self.breakers,
                log=delivery_log,
                suppressions=suppressions,
                rate_limiter=RateLimiter(lambda: self.runtime.redis, key_prefix=RATE_KEY_PREFIX),
                note=self.reporter.note,
            )
            self._applied = key
            return self._sending

    async def run(self, stop: asyncio.Event) -> None:
        """The status reporter and the retention sweep, until `stop`."""
        try:
            await asyncio.gather(self._follow_config(stop), self.reporter.run(stop), self._sweep(stop))
        finally:
            if self.providers is not None:
                await self.providers.aclose()
            await self.http.aclose()

    async def _follow_config(self, stop: asyncio.Event) -> None:
        """Build the providers as soon as a config is in force, so probes need not wait for a send."""
        while not stop.is_set():
            if self.runtime.live.current is not None and self.runtime.config.config.spec.capabilities.email:
                try:
                    await self.current()
                except Exception as exc:
                    log.warning("email: the sending context could not be built yet: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)

    async def _sweep(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SWEEP_EVERY)
            if stop.is_set() or self._sending is None:
                continue
            try:  # where a TTL index works, nothing is left to remove
                removed = await self._sending.log.sweep()
                log.info("email: the retention sweep removed %d delivery-log records", removed)
            except Exception as exc:
                log.warning("email: the retention sweep failed: %s", type(exc).__name__)
