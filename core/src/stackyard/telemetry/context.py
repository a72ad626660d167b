"""Trace context across process boundaries (a job carries the context of the request that
enqueued it) and the ids of the current span for logs and problem+json answers."""

from __future__ import annotations

import json

from opentelemetry import propagate, trace
from opentelemetry.context import Context


def inject_trace() -> str | None:
    """The current trace context as a short JSON text (W3C traceparent and tracestate), or
    None when there is no sampled or unsampled span to continue."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return json.dumps(carrier, separators=(",", ":")) if "traceparent" in carrier else None


def extract_trace(text: str | None) -> Context | None:
    """The context that `inject_trace` wrote, or None for no or unreadable text (a job
    enqueued by an older version runs in a trace of its own)."""
    if not text:
        return None
    try:
        carrier = json.loads(text)
    except ValueError:
        return None
    if not isinstance(carrier, dict) or "traceparent" not in carrier:
        return None
    return propagate.extract({str(k): str(v) for k, v in carrier.items()})


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span as 32 and 16 hex digits, if there is one."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)


def current_trace_id() -> str | None:
    ids = current_ids()
    return ids[0] if ids else None
