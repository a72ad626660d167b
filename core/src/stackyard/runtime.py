"""What every stackyard process holds: the live config, where it comes from, and the
Redis and MongoDB clients made from its credentials (remade when they change)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from pymongo import AsyncMongoClient

from .clients import AnyRedis, mongo_client, redis_client
from .config import MONGODB_URI, REDIS_URL, AppliedConfig, FileConfigSource, KubernetesConfigSource, LiveConfig
from .problems import NotConfigured
from .telemetry import Telemetry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Readiness:
    ready: bool
    checks: dict[str, str]


_RUNTIMES: weakref.WeakSet[Runtime] = weakref.WeakSet()
"""The Runtimes of this process (one in a program; several in a test process)."""


@functools.cache
def _config_gauge() -> None:
    """`stackyard.config.applied`, made once per process: the SDK keeps the first instrument
    made under a name, so a gauge per Runtime would observe only the first Runtime."""

    def observe(options: CallbackOptions) -> list[Observation]:
        return [observation for runtime in list(_RUNTIMES) for observation in runtime._config_observations()]

    metrics.get_meter("stackyard.config").create_observable_gauge(
        "stackyard.config.applied",
        callbacks=[observe],
        unit="{config}",
        description="1 for the config in force, with its hash and the Stack's generation as attributes.",
    )


class Runtime:
    def __init__(self, service: str, source: KubernetesConfigSource | FileConfigSource, live: LiveConfig) -> None:
        self.service = service
        self.live = live
        self.source = source
        self._redis: tuple[str, AnyRedis] | None = None
        self._mongo: tuple[str, AsyncMongoClient[Any]] | None = None
        self._source_task: asyncio.Task[None] | None = None
        self._retired: list[Any] = []
        live.subscribe(self._on_config)
        # Telemetry follows the Stack's spec.telemetry from the first config on.
        self.telemetry = Telemetry.for_process(service)
        live.subscribe(self.telemetry.apply_config)
        _RUNTIMES.add(self)
        _config_gauge()

    @classmethod
    def from_environment(cls, service: str) -> Runtime:
        """STACKYARD_CONFIG_DIR for files, else STACKYARD_STACK (+ STACKYARD_NAMESPACE) for the cluster."""
        live = LiveConfig()
        if directory := os.environ.get("STACKYARD_CONFIG_DIR"):
            return cls(service, FileConfigSource(live, Path(directory)), live)
        stack = os.environ.get("STACKYARD_STACK")
        if not stack:
            raise SystemExit(f"{service}: set STACKYARD_STACK (and STACKYARD_NAMESPACE) or STACKYARD_CONFIG_DIR")
        return cls(service, KubernetesConfigSource(live, os.environ.get("STACKYARD_NAMESPACE", "default"), stack), live)

    async def start(self) -> None:
        self._source_task = asyncio.create_task(self.source.run(), name="config source")

    async def stop(self) -> None:
        if self._source_task:
            self._source_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._source_task
        for client in [*self._retired, *(c for _, c in filter(None, [self._redis, self._mongo]))]:
            await _close(client)
        await asyncio.to_thread(self.telemetry.shutdown, 2.0)

    def _on_config(self, applied: AppliedConfig) -> None:
        # Clients whose URL changed are replaced; the old ones are closed at stop (in-flight
        # calls on them may still finish).
        for attr, key in (("_redis", REDIS_URL), ("_mongo", MONGODB_URI)):
            held = getattr(self, attr)
            if held is not None and held[0] != applied.credentials.get(key):
                self._retired.append(held[1])
                setattr(self, attr, None)

    def _config_observations(self) -> list[Observation]:
        applied = self.live.current
        if applied is None:
            return []
        return [
            Observation(
                1,
                {
                    "stackyard.config.hash": applied.hash,
                    "stackyard.stack": applied.config.stack,
                    "stackyard.stack.generation": applied.config.generation,
                },
            )
        ]

    @property
    def config(self) -> AppliedConfig:
        applied = self.live.current
        if applied is None:
            raise NotConfigured("no configuration has been loaded yet; see /readyz")
        return applied

    @property
    def redis(self) -> AnyRedis:
        url = self.config.credential(REDIS_URL)
        if self._redis is None or self._redis[0] != url:
            self._redis = (url, redis_client(url))
        return self._redis[1]

    @property
    def mongo(self) -> AsyncMongoClient[Any]:
        uri = self.config.credential(MONGODB_URI)
        if self._mongo is None or self._mongo[0] != uri:
            self._mongo = (uri, mongo_client(uri, self.service))
        return self._mongo[1]

    async def readiness(self) -> Readiness:
        checks: dict[str, str] = {}
        if self.live.current is None:
            checks["config"] = "not loaded" + (f": {self.live.last_error}" if self.live.last_error else "")
            return Readiness(False, checks)
        checks["config"] = f"ok ({self.live.current.hash})"
        try:
            await asyncio.wait_for(self.redis.ping(), timeout=1.0)
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"unreachable: {type(exc).__name__}"
        return Readiness(all(v.startswith("ok") for v in checks.values()), checks)

    def describe_config(self) -> dict[str, Any]:
        """What /v1/config shows: the applied hash and generation, and no secret."""
        applied = self.config
        config = applied.config
        return {
            "hash": applied.hash,
            "stack": config.stack,
            "namespace": config.namespace,
            "generation": config.generation,
            "credentialsRevision": config.credentials_revision,
            "appliedAt": applied.applied_at,
            "capabilities": config.spec.capabilities.model_dump(by_alias=True),
            "emailProviders": sorted(config.email_providers),
            "emailTemplates": sorted(config.email_templates),
            "rateLimitPolicies": sorted(config.rate_limit_policies),
            "jobQueues": sorted(config.job_queues),
            "schedules": sorted(config.schedules),
            "identityProviders": sorted(config.identity_providers),
            "lastError": self.live.last_error,
        }


async def _close(client: Any) -> None:
    with contextlib.suppress(Exception):
        result = client.aclose() if hasattr(client, "aclose") else client.close()
        if asyncio.iscoroutine(result):
            await result
