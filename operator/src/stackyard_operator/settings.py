"""kopf settings for stackyard: no finalizers on users' objects, Events for condition
transitions and kopf's warnings only, watches re-established quickly."""

from __future__ import annotations

import logging

import kopf


def configure(settings: kopf.OperatorSettings, *, explicit_namespaces: bool) -> None:
    # Our own Events (kopf.event, on condition transitions) always; of kopf's per-object
    # log lines only warnings and errors, the rest would be noise.
    settings.posting.enabled = True
    settings.posting.level = logging.WARNING
    # Watching named namespaces needs no cluster-wide scan of namespaces and CRDs, which a
    # namespaced ServiceAccount may not do (kopf would retry it for a minute first).
    settings.scanning.disabled = explicit_namespaces
    # Handlers are event handlers and timers only: nothing for kopf to remember on objects.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="stackyard.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="stackyard.dev", key="last-handled")
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.reconnect_backoff = 1.0
    settings.networking.request_timeout = 30
