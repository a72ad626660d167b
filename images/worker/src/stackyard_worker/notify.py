"""The worker's notification workflows: the job functions that run them (helper A)."""

from __future__ import annotations

from stackyard.jobs import FunctionRegistry
from stackyard.runtime import Runtime

from .cluster_status import ClusterStatus


def notify_functions(runtime: Runtime, cluster: ClusterStatus) -> FunctionRegistry:
    return FunctionRegistry()
