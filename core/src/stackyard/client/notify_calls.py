"""What each call of /v1/notify (triggers, runs, preferences), /v1/feed (the user's in-app
feed) and /v1/webhooks (endpoints and their deliveries) sends, shared by `notify_async` and
`notify_sync`.

Triggers, runs, another user's preferences and the webhooks go with the Stack's admin API
key (none is sent without one: AdminKeyMissing); the feed and one's own preferences with the
client's token."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from stackyard.notify.contract import (
    FINISHED_RUN_STATUSES,
    Preferences,
    PreferencesUpdate,
    Recipient,
    RunPage,
    RunStatus,
    RunView,
    TriggerAccepted,
    TriggerRequest,
)
from stackyard.notify.feed_contract import (
    BulkAction,
    BulkResult,
    FeedAction,
    FeedCounts,
    FeedMessage,
    FeedPage,
    FeedStatus,
)
from stackyard.notify.webhook_contract import (
    DeliveryPage,
    DeliveryStatus,
    WebhookDelivery,
    WebhookList,
    WebhookView,
)

from .admin_calls import admin
from .calls import Call, Params, _segment

NOTIFY = "/v1/notify"
FEED = "/v1/feed"
WEBHOOKS = "/v1/webhooks"

RecipientLike = str | Recipient | Mapping[str, Any]
"""A user id, or an inline subscriber (Recipient, or its fields as a dict: id, email, name, ...)."""
PreferencesLike = PreferencesUpdate | Mapping[str, Any]
"""A PreferencesUpdate, or its fields as the api takes them ({"channels": {"email": False}, ...})."""

FINISHED_RUN_STATES = FINISHED_RUN_STATUSES
"""The statuses a run no longer leaves."""


def _recipient(value: RecipientLike) -> str | Recipient | Mapping[str, Any]:
    return value if isinstance(value, str | Recipient) else dict(value)


def trigger(
    key: str | None,
    workflow: str,
    *,
    to: RecipientLike | Sequence[RecipientLike],
    data: Mapping[str, Any] | None,
    actor: RecipientLike | None,
    tenant: str | None,
    idempotency_key: str | None,
) -> Call[TriggerAccepted]:
    """POST /v1/notify. The Idempotency-Key header is the caller's key, else a fresh uuid4:
    the same for every retry of this call, so that a retry never starts the runs twice.
    Raises pydantic's ValidationError for a request the contract refuses."""
    recipients = [to] if isinstance(to, str | Recipient | Mapping) else list(to)
    request = TriggerRequest.model_validate(
        {
            "workflow": workflow,
            "recipients": [_recipient(r) for r in recipients],
            "data": dict(data or {}),
            "actor": None if actor is None else _recipient(actor),
            "tenant": tenant,
            "idempotency_key": idempotency_key,
        }
    )
    body = request.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"idempotency_key"})
    headers = admin(key) | {"Idempotency-Key": request.idempotency_key or str(uuid.uuid4())}
    return Call("POST", NOTIFY, TriggerAccepted, json=body, headers=headers, repeatable=True)


def get_run(key: str | None, run_id: str) -> Call[RunView]:
    return Call("GET", f"{NOTIFY}/runs/{_segment(run_id)}", RunView, headers=admin(key), repeatable=True)


def cancel_run(key: str | None, run_id: str) -> Call[RunView]:
    """Not repeatable: a second cancel of the same run is a 409 (it has finished)."""
    return Call("POST", f"{NOTIFY}/runs/{_segment(run_id)}/cancel", RunView, headers=admin(key))


def list_runs(
    key: str | None,
    *,
    workflow: str | None,
    recipient: str | None,
    trigger: str | None,
    status: RunStatus | Sequence[RunStatus] | None,
    limit: int,
    cursor: str | None,
) -> Call[RunPage]:
    """GET /v1/notify/runs with the filters given (`status`: any of these)."""
    given = {"workflow": workflow, "recipient": recipient, "trigger": trigger, "cursor": cursor}
    params: Params = {"limit": limit}
    params |= {name: value for name, value in given.items() if value is not None}
    statuses: list[str] = [status] if isinstance(status, str) else list(status or ())
    if statuses:
        params["status"] = statuses
    return Call("GET", f"{NOTIFY}/runs", RunPage, params=params, headers=admin(key), repeatable=True)


def _preferences_path(user_id: str | None) -> str:
    return f"{NOTIFY}/preferences" if user_id is None else f"{NOTIFY}/users/{_segment(user_id)}/preferences"


def get_preferences(key: str | None, user_id: str | None) -> Call[Preferences]:
    """The token's own preferences (user_id None), or any user's with the admin key."""
    headers = {} if user_id is None else admin(key)
    return Call("GET", _preferences_path(user_id), Preferences, headers=headers, repeatable=True)


def set_preferences(key: str | None, user_id: str | None, update: PreferencesLike) -> Call[Preferences]:
    """PUT merges what is given into what is stored (a channel given as None clears it):
    sending it again changes nothing more. ValidationError for an unknown channel."""
    checked = update if isinstance(update, PreferencesUpdate) else PreferencesUpdate.model_validate(dict(update))
    body = checked.model_dump(mode="json", by_alias=True, exclude_unset=True)
    headers = {} if user_id is None else admin(key)
    return Call("PUT", _preferences_path(user_id), Preferences, json=body, headers=headers, repeatable=True)


# -- the feed (the client's token) ---------------------------------------------------------------


def list_feed(status: FeedStatus, tenant: str | None, limit: int, cursor: str | None) -> Call[FeedPage]:
    params: Params = {"status": status, "limit": limit}
    if tenant is not None:
        params["tenant"] = tenant
    if cursor:
        params["cursor"] = cursor
    return Call("GET", FEED, FeedPage, params=params, repeatable=True)


def feed_counts(tenant: str | None) -> Call[FeedCounts]:
    params: Params = {} if tenant is None else {"tenant": tenant}
    return Call("GET", f"{FEED}/counts", FeedCounts, params=params, repeatable=True)


def get_message(message_id: str) -> Call[FeedMessage]:
    return Call("GET", f"{FEED}/{_segment(message_id)}", FeedMessage, repeatable=True)


def mark(message_id: str, action: FeedAction) -> Call[FeedMessage]:
    """POST /v1/feed/{id}/{action}: the state it sets is the same the second time."""
    return Call("POST", f"{FEED}/{_segment(message_id)}/{action}", FeedMessage, repeatable=True)


def bulk(action: FeedAction, ids: Sequence[str] | None, all: bool, tenant: str | None) -> Call[BulkResult]:
    """POST /v1/feed/bulk; ValidationError unless exactly one of ids and all is given."""
    request = BulkAction(action=action, ids=None if ids is None else list(ids), all=all, tenant=tenant)
    body = request.model_dump(mode="json", by_alias=True, exclude_none=True)
    return Call("POST", f"{FEED}/bulk", BulkResult, json=body, repeatable=True)


# -- webhooks (the admin API key) ----------------------------------------------------------------


def list_webhooks(key: str | None) -> Call[WebhookList]:
    return Call("GET", WEBHOOKS, WebhookList, headers=admin(key), repeatable=True)


def list_deliveries(
    key: str | None, webhook: str, status: DeliveryStatus | None, limit: int, cursor: str | None
) -> Call[DeliveryPage]:
    params: Params = {"limit": limit}
    if status is not None:
        params["status"] = status
    if cursor:
        params["cursor"] = cursor
    path = f"{WEBHOOKS}/{_segment(webhook)}/deliveries"
    return Call("GET", path, DeliveryPage, params=params, headers=admin(key), repeatable=True)


def get_delivery(key: str | None, delivery_id: str) -> Call[WebhookDelivery]:
    path = f"{WEBHOOKS}/deliveries/{_segment(delivery_id)}"
    return Call("GET", path, WebhookDelivery, headers=admin(key), repeatable=True)


def replay_delivery(key: str | None, delivery_id: str) -> Call[WebhookDelivery]:
    """Not repeatable: each replay is a new delivery."""
    path = f"{WEBHOOKS}/deliveries/{_segment(delivery_id)}/replay"
    return Call("POST", path, WebhookDelivery, headers=admin(key))


def enable_webhook(key: str | None, webhook: str) -> Call[WebhookView]:
    return Call("POST", f"{WEBHOOKS}/{_segment(webhook)}/enable", WebhookView, headers=admin(key), repeatable=True)


def test_webhook(key: str | None, webhook: str) -> Call[WebhookDelivery]:
    """POST /v1/webhooks/{name}/test: a webhook.test event, a new delivery each time."""
    return Call("POST", f"{WEBHOOKS}/{_segment(webhook)}/test", WebhookDelivery, headers=admin(key))


class RunWaitTimeout(TimeoutError):
    """`notify.wait` gave up before the run finished; `run` is the last state it read."""

    def __init__(self, run: RunView, timeout: float) -> None:
        super().__init__(f"notification run {run.id} did not finish within {timeout:g} s (status: {run.status})")
        self.run = run
        self.timeout = timeout
