"""The worker's webhooks: the job function `stackyard.webhooks.deliver` (one delivery to one
Webhook's endpoint, signed, retried by the `webhooks` queue; see stackyard.notify.webhooks),
over the config, Redis and database in force."""

from __future__ import annotations

import httpx
from stackyard.jobs import FunctionRegistry
from stackyard.notify.webhooks import DELIVER_FUNCTION, WebhookDeliverer
from stackyard.runtime import Runtime
from stackyard.status_reports import ClusterStatus

__all__ = ["DELIVER_FUNCTION", "webhook_functions"]


def webhook_functions(runtime: Runtime, cluster: ClusterStatus) -> FunctionRegistry:
    """The registry holding `stackyard.webhooks.deliver` (the worker includes it)."""
    http = httpx.AsyncClient(
        follow_redirects=False, limits=httpx.Limits(max_connections=200, max_keepalive_connections=50)
    )
    deliverer = WebhookDeliverer(lambda: runtime.config, lambda: runtime.redis, lambda: runtime.database, http)
    registry = FunctionRegistry()
    registry.add(DELIVER_FUNCTION, deliverer.deliver)
    return registry
