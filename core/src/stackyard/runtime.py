"""What every stackyard process holds: the live config, where it comes from, and the
Redis and MongoDB clients made from its credentials (remade when they change).

MongoDB: `mongo` is the client of the Stack's own database (the Database named by
spec.mongodb.databaseRef, with its pool and client settings, or the plain MONGODB_URI with
the defaults), `database` that database; `database_client(name)` is the client of any
Database of the Stack. A client is remade when its connection string, settings or TLS
certificates change; the old one is closed at stop (calls in flight on it may finish)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import tempfile
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from .clients import AnyRedis, redis_client
from .config import REDIS_URL, AppliedConfig, FileConfigSource, KubernetesConfigSource, LiveConfig, RuntimeConfig
from .db.options import database_client, database_uri, options_fingerprint
from .problems import NotConfigured, NotFound
from .resources.database import DatabaseSpec
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
        """(options fingerprint, client) of the Stack's database."""
        self._database_clients: dict[str, tuple[str, AsyncMongoClient[Any]]] = {}
        """The other Databases' clients by name, with their fingerprints."""
        self._fingerprints: tuple[AppliedConfig, dict[str | None, str]] | None = None
        self._tls_dir: Path | None = None
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
        held = [self._redis, self._mongo, *self._database_clients.values()]
        for client in [*self._retired, *(c for _, c in filter(None, held))]:
            await _close(client)
        if self._tls_dir is not None:
            shutil.rmtree(self._tls_dir, ignore_errors=True)
        await asyncio.to_thread(self.telemetry.shutdown, 2.0)

    def _on_config(self, applied: AppliedConfig) -> None:
        # Clients whose URL or settings changed are replaced; the old ones are closed at stop
        # (in-flight calls on them may still finish).
        if self._redis is not None and self._redis[0] != applied.credentials.get(REDIS_URL):
            self._retired.append(self._redis[1])
            self._redis = None
        if self._mongo is not None and self._mongo[0] != self._fingerprint(applied, _stack_database(applied.config)):
            self._retired.append(self._mongo[1])
            self._mongo = None
        for name, (fingerprint, client) in list(self._database_clients.items()):
            if name not in applied.config.databases or fingerprint != self._fingerprint(applied, name):
                self._retired.append(client)
                del self._database_clients[name]

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
        """The client of the Stack's own database."""
        applied = self.config
        name = _stack_database(applied.config)
        fingerprint = self._fingerprint(applied, name)
        if self._mongo is None or self._mongo[0] != fingerprint:
            if self._mongo is not None:
                self._retired.append(self._mongo[1])
            self._mongo = (fingerprint, self._client(applied, name))
        return self._mongo[1]

    @property
    def database(self) -> AsyncDatabase[Any]:
        """The database of stackyard's own collections (users, delivery log, ...)."""
        return self.mongo[self.config.config.stack_database_name]

    def database_client(self, name: str) -> AsyncMongoClient[Any]:
        """The client of the Database `name` of the config in force (NotFound when there is
        none); the Stack's own Database shares `mongo`'s client."""
        applied = self.config
        if name not in applied.config.databases:
            raise NotFound(f"no Database {name!r} in the Stack's config", database=name)
        if name == _stack_database(applied.config):
            return self.mongo
        fingerprint = self._fingerprint(applied, name)
        held = self._database_clients.get(name)
        if held is None or held[0] != fingerprint:
            if held is not None:
                self._retired.append(held[1])
            held = self._database_clients[name] = (fingerprint, self._client(applied, name))
        return held[1]

    def _client(self, applied: AppliedConfig, name: str | None) -> AsyncMongoClient[Any]:
        spec: DatabaseSpec | None = None if name is None else applied.config.databases[name]
        uri = database_uri(applied.credentials, name)
        return database_client(uri, self.service, spec, applied.credentials, name, self.tls_dir)

    def _fingerprint(self, applied: AppliedConfig, name: str | None) -> str:
        """The options fingerprint of Database `name` (None: MONGODB_URI) in `applied`,
        computed once per config (`mongo` is read on every request)."""
        if self._fingerprints is None or self._fingerprints[0] is not applied:
            self._fingerprints = (applied, {})
        cache = self._fingerprints[1]
        if name not in cache:
            spec = None if name is None else applied.config.databases[name]
            cache[name] = options_fingerprint(spec, applied.credentials, name)
        return cache[name]

    @property
    def tls_dir(self) -> Path:
        """Where the Databases' TLS certificates are written (a private temporary directory,
        removed at stop)."""
        if self._tls_dir is None:
            self._tls_dir = Path(tempfile.mkdtemp(prefix=f"{self.service}-tls-"))
        return self._tls_dir

    async def readiness(self) -> Readiness:
        checks: dict[str, str] = {}
        if self.live.current is None:
            checks["config"] = "not loaded" + (f": {self.live.last_error}" if self.live.last_error else "")
            return Readiness(False, checks)
        checks["config"] = f"ok ({self.live.current.hash})"
        # At once, so that /readyz answers within a second with both away.
        checks["redis"], checks["mongodb"] = await asyncio.gather(
            _reach(lambda: self.redis.ping()), _reach(lambda: self.mongo.admin.command("ping"))
        )
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
            "databases": sorted(config.databases),
            "buckets": sorted(config.buckets),
            "notificationWorkflows": sorted(config.notification_workflows),
            "webhooks": sorted(config.webhooks),
            "searchIndexes": sorted(config.search_indexes),
            "oidcClients": sorted(config.oidc_clients),
            "lastError": self.live.last_error,
        }


async def _reach(ping: Callable[[], Awaitable[Any]]) -> str:
    """Whether `ping` answers within a second: "ok", or why not (the error's type only)."""
    try:
        await asyncio.wait_for(ping(), timeout=1.0)
        return "ok"
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"


def _stack_database(config: RuntimeConfig) -> str | None:
    """Name of the Database holding the Stack's collections (None: spec.mongodb.uriSecretRef)."""
    ref = config.spec.mongodb.database_ref
    return ref.name if ref is not None and ref.name in config.databases else None


async def _close(client: Any) -> None:
    with contextlib.suppress(Exception):
        result = client.aclose() if hasattr(client, "aclose") else client.close()
        if asyncio.iscoroutine(result):
            await result
