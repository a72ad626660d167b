"""The worker's jobs: a Worker for every queue of the Stack and a Scheduler for its
Schedules, both following the live config; run records go to the Schedules' status."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping

from stackyard.jobs import FunctionRegistry, JobClient, QueueSettings, Worker, load_registries, queues_from_config
from stackyard.jobs.scheduler import Fired, Scheduler
from stackyard.notify.events import PlatformEvents
from stackyard.resources.jobs import ScheduleSpec
from stackyard.runtime import Runtime
from stackyard.status_reports import ClusterStatus

log = logging.getLogger(__name__)


def functions_from_environment() -> FunctionRegistry:
    """The functions this worker runs: the modules named in STACKYARD_JOB_MODULES
    ("myapp.jobs" or "myapp.jobs:registry", comma-separated), on the image's Python path."""
    return load_registries(os.environ.get("STACKYARD_JOB_MODULES", ""))


class StackJobs:
    def __init__(self, runtime: Runtime, functions: FunctionRegistry, cluster: ClusterStatus) -> None:
        self.runtime = runtime
        self.cluster = cluster
        self.worker = Worker(
            lambda: runtime.redis,
            functions,
            self.queues,
            secrets=lambda key: runtime.config.credentials.get(key),
            shutdown_grace=float(os.environ.get("STACKYARD_SHUTDOWN_GRACE", "25")),
            events=PlatformEvents.of_runtime(runtime),
        )
        self.scheduler = Scheduler(
            lambda: JobClient(runtime.redis), self.schedules, self.queues, on_fired=self.record_run
        )

    def queues(self) -> Mapping[str, QueueSettings]:
        applied = self.runtime.live.current
        return queues_from_config(applied.config.job_queues) if applied else {}

    def schedules(self) -> Mapping[str, ScheduleSpec]:
        applied = self.runtime.live.current
        return applied.config.schedules if applied else {}

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(self.worker.run(stop), self.scheduler.run(stop))

    async def record_run(self, fired: Fired) -> None:
        """Merge the run into the Schedule's status (only where the config comes from a cluster)."""
        if self.cluster.enabled:
            await self.cluster.merge("schedules", fired.schedule, {"status": fired.status()})
