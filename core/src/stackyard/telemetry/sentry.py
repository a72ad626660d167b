"""Errors to Sentry as well, when a Stack names a DSN. Sentry gets errors only: traces,
metrics and logs go through OTLP. Each event is tagged with the OpenTelemetry trace id, so
one click leads from a Sentry issue to its trace.

What leaves the process is what the logs already say (an ERROR record, its message and its
exception with the stack trace) and nothing else: no personal data, no local variables, no
request cookies, headers or bodies, no process arguments or outgoing-call breadcrumbs
(`_scrub` removes whatever an integration might still add). The DSN is never logged.

Sending never blocks the caller: the SDK queues an event for its own background thread
(`BackgroundWorker`, a bounded queue that drops when full), which does the HTTP, obeys 429
and Retry-After, and gives up after its timeout. Re-pointing closes the old client on a
thread of its own, because config changes are applied on the event loop.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, cast

import sentry_sdk
from sentry_sdk.consts import DEFAULT_OPTIONS
from sentry_sdk.integrations.argv import ArgvIntegration
from sentry_sdk.integrations.logging import LoggingIntegration, ignore_logger
from sentry_sdk.integrations.stdlib import StdlibIntegration
from sentry_sdk.types import Event, Hint
from sentry_sdk.utils import BadDsn

from .context import current_ids

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 2.0
"""Seconds a replaced client may take to send what it still holds."""

_SENSITIVE = ("auth", "cookie", "token", "secret", "password", "passwd", "key", "dsn", "session", "credential")


def _is_sensitive(name: object) -> bool:
    lowered = str(name).lower()
    return any(term in lowered for term in _SENSITIVE)


def _privacy_options() -> dict[str, Any]:
    """Collect no personal or request data. Newer SDKs take this as `data_collection` (and
    warn that `send_default_pii` is deprecated); older ones as `send_default_pii=False`
    without local variables."""
    if "data_collection" in DEFAULT_OPTIONS:
        off = {"mode": "off"}
        return {
            "data_collection": {
                "user_info": False,
                "cookies": off,
                "http_headers": {"request": off},
                "http_bodies": [],
                "url_query_params": off,
                "graphql": {"document": False, "variables": False},
                "gen_ai": {"inputs": False, "outputs": False},
                "database_query_data": False,
                "queues": False,
                "stack_frame_variables": False,
            }
        }
    return {"send_default_pii": False, "include_local_variables": False, "max_request_body_size": "never"}


def _tag_trace(event: dict[str, Any]) -> None:
    """The OpenTelemetry trace id as the `trace_id` tag, and as the event's trace context
    (Sentry's own would be a random id that leads nowhere)."""
    ids = current_ids()
    if ids is None:
        return
    trace_id, span_id = ids
    event.setdefault("tags", {})["trace_id"] = trace_id
    contexts = event.setdefault("contexts", {})
    contexts["trace"] = {**(contexts.get("trace") or {}), "trace_id": trace_id, "span_id": span_id}


def _scrub(event: dict[str, Any]) -> None:
    """Drop what could carry secrets or personal data even with collection off: request
    bodies, cookies, headers and query strings, the user, breadcrumb data, local variables,
    extras whose names look like secrets."""
    request = event.get("request")
    if isinstance(request, dict):
        event["request"] = {k: request[k] for k in ("method", "url") if k in request}
        if isinstance(url := event["request"].get("url"), str):
            event["request"]["url"] = url.partition("?")[0]
    event.pop("user", None)
    extra = event.get("extra")
    if isinstance(extra, dict):
        event["extra"] = {k: v for k, v in extra.items() if not _is_sensitive(k) and k != "sys.argv"}
    crumbs = event.get("breadcrumbs")
    for crumb in crumbs.get("values", []) if isinstance(crumbs, dict) else crumbs or []:
        if isinstance(crumb, dict):
            crumb.pop("data", None)
    for exception in (event.get("exception") or {}).get("values") or []:
        for frame in ((exception or {}).get("stacktrace") or {}).get("frames") or []:
            if isinstance(frame, dict):
                frame.pop("vars", None)


def before_send(event: Event, hint: Hint) -> Event:
    """Sentry's `before_send`: runs in the thread that captured the error, so the current
    span is the one the error happened in."""
    data = cast(dict[str, Any], event)
    _tag_trace(data)
    _scrub(data)
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
            _close_in_background(sentry_sdk.get_client())
            sentry_sdk.get_global_scope().set_client(None)
            self._settings = None
        if settings is None:
            log.info("errors no longer go to Sentry")
            return
        # The exporters' complaints (collector down, one per failed export) are no application
        # errors: they stay on stderr, as they stay out of the OTLP logs.
        ignore_logger("opentelemetry.*")
        try:
            sentry_sdk.init(
                dsn=dsn,
                release=self.release,
                environment=environment,
                sample_rate=sample_rate,
                # Never the SDK's debug output (SENTRY_DEBUG), which prints what it sends.
                debug=False,
                # Errors only, and no monkey-patching of libraries: OpenTelemetry does the tracing.
                traces_sample_rate=None,
                auto_enabling_integrations=False,
                disabled_integrations=[ArgvIntegration(), StdlibIntegration()],
                integrations=[LoggingIntegration(level=None, event_level=logging.ERROR)],
                before_send=before_send,
                **_privacy_options(),
            )
        except BadDsn:
            # The DSN itself stays out of the log: its key is a credential.
            log.error("spec.telemetry.sentry: the DSN in its Secret is not a valid Sentry DSN; errors are not sent")
            sentry_sdk.get_global_scope().set_client(None)
            return
        self._settings = settings
        log.info("errors also go to Sentry (environment %s)", environment)

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Send what the client holds (within `timeout`) and stop sending."""
        if self._settings is not None:
            sentry_sdk.get_client().close(timeout=timeout)
            sentry_sdk.get_global_scope().set_client(None)
            self._settings = None


def _close_in_background(client: Any) -> None:
    threading.Thread(
        target=client.close, kwargs={"timeout": CLOSE_TIMEOUT}, name="sentry client close", daemon=True
    ).start()
