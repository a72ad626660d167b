"""stackyard-operator: reconcile stackyard.dev resources into config and workloads.

    stackyard-operator [--namespace NS ...] [--leader-election] [--health-port 8081]

Watches the given namespaces (default: the pod's own namespace, or every namespace
with --all-namespaces). Credentials come from the pod's service account, or else
from KUBECONFIG.

Telemetry (traces, metrics and logs over OTLP) is configured from the standard
environment: OTEL_EXPORTER_OTLP_ENDPOINT (none: nothing is exported),
OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_TRACES_SAMPLER_ARG (the ratio), OTEL_LOGS_EXPORTER=none
and OTEL_SDK_DISABLED. The operator has no Stack of its own to read them from.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import kopf
from stackyard.config.sources import kube_api_client
from stackyard.logs import configure_logging
from stackyard.resources.stack import TelemetrySettings
from stackyard.telemetry import Telemetry

from . import handlers  # noqa: F401 - registers the kopf handlers
from .health import serve_health
from .kube import Kube
from .leader import LeaderElection, LeaseLost

log = logging.getLogger("stackyard_operator")
POD_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
SERVICE = "stackyard-operator"
TELEMETRY_SHUTDOWN_SECONDS = 5.0
"""At most this long to export what is buffered when the operator stops (collector down included)."""
PROTOCOLS = ("http/protobuf", "grpc")


def default_namespace() -> str:
    if env := os.environ.get("STACKYARD_NAMESPACE"):
        return env
    if POD_NAMESPACE_FILE.exists():
        return POD_NAMESPACE_FILE.read_text().strip()
    return "default"


def settings_from_environment(environ: Mapping[str, str]) -> TelemetrySettings:
    """The operator's telemetry settings from the OpenTelemetry SDK's standard variables.

    As the SDK specification asks, a value that cannot be used is ignored with a warning
    (the default applies) rather than stopping the operator: telemetry is never a reason
    not to reconcile."""
    endpoint = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or None
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is not an http(s) URL; telemetry stays off")
        endpoint = None
    raw_protocol = environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip() or "http/protobuf"
    if raw_protocol not in PROTOCOLS:
        log.warning("OTEL_EXPORTER_OTLP_PROTOCOL %r is not one of %s; using http/protobuf", raw_protocol, PROTOCOLS)
    protocol: Literal["http/protobuf", "grpc"] = "grpc" if raw_protocol == "grpc" else "http/protobuf"
    ratio = 1.0
    if raw_ratio := environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip():
        try:
            ratio = float(raw_ratio)
        except ValueError:
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            log.warning("OTEL_TRACES_SAMPLER_ARG %r is not a ratio in [0, 1]; sampling every trace", raw_ratio)
            ratio = 1.0
    disabled = environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    return TelemetrySettings(
        enabled=endpoint is not None and not disabled,
        endpoint=endpoint,
        protocol=protocol,
        sampling_ratio=ratio,
        export_logs=environ.get("OTEL_LOGS_EXPORTER", "").strip().lower() != "none",
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stackyard-operator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--namespace", "-n", action="append", default=[], help="namespace to watch (repeatable)")
    parser.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace")
    parser.add_argument(
        "--leader-election", action="store_true", help="hold a Lease so that only one of several replicas reconciles"
    )
    parser.add_argument("--lease-namespace", default=None, help="namespace of the Lease (default: the first watched)")
    parser.add_argument("--lease-name", default="stackyard-operator")
    parser.add_argument(
        "--lease-seconds",
        type=int,
        default=15,
        help="how long a silent leader keeps the Lease before a follower takes it",
    )
    parser.add_argument(
        "--health-port",
        type=int,
        default=int(os.environ.get("STACKYARD_HEALTH_PORT", "0")),
        help="serve GET /healthz on this port, also while waiting for the Lease (0: off)",
    )
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    health = await serve_health(args.health_port) if args.health_port else None
    try:
        return await operate(args)
    finally:
        if health is not None:
            await health.cleanup()


async def operate(args: argparse.Namespace) -> int:
    """Wait for the Lease if asked to, then run kopf until stopped or the Lease is lost."""
    namespaces = [] if args.all_namespaces else (args.namespace or [default_namespace()])
    api_client = await kube_api_client()
    async with api_client:
        stop = asyncio.Event()
        election = None
        if args.leader_election:
            identity = os.environ.get("STACKYARD_POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
            lease_ns = args.lease_namespace or (namespaces[0] if namespaces else default_namespace())
            election = LeaderElection(
                api_client,
                lease_ns,
                args.lease_name,
                identity,
                args.lease_seconds,
                renew_seconds=args.lease_seconds / 3,
            )
            await election.acquire()
        log.info("watching %s", ", ".join(namespaces) if namespaces else "all namespaces")
        operator = asyncio.create_task(
            kopf.operator(
                standalone=True,
                namespaces=namespaces,
                clusterwide=not namespaces,
                memo=kopf.Memo(kube=Kube(api_client), shared={}, namespaces=namespaces),
                stop_flag=stop,
            )
        )
        if election is None:
            await operator
            return 0
        keeper = asyncio.create_task(election.keep())
        done, _ = await asyncio.wait({operator, keeper}, return_when=asyncio.FIRST_COMPLETED)
        if keeper in done and isinstance(keeper.exception(), LeaseLost):
            log.error("%s; stopping", keeper.exception())
            stop.set()
            await operator
            return 1
        keeper.cancel()
        await election.release()
        return 0


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging(SERVICE)
    telemetry = Telemetry.for_process(SERVICE)
    telemetry.apply(settings_from_environment(os.environ))
    try:
        code = asyncio.run(run(args))
    finally:
        telemetry.shutdown(TELEMETRY_SHUTDOWN_SECONDS)
    sys.exit(code)


if __name__ == "__main__":
    main()
