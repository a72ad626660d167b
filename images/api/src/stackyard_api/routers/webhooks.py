"""/v1/webhooks: the Webhooks in force, their delivery log, replay, enable and test. Every
route takes the admin API key.

GET  /v1/webhooks                             each Webhook with enabled, failingSince, lastDelivery
GET  /v1/webhooks/deliveries/{id}             one delivery with its payload and attempts
POST /v1/webhooks/deliveries/{id}/replay      a new delivery of the same payload (replayOf)
GET  /v1/webhooks/{name}/deliveries           a Webhook's deliveries, newest first
POST /v1/webhooks/{name}/enable               enable an endpoint disabled for failing
POST /v1/webhooks/{name}/test                 send a webhook.test event
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from stackyard.notify.events import PlatformEvents
from stackyard.notify.problems import DeliveryNotFound
from stackyard.notify.webhook_contract import (
    DeliveryPage,
    DeliveryStatus,
    WebhookDelivery,
    WebhookList,
    WebhookView,
)
from stackyard.notify.webhooks import EndpointState, describe_disabled
from stackyard.resources.notify import WebhookSpec

from ..auth_deps import AdminDep
from ..deps import RuntimeDep
from ..errors import problem_responses

router = APIRouter(tags=["webhooks"])


def _events(runtime: RuntimeDep) -> PlatformEvents:
    return PlatformEvents.of_runtime(runtime)


def _state(runtime: RuntimeDep) -> EndpointState:
    config = runtime.config.config
    return EndpointState(runtime.redis, f"{config.namespace}/{config.stack}")


async def _view(state: EndpointState, name: str, spec: WebhookSpec) -> WebhookView:
    disabled = await state.disabled(name, spec)
    return WebhookView.model_validate(
        {
            "name": name,
            "url": spec.url,
            "events": list(spec.events),
            "description": spec.description,
            "paused": spec.paused,
            "failing_since": await state.failing_since(name),
            "last_delivery": await state.last(name),
            **describe_disabled(disabled),
        }
    )


@router.get(
    "/v1/webhooks",
    response_model=WebhookList,
    response_model_by_alias=True,
    summary="The Webhooks in force",
    description="Each Webhook of the Stack with whether its endpoint is enabled, since when it has been failing "
    "and its latest delivery attempt.",
    responses=problem_responses(401, 503),
)
async def list_webhooks(runtime: RuntimeDep, _: AdminDep) -> WebhookList:
    state = _state(runtime)
    webhooks = sorted(runtime.config.config.webhooks.items())
    return WebhookList(items=[await _view(state, name, spec) for name, spec in webhooks])


@router.get(
    "/v1/webhooks/deliveries/{delivery_id}",
    response_model=WebhookDelivery,
    response_model_by_alias=True,
    summary="One delivery with its attempts",
    responses=problem_responses(401, 404, 503),
)
async def get_delivery(delivery_id: str, runtime: RuntimeDep, _: AdminDep) -> WebhookDelivery:
    found = await (await _events(runtime).store()).get(delivery_id)
    if found is None:
        raise DeliveryNotFound(f"no webhook delivery {delivery_id}", id=delivery_id)
    return found


@router.post(
    "/v1/webhooks/deliveries/{delivery_id}/replay",
    status_code=202,
    response_model=WebhookDelivery,
    response_model_by_alias=True,
    summary="Replay a delivery",
    description="A new delivery (new id, so a new webhook-id) of the same payload to the same Webhook, with "
    "replayOf naming the first; sent as any delivery (paused when the Webhook is).",
    responses=problem_responses(401, 404, 503),
)
async def replay_delivery(delivery_id: str, runtime: RuntimeDep, _: AdminDep) -> WebhookDelivery:
    return await _events(runtime).replay(delivery_id)


@router.get(
    "/v1/webhooks/{name}/deliveries",
    response_model=DeliveryPage,
    response_model_by_alias=True,
    summary="A Webhook's delivery log",
    description="Newest first; pass nextCursor as cursor for the next page.",
    responses=problem_responses(401, 404, 422, 503),
)
async def list_deliveries(
    name: str,
    runtime: RuntimeDep,
    _: AdminDep,
    status: DeliveryStatus | None = None,
    event_type: Annotated[str | None, Query(alias="eventType", max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> DeliveryPage:
    events = _events(runtime)
    events.spec(name)
    store = await events.store()
    return await store.page(name, status=status, event_type=event_type, limit=limit, cursor=cursor)


@router.post(
    "/v1/webhooks/{name}/enable",
    response_model=WebhookView,
    response_model_by_alias=True,
    summary="Enable an endpoint again",
    description="Clears the disable (and the failure streak) of an endpoint disabled after failing for longer than "
    "its disableAfter; new deliveries are sent again. Deliveries failed meanwhile can be replayed.",
    responses=problem_responses(401, 404, 503),
)
async def enable_webhook(name: str, runtime: RuntimeDep, _: AdminDep) -> WebhookView:
    spec = _events(runtime).spec(name)
    state = _state(runtime)
    await state.enable(name)
    return await _view(state, name, spec)


@router.post(
    "/v1/webhooks/{name}/test",
    status_code=202,
    response_model=WebhookDelivery,
    response_model_by_alias=True,
    summary="Send a test event",
    description="Sends a webhook.test event to the endpoint, whatever its events say; follow it with "
    "GET /v1/webhooks/deliveries/{id}.",
    responses=problem_responses(401, 404, 503),
)
async def send_test_event(name: str, runtime: RuntimeDep, _: AdminDep) -> WebhookDelivery:
    events = _events(runtime)
    delivery_id = await events.send_to(
        name, "webhook.test", {"webhook": name, "message": "a test event"}, idempotency_key=None
    )
    delivery = await (await events.store()).get(delivery_id)
    assert delivery is not None
    return delivery
