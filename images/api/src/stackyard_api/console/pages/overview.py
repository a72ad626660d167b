"""The console's Overview (/console): the Stack at a glance.

- the Stack's conditions, read through the API server with the api's own credentials (its Role
  may `get` its own Stack; where the config comes from files, no cluster is asked);
- the config this process applies (hash, generation; `runtime.describe_config()`);
- each queue's depth and counters, and its throughput: completed and failed per minute over
  the samples of the counters this process kept (one per view, the last 5 minutes);
- each email provider's sends and failures in the delivery log (the last 24 hours), its
  circuit breaker (in Redis, shared by the workers) and its Reachable condition (the
  EmailProvider's status, where there is a cluster);
- each rate-limit policy's decisions in this process since it started.

Each section is read on its own: one that cannot be read says why, the others still show."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from kubernetes_asyncio.client.exceptions import ApiException
from stackyard.email.breaker import BreakerSettings, CircuitBreaker
from stackyard.email.log import COLLECTION as EMAIL_COLLECTION
from stackyard.jobs import JobClient, queues_from_config
from stackyard.ratelimit import RateLimiter
from stackyard.resources import GROUP, VERSION
from stackyard.runtime import Runtime
from stackyard.status_reports import ClusterStatus
from starlette.responses import Response

from ...deps import RuntimeDep
from ..session import ConsoleDep, render

router = APIRouter(prefix="/console", include_in_schema=False)
log = logging.getLogger(__name__)

SAMPLE_SPAN = 300.0
"""Seconds of queue counter samples the throughput is measured over."""
SAMPLES_KEPT = 600
KUBE_TIMEOUT = 3.0
SECTION_BUDGET = 4.0
"""Seconds a section may take (a store that does not answer must not hold the page)."""
EMAIL_WINDOW = timedelta(hours=24)
MONGO_TIMEOUT_MS = 3000
SENT = ("sent", "deferred", "delivered", "bounced", "complained")
"""The statuses of a message a provider accepted."""
FAILED = ("failed", "dead")
NO_CLUSTER = "not available: no cluster access (the config comes from files)"


# -- queue throughput ----------------------------------------------------------------------


@dataclass
class Throughput:
    """Samples (time, completed, failed) of each queue's counters, kept in this process."""

    span: float = SAMPLE_SPAN
    samples: dict[str, deque[tuple[float, int, int]]] = field(default_factory=dict)

    def observe(self, queue: str, now: float, completed: int, failed: int) -> tuple[float | None, float | None]:
        """Record a sample; answer completed and failed per minute since the oldest sample kept
        (None until the samples span a second)."""
        ring = self.samples.setdefault(queue, deque(maxlen=SAMPLES_KEPT))
        if ring and (completed < ring[-1][1] or failed < ring[-1][2]):
            ring.clear()  # the counters were reset (a new Redis): start again
        ring.append((now, completed, failed))
        while now - ring[0][0] > self.span:
            ring.popleft()
        first_at, first_completed, first_failed = ring[0]
        elapsed = now - first_at
        if elapsed < 1.0:
            return None, None
        return (completed - first_completed) * 60 / elapsed, (failed - first_failed) * 60 / elapsed


def throughput_of(request: Request) -> Throughput:
    found: Throughput | None = getattr(request.app.state, "console_throughput", None)
    if found is None:
        found = request.app.state.console_throughput = Throughput()
    return found


# -- the cluster --------------------------------------------------------------------------


def cluster_of(request: Request, runtime: Runtime) -> ClusterStatus | None:
    """The api's Kubernetes client (opened on first use), or None where the config comes from files."""
    cluster: ClusterStatus | None = getattr(request.app.state, "console_cluster", None)
    if cluster is None:
        cluster = request.app.state.console_cluster = ClusterStatus(runtime)
    return cluster if cluster.enabled else None


def _kube_failure(exc: Exception, what: str) -> str:
    if isinstance(exc, ApiException):
        if exc.status == 403:
            return f"not available: the api may not read {what} (its Role needs get on it)"
        if exc.status == 404:
            return f"not available: {what} was not found"
        return f"not available: the Kubernetes API answered {exc.status} {exc.reason}"
    if isinstance(exc, OSError | TimeoutError):
        return f"not available: cannot reach the Kubernetes API ({type(exc).__name__})"
    return f"not available: the Kubernetes API could not be asked ({type(exc).__name__})"


async def stack_section(cluster: ClusterStatus | None, config: Any) -> dict[str, Any]:
    if cluster is None:
        return {"error": NO_CLUSTER}
    try:
        api = await cluster.api()
        found = await api.get_namespaced_custom_object(
            GROUP, VERSION, config.namespace, "stacks", config.stack, _request_timeout=KUBE_TIMEOUT
        )
    except Exception as exc:  # refused, unreachable, no in-cluster credentials
        return {"error": _kube_failure(exc, f"Stack {config.stack}")}
    status = found.get("status") or {}
    conditions = [
        {key: c.get(key) for key in ("type", "status", "reason", "message", "lastTransitionTime")}
        for c in status.get("conditions") or []
    ]
    return {
        "error": None,
        "generation": found.get("metadata", {}).get("generation"),
        "observed_generation": status.get("observedGeneration"),
        "config_hash": status.get("configHash"),
        "conditions": conditions,
    }


async def _provider_statuses(cluster: ClusterStatus | None, namespace: str, names: list[str]) -> dict[str, Any]:
    """Each EmailProvider's status (Reachable, lastAttempt), or an error text per provider."""
    if cluster is None or not names:
        return {}

    async def one(name: str) -> Any:
        try:
            api = await cluster.api()
            found = await api.get_namespaced_custom_object_status(
                GROUP, VERSION, namespace, "emailproviders", name, _request_timeout=KUBE_TIMEOUT
            )
        except Exception as exc:  # refused, unreachable, no in-cluster credentials
            return _kube_failure(exc, f"EmailProvider {name}")
        return found.get("status") or {}

    return dict(zip(names, await asyncio.gather(*(one(n) for n in names)), strict=True))


# -- the sections ---------------------------------------------------------------------------


async def queues_section(runtime: Runtime, throughput: Throughput) -> dict[str, Any]:
    config = runtime.config.config
    if not config.spec.capabilities.jobs:
        return {"error": "the jobs capability is off in this Stack", "items": []}
    client = JobClient(runtime.redis)
    items = []
    now = time.monotonic()
    try:
        for queue in sorted(queues_from_config(config.job_queues).values(), key=lambda q: q.name):
            info = await client.counts(queue)
            completed, failed = throughput.observe(queue.name, now, info.counts.completed, info.counts.failed)
            items.append({"info": info, "completed_per_minute": completed, "failed_per_minute": failed})
    except Exception as exc:  # Redis down or slow: the other sections still show
        log.warning("console overview: queue counts not read: %s", type(exc).__name__)
        return {"error": f"not available: Redis did not answer ({type(exc).__name__})", "items": []}
    return {"error": None, "items": items}


async def _email_counts(runtime: Runtime, since: datetime) -> dict[tuple[str | None, str], int]:
    pipeline = [
        {"$match": {"createdAt": {"$gte": since}}},
        {"$group": {"_id": {"provider": "$provider", "status": "$status"}, "n": {"$sum": 1}}},
    ]
    collection = runtime.database[EMAIL_COLLECTION]
    cursor = await collection.aggregate(pipeline, maxTimeMS=MONGO_TIMEOUT_MS)
    counts: dict[tuple[str | None, str], int] = {}
    async for row in cursor:
        counts[(row["_id"].get("provider"), str(row["_id"].get("status")))] = int(row["n"])
    return counts


async def email_section(runtime: Runtime, cluster: ClusterStatus | None) -> dict[str, Any]:
    config = runtime.config.config
    if not config.spec.capabilities.email:
        return {"error": "the email capability is off in this Stack", "providers": []}
    specs = sorted(config.email_providers.items(), key=lambda item: (item[1].priority, item[0]))
    names = [name for name, _ in specs]
    counts_error = breaker_error = None
    try:
        counts = await _email_counts(runtime, datetime.now(UTC) - EMAIL_WINDOW)
    except Exception as exc:  # MongoDB down or slow
        log.warning("console overview: email counts not read: %s", type(exc).__name__)
        counts, counts_error = {}, f"not available: MongoDB did not answer ({type(exc).__name__})"
    breakers: dict[str, Any] = {}
    try:
        for name in names:
            breakers[name] = await CircuitBreaker(runtime.redis, name, BreakerSettings()).snapshot()
    except Exception as exc:
        log.warning("console overview: breakers not read: %s", type(exc).__name__)
        breaker_error = f"not available: Redis did not answer ({type(exc).__name__})"
    statuses = await _provider_statuses(cluster, config.namespace, names)

    def total(provider: str | None, statuses_counted: tuple[str, ...]) -> int:
        return sum(n for (p, s), n in counts.items() if p == provider and s in statuses_counted)

    providers = []
    for name, spec in specs:
        status = statuses.get(name)
        reachable = None
        if isinstance(status, dict):
            reachable = next((c for c in status.get("conditions") or [] if c.get("type") == "Reachable"), None)
        providers.append(
            {
                "name": name,
                "type": spec.type,
                "priority": spec.priority,
                "sent": total(name, SENT),
                "delivered": total(name, ("delivered",)),
                "bounced": total(name, ("bounced", "complained")),
                "failed": total(name, FAILED),
                "breaker": breakers.get(name),
                "reachable": reachable,
                "status_error": status if isinstance(status, str) else None,
            }
        )
    unattributed = {"failed": total(None, FAILED), "pending": total(None, ("scheduled", "queued", "sending"))}
    return {
        "error": None,
        "counts_error": counts_error,
        "breaker_error": breaker_error,
        "cluster_error": None if cluster is not None else NO_CLUSTER,
        "providers": providers,
        "unattributed": unattributed,
        "window_hours": int(EMAIL_WINDOW.total_seconds() // 3600),
    }


def rate_limit_section(runtime: Runtime, limiter: RateLimiter) -> dict[str, Any]:
    policies = runtime.config.config.rate_limit_policies
    rows = []
    for name in sorted(set(policies) | set(limiter.counts)):
        spec = policies.get(name)
        counts = limiter.counts.get(name)
        rows.append(
            {
                "name": name,
                "in_force": spec is not None,
                "algorithm": spec.algorithm if spec else None,
                "limit": f"{spec.limit} per {spec.window}" if spec else None,
                "mode": spec.mode if spec else None,
                "allowed": counts.allowed if counts else 0,
                "limited": counts.limited if counts else 0,
                "would_limit": counts.would_limit if counts else 0,
                "failed": counts.failed if counts else 0,
            }
        )
    return {"policies": rows}


async def within_budget(section: Awaitable[dict[str, Any]], **empty: Any) -> dict[str, Any]:
    """A section, or its error when its source has not answered within SECTION_BUDGET."""
    try:
        return await asyncio.wait_for(section, SECTION_BUDGET)
    except TimeoutError:
        return {"error": f"not available: no answer within {SECTION_BUDGET:.0f} s"} | empty


@router.get("")
async def overview(request: Request, session: ConsoleDep, runtime: RuntimeDep) -> Response:
    config = runtime.config.config
    cluster = cluster_of(request, runtime)
    stack, queues, email = await asyncio.gather(
        within_budget(stack_section(cluster, config)),
        within_budget(queues_section(runtime, throughput_of(request)), items=[]),
        within_budget(email_section(runtime, cluster), providers=[]),
    )
    return render(
        request,
        "console/overview.html",
        config=runtime.describe_config(),
        stack=stack,
        queues=queues,
        email=email,
        rate_limits=rate_limit_section(runtime, request.app.state.rate_limiter),
    )
