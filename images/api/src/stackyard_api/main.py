"""stackyard-api: serve the HTTP API.

Config comes from the Stack's ConfigMap and Secret (STACKYARD_STACK, STACKYARD_NAMESPACE,
in-cluster or KUBECONFIG credentials) or from files (STACKYARD_CONFIG_DIR). On SIGTERM, open
requests get SHUTDOWN_GRACE seconds.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import uvicorn
from stackyard.logs import configure_logging
from stackyard.runtime import Runtime

from .app import create_app

SHUTDOWN_GRACE = 5.0
"""Seconds open requests get after SIGTERM, long-lived ones (the feed's event streams) included;
the clients reconnect to another replica with Last-Event-ID."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="stackyard-api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=os.environ.get("STACKYARD_HOST", "0.0.0.0"))  # noqa: S104 - a server
    parser.add_argument("--port", type=int, default=int(os.environ.get("STACKYARD_PORT", "8080")))
    args = parser.parse_args(argv)
    configure_logging("stackyard-api")
    serve(create_app(Runtime.from_environment("stackyard-api")), args.host, args.port)


def serve(app: Any, host: str, port: int) -> None:
    """Run an ASGI app as stackyard's programs do: our own logging (no uvicorn access log),
    client addresses from our trusted-proxy rules (not uvicorn's), SHUTDOWN_GRACE on SIGTERM."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
    )


if __name__ == "__main__":
    main()
