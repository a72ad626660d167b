"""The worker's webhooks: the delivery job function and the Webhooks' status (helper D)."""

from __future__ import annotations

from stackyard.jobs import FunctionRegistry
from stackyard.runtime import Runtime

from .cluster_status import ClusterStatus


def webhook_functions(runtime: Runtime, cluster: ClusterStatus) -> FunctionRegistry:
    return FunctionRegistry()
