"""Structured logs: one JSON object per line, the same shape in every stackyard program."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
# kopf passes its whole settings object and a flag of its own as `extra`: not for logs.
_IGNORED_EXTRA = {"settings", "k8s_skip", "color_message"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # Fields passed with `extra=` (and trace ids set by telemetry) go in as they are.
        entry.update(
            {
                k: v
                for k, v in record.__dict__.items()
                if k not in _STANDARD and k not in _IGNORED_EXTRA and not k.startswith("_")
            }
        )
        span = trace.get_current_span().get_span_context()
        if span.is_valid and "trace_id" not in entry:
            entry["trace_id"] = trace.format_trace_id(span.trace_id)
            entry["span_id"] = trace.format_span_id(span.span_id)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str | None = None) -> None:
    """JSON lines on stderr at STACKYARD_LOG_LEVEL (default info)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    # Telemetry's OTLP log handler stays, should logging be configured after it was installed.
    root.handlers[:] = [handler, *(h for h in root.handlers if getattr(h, "exports_otlp", False))]
    root.setLevel((level or os.environ.get("STACKYARD_LOG_LEVEL", "info")).upper())
    for noisy in ("kubernetes_asyncio.client.rest", "aiohttp.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
