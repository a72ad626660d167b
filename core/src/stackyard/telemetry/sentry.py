"""Errors to Sentry as well, when a Stack names a DSN. Sentry gets errors only: traces,
metrics and logs go through OTLP. Each event is tagged with the OpenTelemetry trace id, so
one click leads from a Sentry issue to its trace."""

from __future__ import annotations

import logging
from typing import Any

import sentry_sdk
from sentry_sdk.integrations.logging import LoggingIntegration

from .context import current_trace_id

log = logging.getLogger(__name__)


def _tag_trace(event: Any, hint: Any) -> Any:
    if trace_id := current_trace_id():
        event.setdefault("tags", {})["trace_id"] = trace_id
    return event


class SentryLink:
    """Holds the Sentry client in force; `apply` re-initialises it only when its settings change."""

    def __init__(self, release: str) -> None:
        self.release = release
        self._settings: tuple[str, str, float] | None = None

    @property
    def active(self) -> bool:
        return self._settings is not None

    def apply(self, dsn: str | None, environment: str, sample_rate: float) -> None:
        settings = (dsn, environment, sample_rate) if dsn else None
        if settings == self._settings:
            return
        if self._settings is not None:
            sentry_sdk.get_client().close(timeout=2)
        if settings is not None:
            sentry_sdk.init(
                dsn=dsn,
                release=self.release,
                environment=environment,
                sample_rate=sample_rate,
                send_default_pii=False,
                # Errors only, and no monkey-patching of libraries: OpenTelemetry does the tracing.
                traces_sample_rate=None,
                auto_enabling_integrations=False,
                integrations=[LoggingIntegration(level=None, event_level=logging.ERROR)],
                before_send=_tag_trace,
            )
            log.info("errors also go to Sentry (environment %s)", environment)
        else:
            sentry_sdk.init(dsn=None)
        self._settings = settings

    def close(self) -> None:
        if self._settings is not None:
            sentry_sdk.get_client().close(timeout=2)
            self._settings = None
