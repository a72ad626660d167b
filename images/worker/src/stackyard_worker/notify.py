"""The worker's notification workflows: `stackyard.notify.run` (one workflow for one
recipient) and `stackyard.notify.fanout` (the runs of a trigger with several recipients),
with the EmailService, MongoDB, Redis and credentials of the config in force
(stackyard.notify.workflow)."""

from __future__ import annotations

from typing import Any

import httpx
from stackyard.db.schema import (
    FEED_MESSAGES,
    NOTIFICATION_RUNS,
    PUSH_SUBSCRIPTIONS,
    ensure_capability_indexes_once,
    stack_index_policy,
)
from stackyard.email.service import EmailService, TemplateCache, email_service_for
from stackyard.jobs import FunctionRegistry, JobContext
from stackyard.notify.workflow import FANOUT_FUNCTION, RUN_FUNCTION, NotifyEnvironment, fanout, run
from stackyard.runtime import Runtime
from stackyard.status_reports import ClusterStatus


class StackNotify:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.templates = TemplateCache()
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(15.0), follow_redirects=False)

    async def environment(self) -> NotifyEnvironment:
        applied = self.runtime.config
        config = applied.config
        database = self.runtime.database
        await ensure_capability_indexes_once(
            database, (NOTIFICATION_RUNS, FEED_MESSAGES, PUSH_SUBSCRIPTIONS), stack_index_policy(config)
        )

        async def email() -> EmailService:
            service = email_service_for(
                self.runtime.redis, database, config, self.templates.get(applied.hash, config.email_templates)
            )
            return service

        return NotifyEnvironment(
            redis=self.runtime.redis,
            database=database,
            config=config,
            credentials=applied.credentials,
            email=email,
            http=self.http,
            config_getter=lambda: self.runtime.config.config,
        )

    async def run(self, ctx: JobContext, payload: Any) -> dict[str, Any]:
        return await run(ctx, payload, await self.environment())

    async def fanout(self, ctx: JobContext, payload: Any) -> dict[str, Any]:
        return await fanout(ctx, payload, await self.environment())


def notify_functions(runtime: Runtime, cluster: ClusterStatus) -> FunctionRegistry:
    notify = StackNotify(runtime)
    registry = FunctionRegistry()
    registry.add(RUN_FUNCTION, notify.run)
    registry.add(FANOUT_FUNCTION, notify.fanout)
    return registry
