"""stackyard-worker: consume the queues and run the schedules.

Config comes from the Stack's ConfigMap and Secret, or from files, exactly as for the
api. It serves /healthz, /readyz and /v1/config on STACKYARD_PORT (default 8081).
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

from .http import create_http_app

log = logging.getLogger("stackyard_worker")


async def run(host: str, port: int) -> None:
    runtime = Runtime.from_environment("stackyard-worker")
    await runtime.start()
    server = uvicorn.Server(
        uvicorn.Config(
            create_http_app(runtime), host=host, port=port, log_config=None, access_log=False, lifespan="off"
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    serving = asyncio.create_task(server.serve())
    log.info("worker started")
    await stop.wait()
    log.info("worker stopping")
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
