"""/v1/emails, /v1/email-templates and /v1/suppressions: send, follow and cancel email,
preview templates, take provider events, keep the suppression list.

POST   /v1/emails                              accept a message (202; 200 with Idempotent-Replayed)
GET    /v1/emails                              the delivery log, newest first, filtered, paginated
GET    /v1/emails/{id}                         one message with its timeline
POST   /v1/emails/{id}/cancel                  cancel a scheduled message
POST   /v1/email-templates/{name}/preview      render an EmailTemplate with sample values
POST   /v1/emails/webhooks/{provider}          a provider's delivery events (signature verified)
GET    /v1/suppressions                        the suppression list
POST   /v1/suppressions                        add an address
DELETE /v1/suppressions/{address}              remove an address
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from stackyard.db.schema import stack_index_policy
from stackyard.email.contract import (
    EmailAccepted,
    EmailFilter,
    EmailPage,
    EmailRecord,
    EmailStatus,
    PreviewRequest,
    PreviewResult,
    SendEmailRequest,
    Suppression,
    SuppressionPage,
    SuppressionReason,
    SuppressionRequest,
)
from stackyard.email.service import EmailService, TemplateCache, email_service_for
from stackyard.email.webhooks import (
    WebhookFetchFailed,
    WebhookInvalid,
    WebhookNotConfigured,
    WebhookUnauthorized,
    receive_webhook,
)
from stackyard.notify.events import PlatformEvents
from stackyard.problems import CapabilityOff, NotFound, Problem, UnprocessableContent

from ..deps import RuntimeDep
from ..errors import problem_responses

router = APIRouter(tags=["email"])


class WebhookRefused(Problem):
    status, slug, title = 401, "webhook-signature", "Webhook signature refused"


class WebhookMalformed(Problem):
    status, slug, title = 400, "webhook-malformed", "Webhook body not understood"


class WebhookFetch(Problem):
    """An SNS signing certificate or SubscribeURL could not be fetched: a 502 makes SNS retry."""

    status, slug, title = 502, "webhook-fetch-failed", "Could not fetch what the webhook refers to"


class EmailState:
    """What the api keeps between email requests: compiled templates, the databases whose
    indexes it ensured, and the HTTP client that fetches SNS signing certificates."""

    def __init__(self) -> None:
        self.templates = TemplateCache()
        self.indexed: set[str] = set()
        self.http = httpx.AsyncClient(timeout=5.0, follow_redirects=False)


def email_state(request: Request) -> EmailState:
    state: EmailState | None = getattr(request.app.state, "email", None)
    if state is None:
        state = request.app.state.email = EmailState()
    return state


StateDep = Annotated[EmailState, Depends(email_state)]


async def email_service(runtime: RuntimeDep, state: StateDep) -> EmailService:
    applied = runtime.config
    config = applied.config
    if not config.spec.capabilities.email:
        raise CapabilityOff("the email capability is off in this Stack (spec.capabilities.email)")
    service = email_service_for(
        runtime.redis, runtime.database, config, state.templates.get(applied.hash, config.email_templates)
    )
    service.log.events = PlatformEvents.of_runtime(runtime)  # email.* platform events
    if runtime.database.name not in state.indexed:
        policy = stack_index_policy(config)
        await service.log.ensure_indexes(policy)
        await service.suppressions.ensure_indexes(policy)
        state.indexed.add(runtime.database.name)
    return service


ServiceDep = Annotated[EmailService, Depends(email_service)]


@router.post(
    "/v1/emails",
    status_code=202,
    response_model=EmailAccepted,
    response_model_by_alias=True,
    summary="Send an email",
    description=(
        "Validates the addresses, renders the template, checks the suppression list and answers at once with "
        "the message id; a worker sends it (failing over between the EmailProviders) and the delivery log "
        "follows it. With an idempotency key (body or Idempotency-Key header) used within 24 hours, nothing "
        "more is sent: the answer is 200 with the first message and Idempotent-Replayed: true."
    ),
    responses={200: {"description": "The message first accepted with this idempotency key"}}
    | problem_responses(409, 413, 422, 503),
)
async def send_email(
    body: SendEmailRequest,
    service: ServiceDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> EmailAccepted:
    if idempotency_key and body.idempotency_key and idempotency_key != body.idempotency_key:
        raise UnprocessableContent("the Idempotency-Key header and idempotencyKey in the body differ")
    accepted, replayed = await service.send(body, idempotency_key)
    response.headers["Location"] = f"/v1/emails/{accepted.id}"
    if replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return accepted


@router.get(
    "/v1/emails",
    response_model=EmailPage,
    response_model_by_alias=True,
    summary="The delivery log",
    description="Newest first; every filter given applies. Pass nextCursor as cursor for the next page.",
    responses=problem_responses(422, 503),
)
async def list_emails(
    service: ServiceDep,
    status: Annotated[list[EmailStatus], Query()] = [],  # noqa: B006 - FastAPI copies query defaults
    to: Annotated[str | None, Query(max_length=320)] = None,
    sender: Annotated[str | None, Query(alias="from", max_length=320)] = None,
    template: Annotated[str | None, Query(max_length=253)] = None,
    provider: Annotated[str | None, Query(max_length=253)] = None,
    tag: Annotated[list[str], Query(description="name:value, repeatable")] = [],  # noqa: B006
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> EmailPage:
    tags: dict[str, str] = {}
    for item in tag:
        name, colon, value = item.partition(":")
        if not colon or not name:
            raise UnprocessableContent(f"tag {item!r}: write it as name:value")
        tags[name] = value
    selector = EmailFilter.model_validate(
        {
            "status": status,
            "to": to,
            "from": sender,
            "template": template,
            "provider": provider,
            "tag": tags,
            "since": since,
            "until": until,
        }
    )
    return await service.log.page(selector, limit=limit, cursor=cursor)


@router.get(
    "/v1/emails/{email_id}",
    response_model=EmailRecord,
    response_model_by_alias=True,
    summary="One email with its timeline",
    responses=problem_responses(404, 503),
)
async def get_email(email_id: str, service: ServiceDep) -> EmailRecord:
    return await service.get(email_id)


@router.post(
    "/v1/emails/{email_id}/cancel",
    response_model=EmailRecord,
    response_model_by_alias=True,
    summary="Cancel a scheduled email",
    description="Only a message still waiting for its send-at time can be cancelled; anything else is a 409.",
    responses=problem_responses(404, 409, 503),
)
async def cancel_email(email_id: str, service: ServiceDep) -> EmailRecord:
    return await service.cancel(email_id)


@router.post(
    "/v1/email-templates/{name}/preview",
    response_model=PreviewResult,
    response_model_by_alias=True,
    summary="Preview an EmailTemplate",
    description=(
        "Renders the template in force with the values given (declared defaults fill in; a required "
        "variable without a value shows as {name}), CSS inlined and the text part derived as a send would."
    ),
    responses=problem_responses(404, 422, 503),
)
async def preview_template(name: str, body: PreviewRequest, service: ServiceDep) -> PreviewResult:
    return service.preview(name, body)


@router.post(
    "/v1/emails/webhooks/{provider}",
    summary="A provider's delivery events",
    description=(
        "The endpoint to give Resend, SendGrid, Postmark or SES (through SNS) for the EmailProvider named "
        "{provider}. The signature is verified as the provider documents it (a wrong one is a 401 and changes "
        "nothing); deliveries, bounces and complaints update the delivery log, and hard bounces and "
        "complaints add the recipient to the suppression list. See docs/email-webhooks.md."
    ),
    responses=problem_responses(400, 401, 404, 502, 503),
)
async def provider_webhook(
    provider: str, request: Request, runtime: RuntimeDep, service: ServiceDep, state: StateDep
) -> dict[str, Any]:
    applied = runtime.config
    spec = applied.config.email_providers.get(provider)
    if spec is None:
        raise NotFound(f"no EmailProvider {provider!r} in this Stack", provider=provider)
    body = await request.body()
    try:
        result = await receive_webhook(
            provider, spec, applied.credentials, dict(request.headers), body, http=state.http
        )
    except WebhookUnauthorized as exc:
        raise WebhookRefused(str(exc), provider=provider) from None
    except WebhookInvalid as exc:
        raise WebhookMalformed(str(exc), provider=provider) from None
    except WebhookNotConfigured as exc:
        raise NotFound(str(exc), provider=provider) from None
    except WebhookFetchFailed as exc:
        raise WebhookFetch(str(exc), provider=provider) from None
    matched = await service.record_provider_events(provider, result.events)
    answer: dict[str, Any] = {"received": len(result.events), "matched": matched}
    if result.confirmed_subscription:
        answer["confirmedSubscription"] = result.confirmed_subscription
    return answer


@router.get(
    "/v1/suppressions",
    response_model=SuppressionPage,
    response_model_by_alias=True,
    summary="The suppression list",
    description="Addresses no email is sent to, in address order; pass nextCursor as cursor for the next page.",
    responses=problem_responses(503),
)
async def list_suppressions(
    service: ServiceDep,
    reason: SuppressionReason | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> SuppressionPage:
    return await service.suppressions.page(limit=limit, cursor=cursor, reason=reason)


@router.post(
    "/v1/suppressions",
    status_code=201,
    response_model=Suppression,
    response_model_by_alias=True,
    summary="Suppress an address",
    responses=problem_responses(422, 503),
)
async def add_suppression(body: SuppressionRequest, service: ServiceDep) -> Suppression:
    return await service.suppressions.add(body.address, body.reason, detail=body.detail)


@router.delete(
    "/v1/suppressions/{address}",
    status_code=204,
    summary="Remove an address from the suppression list",
    responses=problem_responses(404, 503),
)
async def remove_suppression(address: str, service: ServiceDep) -> Response:
    if not await service.suppressions.remove(address):
        raise NotFound(f"{address} is not on the suppression list", address=address)
    return Response(status_code=204)
