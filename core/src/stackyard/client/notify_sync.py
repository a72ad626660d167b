"""`Stackyard.notify`, `.feed` and `.webhooks`: trigger NotificationWorkflows and follow
their runs, users' notification preferences, the in-app feed of the client's user, and the
Webhooks with their deliveries. What each call sends is in `notify_calls`."""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from stackyard.notify.contract import Preferences, RunStatus, RunView, TriggerAccepted
from stackyard.notify.feed_contract import BulkResult, FeedAction, FeedCounts, FeedMessage, FeedPage, FeedStatus
from stackyard.notify.webhook_contract import (
    DeliveryPage,
    DeliveryStatus,
    DeliverySummary,
    WebhookDelivery,
    WebhookView,
)

from . import notify_calls
from .notify_calls import PreferencesLike, RecipientLike, RunWaitTimeout

if TYPE_CHECKING:
    from collections.abc import Callable

    from stackyard.notify.contract import RunPage

    from .sync_client import Stackyard


class Notify:
    """Triggers and runs go with the admin API key (AdminKeyMissing, a ValueError, before
    anything is sent when the client has none); preferences with the client's token, or the
    admin key for another user's (`user_id=`)."""

    def __init__(self, client: Stackyard, key: str | None) -> None:
        self._client = client
        self._key = key

    def __repr__(self) -> str:
        return "Notify()"

    def trigger(
        self,
        workflow: str,
        to: RecipientLike | Sequence[RecipientLike],
        *,
        data: Mapping[str, Any] | None = None,
        actor: RecipientLike | None = None,
        tenant: str | None = None,
        idempotency_key: str | None = None,
    ) -> TriggerAccepted:
        """Run the workflow of trigger key `workflow` for each recipient of `to` (user ids, or
        inline subscribers: a Recipient or a dict with id, email, name, ...). Answers at once
        with the trigger's id; workers run each recipient's run. The same idempotency key (a
        fresh one when none is given) answers the first trigger and starts nothing more.
        Raises pydantic's ValidationError before sending anything the contract refuses;
        NotFound for an unknown workflow."""
        call = notify_calls.trigger(
            self._key,
            workflow,
            to=to,
            data=data,
            actor=actor,
            tenant=tenant,
            idempotency_key=idempotency_key,
        )
        return self._client.send(call)

    def run(self, run_id: str) -> RunView:
        """One run (one recipient of one trigger) with each step's outcome."""
        return self._client.send(notify_calls.get_run(self._key, run_id))

    def runs(
        self,
        *,
        workflow: str | None = None,
        recipient: str | None = None,
        trigger: str | None = None,
        status: RunStatus | Sequence[RunStatus] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        """One page of runs, newest first; every filter given applies."""
        call = notify_calls.list_runs(
            self._key,
            workflow=workflow,
            recipient=recipient,
            trigger=trigger,
            status=status,
            limit=limit,
            cursor=cursor,
        )
        return self._client.send(call)

    def iter_runs(
        self,
        *,
        workflow: str | None = None,
        recipient: str | None = None,
        trigger: str | None = None,
        status: RunStatus | Sequence[RunStatus] | None = None,
        page_size: int = 100,
    ) -> Iterator[RunView]:
        """Every run the filters select, newest first, a page at a time."""
        cursor: str | None = None
        while True:
            page = self.runs(
                workflow=workflow,
                recipient=recipient,
                trigger=trigger,
                status=status,
                limit=page_size,
                cursor=cursor,
            )
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def cancel(self, run_id: str) -> RunView:
        """Stop a run: the steps not yet done are not done. Conflict when it has finished."""
        return self._client.send(notify_calls.cancel_run(self._key, run_id))

    def wait(
        self,
        run_id: str,
        *,
        timeout: float | None = 60.0,
        poll: float = 0.5,
        on_update: Callable[[RunView], object] | None = None,
    ) -> RunView:
        """Read the run every `poll` seconds until it has finished (completed, failed,
        cancelled, digested or throttled) and return it; RunWaitTimeout after `timeout`
        seconds (None: no limit). `on_update` sees every read."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            if on_update is not None:
                on_update(run)
            if run.status in notify_calls.FINISHED_RUN_STATES:
                return run
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RunWaitTimeout(run, timeout or 0.0)
                time.sleep(min(poll, left))
            else:
                time.sleep(poll)

    def preferences(self, user_id: str | None = None) -> Preferences:
        """The notification preferences of the client's user, or of `user_id` (admin key)."""
        return self._client.send(notify_calls.get_preferences(self._key, user_id))

    def set_preferences(self, update: PreferencesLike, *, user_id: str | None = None) -> Preferences:
        """Merge `update` into the preferences (of the client's user, or of `user_id` with
        the admin key) and return them whole: {"channels": {"email": False}} turns email
        off for every workflow that allows it; `workflows` and `categories` hold the same
        per trigger key and per category."""
        return self._client.send(notify_calls.set_preferences(self._key, user_id, update))


class Feed:
    """The in-app feed of the client's user (its access token): messages newest first with
    the unread and unseen counts, marks one by one or in bulk."""

    def __init__(self, client: Stackyard) -> None:
        self._client = client

    def __repr__(self) -> str:
        return "Feed()"

    def list(
        self, *, status: FeedStatus = "all", tenant: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> FeedPage:
        """One page of messages (all: not archived; unread, unseen, read, archived), newest
        first, with the counts (total, unread, unseen)."""
        return self._client.send(notify_calls.list_feed(status, tenant, limit, cursor))

    def iter(
        self, *, status: FeedStatus = "all", tenant: str | None = None, page_size: int = 100
    ) -> Iterator[FeedMessage]:
        """Every message of `status`, newest first, a page at a time."""
        cursor: str | None = None
        while True:
            page = self.list(status=status, tenant=tenant, limit=page_size, cursor=cursor)
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def counts(self, *, tenant: str | None = None) -> FeedCounts:
        """The messages not archived (of `tenant`): total, unread, unseen."""
        return self._client.send(notify_calls.feed_counts(tenant))

    def get(self, message_id: str) -> FeedMessage:
        """One message of the user's. NotFound for another user's."""
        return self._client.send(notify_calls.get_message(message_id))

    def mark(self, message_id: str, action: FeedAction) -> FeedMessage:
        """seen, read (seen too), unread, archive or unarchive one message. NotFound for
        another user's."""
        return self._client.send(notify_calls.mark(message_id, action))

    def seen(self, message_id: str) -> FeedMessage:
        return self.mark(message_id, "seen")

    def read(self, message_id: str) -> FeedMessage:
        return self.mark(message_id, "read")

    def unread(self, message_id: str) -> FeedMessage:
        return self.mark(message_id, "unread")

    def archive(self, message_id: str) -> FeedMessage:
        return self.mark(message_id, "archive")

    def unarchive(self, message_id: str) -> FeedMessage:
        return self.mark(message_id, "unarchive")

    def bulk(
        self,
        action: FeedAction,
        *,
        ids: Sequence[str] | None = None,
        all: bool = False,
        tenant: str | None = None,
    ) -> BulkResult:
        """One action on the messages of `ids`, or on every message (of `tenant`) with
        all=True: how many changed and the counts afterwards."""
        return self._client.send(notify_calls.bulk(action, ids, all, tenant))


class Webhooks:
    """The Webhooks in force and their delivery log, with the admin API key (AdminKeyMissing,
    a ValueError, before anything is sent when the client has none)."""

    def __init__(self, client: Stackyard, key: str | None) -> None:
        self._client = client
        self._key = key

    def __repr__(self) -> str:
        return "Webhooks()"

    def list(self) -> builtins.list[WebhookView]:
        """Every Webhook of the Stack: enabled or not, failing since when, the last delivery."""
        return (self._client.send(notify_calls.list_webhooks(self._key))).items

    def deliveries(
        self, webhook: str, *, status: DeliveryStatus | None = None, limit: int = 50, cursor: str | None = None
    ) -> DeliveryPage:
        """One page of the Webhook's deliveries, newest first."""
        return self._client.send(notify_calls.list_deliveries(self._key, webhook, status, limit, cursor))

    def iter_deliveries(
        self, webhook: str, *, status: DeliveryStatus | None = None, page_size: int = 100
    ) -> Iterator[DeliverySummary]:
        """Every delivery of the Webhook (of `status`), newest first, a page at a time."""
        cursor: str | None = None
        while True:
            page = self.deliveries(webhook, status=status, limit=page_size, cursor=cursor)
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def delivery(self, delivery_id: str) -> WebhookDelivery:
        """One delivery with its payload and every attempt."""
        return self._client.send(notify_calls.get_delivery(self._key, delivery_id))

    def replay(self, delivery_id: str) -> WebhookDelivery:
        """Send a delivery's payload again: a new delivery (its replayOf names the first)."""
        return self._client.send(notify_calls.replay_delivery(self._key, delivery_id))

    def enable(self, webhook: str) -> WebhookView:
        """Enable an endpoint that was disabled for failing too long."""
        return self._client.send(notify_calls.enable_webhook(self._key, webhook))

    def test(self, webhook: str) -> WebhookDelivery:
        """Send a webhook.test event to the endpoint: the new delivery."""
        return self._client.send(notify_calls.test_webhook(self._key, webhook))
