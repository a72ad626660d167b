"""What workers know of each Webhook, written to its status: the `Enabled` condition,
status.failingSince and status.lastDelivery (the operator writes Ready and secretName).

Every 10 seconds, and at once when the config changes, each Webhook of the config is read
from the endpoint state the deliveries keep in Redis (stackyard.notify.webhooks.EndpointState):

| the endpoint                                              | Enabled | reason   |
|-----------------------------------------------------------|---------|----------|
| takes deliveries                                          | True    | Enabled  |
| spec.paused                                               | False   | Paused   |
| failed for longer than spec.disableAfter, not re-enabled  | False   | Disabled |

A Disabled condition's lastTransitionTime is when it was disabled and its message says why
and how to enable it again. failingSince is null while the endpoint answers. A status is
written when something changed, and at least every 5 minutes.

    reporter = WebhookStatusReporter(runtime, cluster)
    task = asyncio.create_task(reporter.run(stop))
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from stackyard.notify.webhooks import EndpointState
from stackyard.resources.notify import WebhookSpec
from stackyard.runtime import Runtime
from stackyard.status_reports import ClusterStatus, Condition, PeriodicStatusReporter, now_iso

__all__ = ["CHECK_INTERVAL", "REWRITE_INTERVAL", "WebhookStatusReporter", "enabled_condition", "webhook_view"]

log = logging.getLogger(__name__)

CHECK_INTERVAL = 10.0
REWRITE_INTERVAL = 300.0
WRITE_TIMEOUT = 15.0


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def enabled_condition(ok: bool, reason: str, message: str, since: datetime | None = None) -> Condition:
    return {
        "type": "Enabled",
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "lastTransitionTime": _iso(since) if since is not None else now_iso(),
    }


async def webhook_view(state: EndpointState, name: str, spec: WebhookSpec) -> dict[str, Any]:
    """The status fields of one Webhook from its endpoint state."""
    disabled = await state.disabled(name, spec)
    failing = await state.failing_since(name)
    last = await state.last(name)
    if disabled is not None:
        condition = enabled_condition(
            False,
            "Disabled",
            f"disabled since {_iso(disabled.since)}: {disabled.reason}; POST /v1/webhooks/{name}/enable "
            "or change the Webhook to enable it",
            disabled.since,
        )
    elif spec.paused:
        condition = enabled_condition(False, "Paused", "spec.paused: deliveries are recorded, not sent")
    else:
        condition = enabled_condition(True, "Enabled", f"deliveries go to {spec.url}")
    view: dict[str, Any] = {
        "conditions": [condition],
        "failingSince": _iso(failing) if failing is not None else None,
        "lastDelivery": None,
    }
    if last is not None:
        view["lastDelivery"] = {
            "at": _iso(last.at),
            "eventType": last.event_type,
            "succeeded": last.succeeded,
            "httpStatus": last.http_status,
        }
    return view


class WebhookStatusReporter(PeriodicStatusReporter[WebhookSpec]):
    """Writes every Webhook's Enabled, failingSince and lastDelivery (see the module)."""

    kind, plural = "Webhook", "webhooks"
    ok_word, failed_word = "enabled", "not enabled"
    write_timeout = WRITE_TIMEOUT
    log = log

    def __init__(
        self,
        runtime: Runtime,
        cluster: ClusterStatus,
        *,
        interval: float = CHECK_INTERVAL,
        rewrite_interval: float = REWRITE_INTERVAL,
    ) -> None:
        super().__init__(runtime, cluster, interval=interval, rewrite_interval=rewrite_interval)

    def specs(self) -> Mapping[str, WebhookSpec]:
        return self.runtime.config.config.webhooks

    def _significant(self, view: Mapping[str, Any]) -> dict[str, Any]:
        conditions = [
            {k: v for k, v in c.items() if k != "lastTransitionTime" or c["status"] == "False"}
            for c in view.get("conditions", [])
        ]
        return {**view, "conditions": conditions}

    async def check(self, name: str, spec: WebhookSpec) -> dict[str, Any]:
        config = self.runtime.config.config
        state = EndpointState(self.runtime.redis, f"{config.namespace}/{config.stack}")
        view = await webhook_view(state, name, spec)
        self._note(name, view["conditions"][0])
        return view
