"""`stackyard.auth.events`: every security event the audit log records, by type, through the
OpenTelemetry API (without an SDK installed the counter does nothing and costs next to nothing).

Attributes are the event type (`login.succeeded`, `session.revoked`, …, a fixed set written in
code) and, for types that end in a verdict, `stackyard.auth.outcome` (success or failure), so
one query sums the failures of logins, MFA and password changes. Never the user, the address
or the client: those are in the audit log, which is where a person looks for them.
"""

from __future__ import annotations

from opentelemetry import metrics
from opentelemetry.metrics import Meter

_OUTCOMES = {"succeeded": "success", "failed": "failure"}


def event_attributes(event: str) -> dict[str, str]:
    """The metric's attributes for an audit event type (pure)."""
    attributes = {"stackyard.auth.event": event}
    if outcome := _OUTCOMES.get(event.rpartition(".")[2]):
        attributes["stackyard.auth.outcome"] = outcome
    return attributes


class AuthMetrics:
    def __init__(self, meter: Meter | None = None) -> None:
        meter = meter or metrics.get_meter("stackyard.auth")
        self.events = meter.create_counter(
            "stackyard.auth.events",
            unit="{event}",
            description="Security events written to the audit log, by type (and outcome for logins and checks).",
        )

    def recorded(self, event: str) -> None:
        self.events.add(1, event_attributes(event))


AUTH_METRICS = AuthMetrics()
"""The instruments of the process (the SDK's meters are global)."""
