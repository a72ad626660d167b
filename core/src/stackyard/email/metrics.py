"""Email metrics through the OpenTelemetry API (names from the telemetry contract). Without an
SDK configured the instruments do nothing and cost next to nothing.

- `stackyard.email.sends` (counter) and `stackyard.email.send.duration` (histogram, s): one
  per provider call, by `stackyard.email.provider`, `stackyard.email.provider.type`,
  `stackyard.email.outcome` (sent, rejected, failed) and `error.type` when not sent. Attempts
  that never reached the provider (its breaker open, over its send rate, a send an earlier
  attempt already made or left in doubt) are not sends: they show in `failovers` and in the
  `send email` spans.
- `stackyard.email.failovers` (counter): a message left `stackyard.email.provider` for
  `stackyard.email.provider.next`.
- `stackyard.email.breaker.state` (observable gauge): 0 closed, 1 half-open, 2 open.

Attributes name providers and kinds of failure only: never an address, a subject or a key.

One `EmailMetrics` per process (`email_metrics()`): the SDK keeps the first instrument made
under a name, so a second instance's breaker gauge would never be observed.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from ..telemetry import SECONDS_BUCKETS
from .breaker import BreakerState

BREAKER_LEVELS: dict[BreakerState, int] = {"closed": 0, "half_open": 1, "open": 2}


class EmailMetrics:
    def __init__(self, meter: Meter | None = None) -> None:
        meter = meter or metrics.get_meter("stackyard.email")
        self.sends = meter.create_counter(
            "stackyard.email.sends", unit="{message}", description="Provider calls by provider and outcome."
        )
        self.send_duration = meter.create_histogram(
            "stackyard.email.send.duration",
            unit="s",
            description="Time a provider took to take or refuse a message.",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )
        self.failovers = meter.create_counter(
            "stackyard.email.failovers", unit="{failover}", description="Messages passed on to the next provider."
        )
        self._breakers: dict[str, BreakerState] = {}
        meter.create_observable_gauge(
            "stackyard.email.breaker.state",
            callbacks=[self._observe_breakers],
            unit="1",
            description="Circuit breaker of each provider: 0 closed, 1 half-open, 2 open.",
        )

    @staticmethod
    def attributes(provider: str, provider_type: str, outcome: str, error: str | None) -> dict[str, Any]:
        attributes = {
            "stackyard.email.provider": provider,
            "stackyard.email.provider.type": provider_type,
            "stackyard.email.outcome": outcome,
        }
        return attributes | {"error.type": error} if error is not None else attributes

    def sent(self, provider: str, provider_type: str, outcome: str, seconds: float, error: str | None = None) -> None:
        attributes = self.attributes(provider, provider_type, outcome, error)
        self.sends.add(1, attributes)
        self.send_duration.record(seconds, attributes)

    def failover(self, provider: str, next_provider: str) -> None:
        self.failovers.add(1, {"stackyard.email.provider": provider, "stackyard.email.provider.next": next_provider})

    def breaker(self, provider: str, state: BreakerState) -> None:
        """Note the state a breaker was just seen in.

        The state lives in Redis, but the gauge's callback runs on the SDK's export thread and
        cannot await Redis: it reports the last state this process saw, which every read or
        change of the breaker updates (a send's permit and outcome, the EmailProvider status
        reporter's reads). Each replica reports what it saw last; a change made by another
        replica shows here at this replica's next send or read."""
        self._breakers[provider] = state

    def forget(self, provider: str) -> None:
        """Stop reporting a provider the config no longer has."""
        self._breakers.pop(provider, None)

    def _observe_breakers(self, options: CallbackOptions) -> Iterable[Observation]:
        for provider, state in list(self._breakers.items()):
            yield Observation(BREAKER_LEVELS[state], {"stackyard.email.provider": provider})


@cache
def email_metrics() -> EmailMetrics:
    """The process's EmailMetrics."""
    return EmailMetrics()
