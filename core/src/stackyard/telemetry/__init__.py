"""Telemetry: OpenTelemetry traces, metrics and logs for every stackyard program, exported
over OTLP as the Stack's `spec.telemetry` says, and errors to Sentry when it names a DSN.

Capabilities make their own spans and instruments with the OpenTelemetry API
(`trace.get_tracer("stackyard.<capability>")`, `metrics.get_meter(...)`); `Telemetry`
installs the SDK behind that API in each process and keeps it in step with the config.
"""

from .context import current_ids, current_trace_id, extract_trace, inject_trace
from .resource import service_resource
from .setup import SECONDS_BUCKETS, Telemetry, use_stable_semantic_conventions

__all__ = [
    "SECONDS_BUCKETS",
    "Telemetry",
    "current_ids",
    "current_trace_id",
    "extract_trace",
    "inject_trace",
    "service_resource",
    "use_stable_semantic_conventions",
]
