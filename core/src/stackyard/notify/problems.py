"""The notification capability's problems (RFC 9457). Each part of the capability adds its
own classes at the end of this file."""

from __future__ import annotations

from ..problems import NotFound, Problem


class WorkflowNotFound(NotFound):
    """No NotificationWorkflow with that trigger key in the Stack's config."""

    slug, title = "workflow-not-found", "Notification workflow not found"


class RunNotFound(NotFound):
    slug, title = "run-not-found", "Notification run not found"


class TriggerInvalid(Problem):
    """A trigger the workflow cannot run: a recipient user id that does not exist, a
    recipient without the address a step needs, a cursor this api did not make."""

    status, slug, title = 422, "trigger-invalid", "Invalid trigger"
