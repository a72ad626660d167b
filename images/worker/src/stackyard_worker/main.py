"""stackyard-worker: consume the queues and run the schedules.

SIGTERM stops taking jobs and gives running ones STACKYARD_SHUTDOWN_GRACE seconds (25) to
finish before they go back to their queue; keep it below the pod's termination grace period.

Config comes from the Stack's ConfigMap and Secret, or from files, exactly as for the
api. It serves /healthz, /readyz and /v1/config on STACKYARD_PORT (default 8081); /readyz
answers 503 while Redis or MongoDB is away, and the worker carries on by itself when they
return (a job that failed on them meanwhile is retried by its queue's policy).

Besides the jobs: the status of EmailProviders, of Databases (Connected, IndexesInSync,
Migrated), of Buckets (Reachable) and of Webhooks (Enabled, failingSince, lastDelivery), and
the job functions stackyard.db.backup, stackyard.storage.scan, stackyard.storage.retention and
stackyard.webhooks.deliver.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal

import uvicorn
from stackyard.logs import configure_logging
from stackyard.runtime import Runtime
from stackyard.status_reports import ClusterStatus

from .bucket_status import BucketStatusReporter
from .database_status import DatabaseStatusReporter
from .db_backup import backup_functions
from .email import StackEmail
from .http import create_http_app
from .jobs import StackJobs, functions_from_environment
from .notify import notify_functions
from .storage_jobs import storage_functions
from .webhook_status import WebhookStatusReporter
from .webhooks import webhook_functions

log = logging.getLogger("stackyard_worker")


async def run(host: str, port: int) -> None:
    runtime = Runtime.from_environment("stackyard-worker")
    cluster = ClusterStatus(runtime)
    email = StackEmail(runtime, cluster)
    functions = functions_from_environment()
    functions.include(email.functions())
    functions.include(backup_functions(runtime, cluster))
    functions.include(storage_functions(runtime, cluster))
    functions.include(notify_functions(runtime, cluster))
    functions.include(webhook_functions(runtime, cluster))
    jobs = StackJobs(runtime, functions, cluster)
    databases = DatabaseStatusReporter(runtime, cluster)
    buckets = BucketStatusReporter(runtime, cluster)
    webhooks = WebhookStatusReporter(runtime, cluster)
    await runtime.start()
    server = uvicorn.Server(
        uvicorn.Config(
            create_http_app(runtime, jobs.worker.consuming),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    serving = asyncio.create_task(server.serve())
    working = asyncio.create_task(jobs.run(stop))
    emailing = asyncio.create_task(email.run(stop))
    reporting = asyncio.create_task(databases.run(stop))
    checking_buckets = asyncio.create_task(buckets.run(stop))
    checking_webhooks = asyncio.create_task(webhooks.run(stop))
    log.info("worker started")
    await stop.wait()
    log.info("worker stopping")
    await working
    await emailing
    await reporting
    await checking_buckets
    await checking_webhooks
    await cluster.close()
    server.should_exit = True
    await serving
    await runtime.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="stackyard-worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=os.environ.get("STACKYARD_HOST", "0.0.0.0"))  # noqa: S104 - a server
    parser.add_argument("--port", type=int, default=int(os.environ.get("STACKYARD_PORT", "8081")))
    args = parser.parse_args(argv)
    configure_logging("stackyard-worker")
    asyncio.run(run(args.host, args.port))


if __name__ == "__main__":
    main()
