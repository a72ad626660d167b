"""/v1/notify: trigger NotificationWorkflows, follow and cancel their runs, and keep users'
notification preferences.

POST /v1/notify                              trigger a workflow (202; 200 with Idempotent-Replayed)
GET  /v1/notify/runs                         runs, newest first, filtered, paginated
GET  /v1/notify/runs/{id}                    one run with each step's outcome
POST /v1/notify/runs/{id}/cancel             cancel a run
GET  /v1/notify/preferences                  the caller's preferences (access token)
PUT  /v1/notify/preferences                  change them (merged)
GET  /v1/notify/users/{userId}/preferences   any user's (admin API key)
PUT  /v1/notify/users/{userId}/preferences   change them (admin API key)

Who: triggers, runs and another user's preferences need the Stack's admin API key (a backend
calls them); a user's own preferences need their access token (the app's settings page).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Response
from stackyard.db.schema import NOTIFICATION_RUNS, ensure_capability_indexes_once, stack_index_policy
from stackyard.notify.contract import (
    Preferences,
    PreferencesUpdate,
    RunFilter,
    RunPage,
    RunStatus,
    RunView,
    TriggerAccepted,
    TriggerRequest,
)
from stackyard.notify.service import NotifyService
from stackyard.problems import UnprocessableContent

from ..auth_deps import AdminDep, ClaimsDep
from ..deps import RuntimeDep
from ..errors import problem_responses

router = APIRouter(prefix="/v1/notify", tags=["notifications"])

RunId = Annotated[str, Path(min_length=1, max_length=100, description="The run's id (nrun_…).")]
UserId = Annotated[str, Path(alias="userId", min_length=1, max_length=200, description="The user's id.")]


async def notify_service(runtime: RuntimeDep) -> NotifyService:
    """The NotifyService of the config in force; its indexes ensured once per database."""
    config = runtime.config.config
    await ensure_capability_indexes_once(runtime.database, [NOTIFICATION_RUNS], stack_index_policy(config))
    return NotifyService(runtime.redis, runtime.database, config, f"{config.namespace}/{config.stack}")


ServiceDep = Annotated[NotifyService, Depends(notify_service)]


@router.post(
    "",
    status_code=202,
    response_model=TriggerAccepted,
    response_model_by_alias=True,
    summary="Trigger a notification workflow",
    description=(
        "Starts one run of the NotificationWorkflow of trigger key `workflow` per recipient (user ids, or inline "
        "subscribers with their address) and answers at once with the trigger's id; workers run the steps on the "
        "jobs capability, durably. With an idempotency key (body or Idempotency-Key header) already used, nothing "
        "more starts: the answer is 200 with the first trigger and Idempotent-Replayed: true (409 when the body "
        "differs). Needs the admin API key."
    ),
    responses={200: {"description": "The trigger first accepted with this idempotency key"}}
    | problem_responses(401, 404, 409, 422, 503),
)
async def trigger(
    _admin: AdminDep,
    body: TriggerRequest,
    service: ServiceDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> TriggerAccepted:
    if idempotency_key and body.idempotency_key and idempotency_key != body.idempotency_key:
        raise UnprocessableContent("the Idempotency-Key header and idempotencyKey in the body differ")
    accepted, replayed = await service.trigger(body, idempotency_key or body.idempotency_key)
    response.headers["Location"] = f"/v1/notify/runs?trigger={accepted.id}"
    if replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return accepted


@router.get(
    "/runs",
    response_model=RunPage,
    response_model_by_alias=True,
    summary="Notification runs",
    description=(
        "One run per recipient of each trigger, newest first; every filter given applies. Pass nextCursor as "
        "cursor for the next page. Needs the admin API key."
    ),
    responses=problem_responses(401, 422, 503),
)
async def list_runs(
    _admin: AdminDep,
    service: ServiceDep,
    workflow: Annotated[str | None, Query(max_length=128, description="A trigger key.")] = None,
    recipient: Annotated[str | None, Query(max_length=200, description="A recipient's id.")] = None,
    trigger: Annotated[str | None, Query(max_length=100, description="A trigger's id (ntr_…).")] = None,
    status: Annotated[list[RunStatus], Query(description="Any of these; repeatable.")] = [],  # noqa: B006
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> RunPage:
    selector = RunFilter(workflow=workflow, recipient=recipient, trigger=trigger, status=status or None)
    return await service.list_runs(selector, limit, cursor)


@router.get(
    "/runs/{run_id}",
    response_model=RunView,
    response_model_by_alias=True,
    summary="One notification run with each step's outcome",
    description="Needs the admin API key.",
    responses=problem_responses(401, 404, 503),
)
async def get_run(_admin: AdminDep, run_id: RunId, service: ServiceDep) -> RunView:
    return await service.get_run(run_id)


@router.post(
    "/runs/{run_id}/cancel",
    response_model=RunView,
    response_model_by_alias=True,
    summary="Cancel a notification run",
    description="The steps not yet done are not done. Needs the admin API key.",
    responses=problem_responses(401, 404, 409, 503),
)
async def cancel_run(_admin: AdminDep, run_id: RunId, service: ServiceDep) -> RunView:
    return await service.cancel_run(run_id)


PREFERENCES_DESCRIPTION = (
    "Per channel (email, inApp, push, webhook), per workflow (by trigger key) and per category: true opts in, "
    "false opts out, a channel left out follows the workflow's default. A workflow with required preferences "
    "ignores them."
)


@router.get(
    "/preferences",
    response_model=Preferences,
    response_model_by_alias=True,
    summary="Your notification preferences",
    description=PREFERENCES_DESCRIPTION + " Needs the user's access token.",
    responses=problem_responses(401, 503),
)
async def own_preferences(claims: ClaimsDep, service: ServiceDep) -> Preferences:
    return await service.get_preferences(claims.sub)


@router.put(
    "/preferences",
    response_model=Preferences,
    response_model_by_alias=True,
    summary="Change your notification preferences",
    description="What is given is merged into what is stored; the answer is the whole. " + PREFERENCES_DESCRIPTION,
    responses=problem_responses(401, 422, 503),
)
async def set_own_preferences(claims: ClaimsDep, body: PreferencesUpdate, service: ServiceDep) -> Preferences:
    return await service.set_preferences(claims.sub, body)


@router.get(
    "/users/{userId}/preferences",
    response_model=Preferences,
    response_model_by_alias=True,
    summary="A user's notification preferences",
    description=PREFERENCES_DESCRIPTION + " Needs the admin API key.",
    responses=problem_responses(401, 503),
)
async def user_preferences(_admin: AdminDep, user_id: UserId, service: ServiceDep) -> Preferences:
    return await service.get_preferences(user_id)


@router.put(
    "/users/{userId}/preferences",
    response_model=Preferences,
    response_model_by_alias=True,
    summary="Change a user's notification preferences",
    description="What is given is merged into what is stored. " + PREFERENCES_DESCRIPTION + " Needs the admin API key.",
    responses=problem_responses(401, 422, 503),
)
async def set_user_preferences(
    _admin: AdminDep, user_id: UserId, body: PreferencesUpdate, service: ServiceDep
) -> Preferences:
    return await service.set_preferences(user_id, body)
