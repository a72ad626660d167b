"""The worker's jobs: a Worker for every queue of the Stack and a Scheduler for its
Schedules, both following the live config; run records go to the Schedules' status."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping

from kubernetes_asyncio import client
from stackyard.config.sources import kube_api_client
from stackyard.jobs import FunctionRegistry, JobClient, QueueSettings, Worker, load_registries, queues_from_config
from stackyard.jobs.scheduler import Fired, Scheduler
from stackyard.resources import GROUP, VERSION
from stackyard.resources.jobs import ScheduleSpec
from stackyard.runtime import Runtime

log = logging.getLogger(__name__)


def functions_from_environment() -> FunctionRegistry:
    """The functions this worker runs: the modules named in STACKYARD_JOB_MODULES
    ("myapp.jobs" or "myapp.jobs:registry", comma-separated), on the image's Python path."""
    return load_registries(os.environ.get("STACKYARD_JOB_MODULES", ""))


class StackJobs:
    def __init__(self, runtime: Runtime, functions: FunctionRegistry) -> None:
        self.runtime = runtime
        self.worker = Worker(
            lambda: runtime.redis,
            functions,
            self.queues,
            secrets=lambda key: runtime.config.credentials.get(key),
            shutdown_grace=float(os.environ.get("STACKYARD_SHUTDOWN_GRACE", "25")),
        )
        self.scheduler = Scheduler(
            lambda: JobClient(runtime.redis), self.schedules, self.queues, on_fired=self.record_run
        )
        self._kube: client.ApiClient | None = None

    def queues(self) -> Mapping[str, QueueSettings]:
        applied = self.runtime.live.current
        return queues_from_config(applied.config.job_queues) if applied else {}

    def schedules(self) -> Mapping[str, ScheduleSpec]:
        applied = self.runtime.live.current
        return applied.config.schedules if applied else {}

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await asyncio.gather(self.worker.run(stop), self.scheduler.run(stop))
        finally:
            if self._kube is not None:
                await self._kube.close()

    async def record_run(self, fired: Fired) -> None:
        """Merge the run into the Schedule's status (only where the config comes from a cluster)."""
        if not os.environ.get("STACKYARD_STACK"):
            return
        if self._kube is None:
            self._kube = await kube_api_client()
        namespace = self.runtime.config.config.namespace
        api = client.CustomObjectsApi(self._kube)
        await api.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            "schedules",
            fired.schedule,
            {"status": fired.status()},
            _content_type="application/merge-patch+json",
        )
