"""kopf settings for stackyard: no annotations or finalizers written to users' objects,
Events posted only by our own transitions, watches re-established quickly."""

from __future__ import annotations

import kopf


def configure(settings: kopf.OperatorSettings) -> None:
    # We post our own Events on condition transitions; kopf's per-log-line Events are noise.
    settings.posting.enabled = False
    # Handlers are event handlers and timers only: nothing for kopf to remember on objects.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="stackyard.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="stackyard.dev", key="last-handled")
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.reconnect_backoff = 1.0
    settings.networking.request_timeout = 30
