"""stackyard-search: the search component. It holds the Stack's SearchIndexes (tantivy files
under STACKYARD_SEARCH_DATA, default /var/lib/stackyard/search), applies their writes as tasks,
follows the MongoDB collections of the synced ones, reports their status, and serves the search
routes (the api proxies them) on STACKYARD_PORT (default 7700).

Config comes from the Stack's ConfigMap and Secret, or from files (STACKYARD_CONFIG_DIR),
exactly as for the api; each new config is applied to the indexes (new ones created, changed
settings applied or rebuilt, removed ones deleted). On SIGTERM the task being processed
finishes (a rebuild is abandoned and done again at the next start), then the process exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from stackyard.config import AppliedConfig
from stackyard.logs import configure_logging
from stackyard.resources.search import SearchIndexSpec
from stackyard.runtime import Runtime
from stackyard.search.service import SearchService

from .main import serve

log = logging.getLogger("stackyard_api.search")

DEFAULT_DATA = "/var/lib/stackyard/search"
DEFAULT_PORT = 7700
SYNC_RESTART = 5.0
FIRST_CONFIG_WAIT = 10.0


@dataclass
class _Sync:
    spec: SearchIndexSpec
    client: Any
    sync: Any
    task: asyncio.Task[None]


class SearchComponent:
    """The service kept in step with the config in force: the indexes applied, one MongoSync
    per MongoDB-sourced index (restarted when its spec or its database client changes), and the
    status reporter."""

    def __init__(self, runtime: Runtime, service: SearchService) -> None:
        self.runtime = runtime
        self.service = service
        self._changed = asyncio.Event()
        self._first_applied = asyncio.Event()
        self._syncs: dict[str, _Sync] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._applied: AppliedConfig | None = None
        self.applied: str | None = None
        """Hash of the last config applied to the indexes and syncs."""
        runtime.live.subscribe(self._on_config)

    def _on_config(self, applied: AppliedConfig) -> None:
        self._changed.set()

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        await self.runtime.start()
        await self.service.start()
        self._tasks.append(asyncio.create_task(self._follow(), name="search config"))
        stop = asyncio.Event()
        reporting = self._status_reporter(stop)
        await self._first_config()
        try:
            yield
        finally:
            stop.set()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await reporting
            await self._stop_syncs(list(self._syncs))
            await self.service.stop()
            await self.runtime.stop()

    async def _first_config(self) -> None:
        """Serve once the first config is applied to the indexes (so that a search does not
        meet an index still being opened), or after FIRST_CONFIG_WAIT seconds without one
        (the probes then say why: no config)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_applied.wait(), FIRST_CONFIG_WAIT)

    def _status_reporter(self, stop: asyncio.Event) -> Any:
        """D's SearchStatusReporter writing the indexes' status, when this build has it: the
        coroutine to await at the end (after `stop` is set)."""
        try:
            from stackyard.status_reports import ClusterStatus

            from .search_status import SearchStatusReporter
        except ImportError:
            log.warning("search: no status reporter in this build; SearchIndex status is not written")
            return asyncio.sleep(0)
        cluster = ClusterStatus(self.runtime)
        reporter = SearchStatusReporter(self.runtime, cluster, self.service, self.syncs)
        reporting = asyncio.create_task(reporter.run(stop), name="search status")

        async def finish() -> None:
            await asyncio.gather(reporting, return_exceptions=True)
            await cluster.close()

        return finish()

    async def _follow(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            applied = self.runtime.live.current
            # The same config with other credentials is another AppliedConfig: the syncs may
            # need new MongoDB clients.
            if applied is None or applied is self._applied:
                continue
            try:
                # A sync of a changed or removed index stops first, so that it writes nothing
                # (no checkpoint of the old collection) into the index as the new config has it.
                indexes = applied.config.search_indexes
                await self._stop_syncs([name for name, run in self._syncs.items() if indexes.get(name) != run.spec])
                await self.service.apply_config(indexes)
                self._first_applied.set()
                failed = await self._run_syncs(applied)
            except Exception:
                log.exception("search: applying config %s failed; trying again", applied.hash)
                failed = ["(all)"]
            if failed:
                await asyncio.sleep(SYNC_RESTART)
                self._changed.set()
                continue
            self._applied, self.applied = applied, applied.hash
            log.info("search: config %s applied (%s indexes)", applied.hash, len(applied.config.search_indexes))

    async def _run_syncs(self, applied: AppliedConfig) -> list[str]:
        """Start, restart or stop the syncs for `applied`: the indexes whose sync could not be
        started (tried again a moment later)."""
        sync_class = _mongo_sync_class()
        wanted = {name: spec for name, spec in applied.config.search_indexes.items() if spec.source.mongodb is not None}
        await self._stop_syncs([name for name in self._syncs if name not in wanted])
        if sync_class is None:
            if wanted:
                log.warning("search: no MongoDB sync in this build; indexes %s are not followed", sorted(wanted))
            return []
        failed = []
        for name, spec in wanted.items():
            try:
                database = self._database(applied, spec)
            except Exception as exc:
                log.error("search: index %s: no database to follow: %s", name, exc)
                failed.append(name)
                continue
            running = self._syncs.get(name)
            if running is not None and running.spec == spec and running.client is database.client:
                continue
            await self._stop_syncs([name])
            sync = sync_class(name, spec, database, self.service)
            self.service.set_source(name, sync)
            task = asyncio.create_task(_supervised(name, sync), name=f"search sync {name}")
            self._syncs[name] = _Sync(spec, database.client, sync, task)
        return failed

    def _database(self, applied: AppliedConfig, spec: SearchIndexSpec) -> Any:
        source = spec.source.mongodb
        assert source is not None
        if source.database_ref is None:
            return self.runtime.database
        name = source.database_ref.name
        return self.runtime.database_client(name)[applied.config.databases[name].connection.database]

    async def _stop_syncs(self, names: list[str]) -> None:
        for name in names:
            sync = self._syncs.pop(name, None)
            if sync is None:
                continue
            sync.task.cancel()
            with contextlib.suppress(BaseException):
                await sync.task
            with contextlib.suppress(LookupError):
                self.service.set_source(name, None)

    def syncs(self) -> dict[str, Any]:
        """The MongoSyncs running, by index (for the status reporter)."""
        return {name: running.sync for name, running in self._syncs.items()}


async def _supervised(name: str, sync: Any) -> None:
    """`sync.run()`, started again SYNC_RESTART seconds after it fails (it reports its own
    errors in its state; this only keeps it going)."""
    while True:
        try:
            await sync.run()
            return
        except Exception:
            log.exception("search: the sync of index %s stopped; starting it again in %s s", name, SYNC_RESTART)
            await asyncio.sleep(SYNC_RESTART)


def _mongo_sync_class() -> Any:
    try:
        from stackyard.search.sync import MongoSync
    except ImportError:
        return None
    return MongoSync


def create_app(runtime: Runtime, data_dir: Path) -> FastAPI:
    """The search component's app: E's routes over the service, run by the component's lifespan."""
    service = SearchService(data_dir)
    component = SearchComponent(runtime, service)
    try:
        from .search_app import create_search_app
    except ImportError:
        return _health_only_app(runtime, service, component)
    app = create_search_app(runtime, service, lifespan=component.lifespan)
    app.state.search_component = component
    return app


def _health_only_app(runtime: Runtime, service: SearchService, component: SearchComponent) -> FastAPI:
    from .routers import config, health

    app = FastAPI(title="stackyard search", lifespan=component.lifespan)
    app.state.runtime = runtime
    app.state.search_service = service
    app.state.search_component = component
    app.include_router(health.router)
    app.include_router(config.router)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="stackyard-search", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=os.environ.get("STACKYARD_HOST", "0.0.0.0"))  # noqa: S104 - a server
    parser.add_argument("--port", type=int, default=int(os.environ.get("STACKYARD_PORT", str(DEFAULT_PORT))))
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("STACKYARD_SEARCH_DATA", DEFAULT_DATA)))
    args = parser.parse_args(argv)
    configure_logging("stackyard-search")
    serve(create_app(Runtime.from_environment("stackyard-search"), args.data), args.host, args.port)


if __name__ == "__main__":
    main()
