"""The OpenTelemetry Resource of a stackyard process, per the semantic conventions:
`service.*` from the program, `k8s.*` from the pod's environment (the operator sets the
downward-API variables), and whatever OTEL_RESOURCE_ATTRIBUTES adds."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping

from opentelemetry.sdk.resources import Resource

SERVICE_NAMESPACE = "stackyard"

# Resource attribute <- environment variable (set from the downward API by the operator and the chart).
_FROM_ENVIRONMENT = {
    "k8s.namespace.name": "STACKYARD_NAMESPACE",
    "k8s.pod.name": "STACKYARD_POD_NAME",
    "k8s.pod.uid": "STACKYARD_POD_UID",
    "k8s.node.name": "STACKYARD_NODE_NAME",
    "k8s.deployment.name": "STACKYARD_DEPLOYMENT",
    "stackyard.stack": "STACKYARD_STACK",
}


def resource_attributes(service: str, version: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The attributes for `service` (e.g. "stackyard-api") at `version` in this environment."""
    attributes = {
        "service.name": service,
        "service.namespace": SERVICE_NAMESPACE,
        "service.version": version,
        # One per process: the pod's name where there is one (stable in logs), else host and a uuid.
        "service.instance.id": environ.get("STACKYARD_POD_NAME") or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}",
    }
    attributes |= {attribute: environ[name] for attribute, name in _FROM_ENVIRONMENT.items() if environ.get(name)}
    return attributes


def service_resource(service: str, version: str, environ: Mapping[str, str] | None = None) -> Resource:
    """`resource_attributes` merged under OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME (which win)."""
    environ = os.environ if environ is None else environ
    return Resource.create(resource_attributes(service, version, environ))
