"""/v1/push: web push — the Stack's VAPID public key, and the signed-in user's browser
subscriptions (workflows' push steps send to them; stackyard.notify.push).

GET    /v1/push/vapid-public-key        the applicationServerKey for PushManager.subscribe (no auth)
POST   /v1/push/subscriptions           store the browser's PushSubscription (JSON as the browser gives it)
GET    /v1/push/subscriptions           your subscriptions
DELETE /v1/push/subscriptions/{id}      unsubscribe one (another user's is 404)

Who: the user of the access token (ClaimsDep); the same browser subscribing again (same
endpoint) updates its one record, whoever subscribed it before.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from stackyard.config.runtime import NOTIFY_VAPID_PRIVATE_KEY, NOTIFY_VAPID_PUBLIC_KEY
from stackyard.db.schema import PUSH_SUBSCRIPTIONS, ensure_capability_indexes_once, stack_index_policy
from stackyard.notify.problems import PushNotConfigured
from stackyard.notify.push_contract import (
    PushSubscriptionIn,
    PushSubscriptionList,
    PushSubscriptionView,
    VapidPublicKey,
)
from stackyard.notify.push_subscriptions import PushSubscriptions
from stackyard.runtime import Runtime

from ..auth_deps import ClaimsDep
from ..deps import RuntimeDep
from ..errors import problem_responses

router = APIRouter(prefix="/v1/push", tags=["push"])

SubscriptionId = Annotated[
    str, Path(min_length=6, max_length=64, pattern=r"^psub_[0-9a-f]+$", description="The subscription's id.")
]


async def subscriptions(runtime: Runtime) -> PushSubscriptions:
    """The store on the Stack's database, its index ensured once per database."""
    policy = stack_index_policy(runtime.config.config)
    await ensure_capability_indexes_once(runtime.database, [PUSH_SUBSCRIPTIONS], policy)
    return PushSubscriptions(runtime.database)


@router.get(
    "/vapid-public-key",
    response_model=VapidPublicKey,
    response_model_by_alias=True,
    summary="The VAPID public key",
    description=(
        "The Stack's VAPID public key (uncompressed P-256 point, base64url): give it to "
        "`PushManager.subscribe({userVisibleOnly: true, applicationServerKey})` in the browser. "
        "503 push-not-configured until the operator has made the key pair."
    ),
    responses=problem_responses(503),
)
async def vapid_public_key(runtime: RuntimeDep, response: Response) -> dict[str, Any]:
    credentials = runtime.config.credentials
    public = credentials.get(NOTIFY_VAPID_PUBLIC_KEY)
    if not public or not credentials.get(NOTIFY_VAPID_PRIVATE_KEY):
        raise PushNotConfigured("the Stack's credentials hold no VAPID key pair yet (the operator makes it)")
    response.headers["Cache-Control"] = "public, max-age=300"
    return {"publicKey": public}


@router.post(
    "/subscriptions",
    status_code=201,
    response_model=PushSubscriptionView,
    response_model_by_alias=True,
    summary="Subscribe this browser",
    description=(
        "The browser's `PushSubscription` as `subscription.toJSON()` gives it. The endpoint must be https, "
        "`keys.p256dh` an uncompressed P-256 point and `keys.auth` 16 bytes (base64url), else 422 "
        "subscription-invalid. Subscribing the same endpoint again updates its record (id psub_ + a hash "
        "of the endpoint) and makes it yours."
    ),
    responses=problem_responses(401, 422, 503),
)
async def subscribe(
    body: PushSubscriptionIn, claims: ClaimsDep, request: Request, runtime: RuntimeDep
) -> PushSubscriptionView:
    store = await subscriptions(runtime)
    stored = await store.subscribe(claims.sub, body, user_agent=request.headers.get("user-agent"))
    return stored.view()


@router.get(
    "/subscriptions",
    response_model=PushSubscriptionList,
    response_model_by_alias=True,
    summary="Your push subscriptions",
    responses=problem_responses(401, 503),
)
async def list_subscriptions(claims: ClaimsDep, runtime: RuntimeDep) -> PushSubscriptionList:
    store = await subscriptions(runtime)
    return PushSubscriptionList(items=[s.view() for s in await store.for_user(claims.sub)])


@router.delete(
    "/subscriptions/{subscription_id}",
    status_code=204,
    summary="Unsubscribe",
    description="Forget one of your subscriptions (call it after `subscription.unsubscribe()` in the browser).",
    responses=problem_responses(401, 404, 503),
)
async def unsubscribe(subscription_id: SubscriptionId, claims: ClaimsDep, runtime: RuntimeDep) -> Response:
    store = await subscriptions(runtime)
    await store.delete(subscription_id, claims.sub)
    return Response(status_code=204)
