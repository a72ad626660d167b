"""/v1/feed: the caller's in-app feed, and its live stream (Server-Sent Events).

GET  /v1/feed                  a page of messages, newest first, with counts {total, unread, unseen}
GET  /v1/feed/counts           the counts alone (a badge)
GET  /v1/feed/stream           SSE: `message` (a new FeedMessage), `update` (marks), `counts` after
                               each change, a comment every 15 s; `?token=` for EventSource
GET  /v1/feed/{id}             one message
POST /v1/feed/{id}/{action}    seen, read, unread, archive, unarchive
POST /v1/feed/bulk             one action on ids, or on all the caller's messages

Who: the user of the access token (bearer header, session cookie, or `?token=` on the
stream); another user's message is 404, never 403. The stream's process holds one Redis
pub/sub connection for all its streams (stackyard.notify.live.FeedHub, on app.state.feed),
made with the first stream and closed with the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import StreamingResponse
from stackyard.auth.context import AuthContext
from stackyard.auth.tokens import AccessClaims, verify_access_token
from stackyard.db.schema import FEED_MESSAGES, ensure_capability_indexes_once, stack_index_policy
from stackyard.notify.feed import FeedStore
from stackyard.notify.feed_contract import (
    MAX_PAGE,
    BulkAction,
    BulkResult,
    FeedAction,
    FeedCounts,
    FeedMessage,
    FeedPage,
    FeedStatus,
)
from stackyard.notify.live import FeedEvent, FeedHub, Subscription
from stackyard.runtime import Runtime

from ..auth_deps import AuthDep, ClaimsDep, accepted, current_claims
from ..deps import RuntimeDep
from ..errors import problem_responses

HEARTBEAT_SECONDS = 15.0
RETRY_MS = 2000
"""What the stream tells EventSource to wait before it reconnects."""
SUBSCRIBE_WAIT = 2.0
"""Seconds a new stream waits for its process's pub/sub subscription before it starts."""


@dataclass
class FeedState:
    """Kept on app.state.feed: the process's FeedHub."""

    hub: FeedHub


def feed_state(app: FastAPI) -> FeedState:
    state: FeedState | None = getattr(app.state, "feed", None)
    if state is None:
        runtime: Runtime = app.state.runtime
        state = app.state.feed = FeedState(FeedHub(lambda: runtime.redis, lambda: _scope(runtime)))
    return state


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    state: FeedState | None = getattr(app.state, "feed", None)
    if state is not None:
        await state.hub.stop()


router = APIRouter(prefix="/v1/feed", tags=["feed"], lifespan=_lifespan)

MessageId = Annotated[str, Path(min_length=1, max_length=200, description="The message's id (msg_...).")]
Tenant = Annotated[str | None, Query(min_length=1, max_length=200, description="Only the messages of this tenant.")]


def _scope(runtime: Runtime) -> str:
    config = runtime.config.config
    return f"{config.namespace}/{config.stack}"


async def feed_store(runtime: RuntimeDep) -> FeedStore:
    """The Stack's FeedStore, its indexes ensured once per database."""
    await ensure_capability_indexes_once(runtime.database, [FEED_MESSAGES], stack_index_policy(runtime.config.config))
    return FeedStore(runtime.database, runtime.redis, _scope(runtime))


StoreDep = Annotated[FeedStore, Depends(feed_store)]


# -- the feed --------------------------------------------------------------------------------


@router.get(
    "",
    response_model=FeedPage,
    response_model_by_alias=True,
    summary="The caller's feed",
    description=(
        "Newest first; pass nextCursor as cursor for the next page. `status`: all (not archived), unread, "
        "unseen, read, archived. `counts` are of the messages not archived (of `tenant`, when given)."
    ),
    responses=problem_responses(400, 401, 422, 503),
)
async def list_feed(
    claims: ClaimsDep,
    store: StoreDep,
    status: Annotated[FeedStatus, Query(description="Which messages.")] = "all",
    tenant: Tenant = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Messages per page.")] = 50,
    cursor: Annotated[str | None, Query(max_length=1000, description="nextCursor of the page before.")] = None,
) -> FeedPage:
    return await store.list(claims.sub, status, tenant=tenant, limit=limit, cursor=cursor)


@router.get(
    "/counts",
    response_model=FeedCounts,
    response_model_by_alias=True,
    summary="The caller's counts",
    description="Messages not archived: total, unread, unseen (of `tenant`, when given).",
    responses=problem_responses(401, 422, 503),
)
async def feed_counts(claims: ClaimsDep, store: StoreDep, tenant: Tenant = None) -> FeedCounts:
    return await store.counts(claims.sub, tenant=tenant)


@router.post(
    "/bulk",
    response_model=BulkResult,
    response_model_by_alias=True,
    summary="Mark many messages",
    description="One action on the messages of `ids` (up to 1000), or on all of the caller's with `all: true`.",
    responses=problem_responses(401, 422, 503),
)
async def bulk(body: BulkAction, claims: ClaimsDep, store: StoreDep) -> BulkResult:
    return await store.bulk(claims.sub, body)


# -- the stream ------------------------------------------------------------------------------


async def stream_claims(
    request: Request,
    context: AuthDep,
    token: Annotated[
        str | None, Query(max_length=8192, description="The access token, for EventSource (it sends no headers).")
    ] = None,
) -> AccessClaims:
    """The access token of `?token=`, else of the Authorization header or the session cookie."""
    if token is None:
        return await current_claims(request, context)
    claims = verify_access_token(
        token, context.keys, issuer=context.issuer, audience=context.audience, now=context.clock()
    )
    return await accepted(context, claims)


def _frame(event: str, data: str, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n"


def _event_id(created_at: datetime, message_id: str) -> str:
    return f"{int(created_at.timestamp() * 1000)}.{message_id}"


def _parse_event_id(value: str | None) -> tuple[datetime, str] | None:
    ms, _, message_id = (value or "").strip().partition(".")
    if not ms.isdigit() or not message_id:
        return None
    return datetime.fromtimestamp(int(ms) / 1000, UTC), message_id


@dataclass
class _Position:
    """The newest message a stream sent (or when it started): where a replay begins."""

    created_at: datetime
    message_id: str = ""

    def advance(self, created_at: datetime, message_id: str) -> None:
        if (created_at, message_id) > (self.created_at, self.message_id):
            self.created_at, self.message_id = created_at, message_id


async def _events(
    store: FeedStore,
    hub: FeedHub,
    claims: AccessClaims,
    context: AuthContext,
    tenant: str | None,
    resume: tuple[datetime, str] | None,
) -> AsyncIterator[str]:
    user = claims.sub
    position = _Position(*resume) if resume else _Position(datetime.now(UTC))

    def message_frame(message: FeedMessage) -> str:
        position.advance(message.created_at, message.id)
        data = json.dumps(message.model_dump(mode="json", by_alias=True), separators=(",", ":"))
        return _frame("message", data, _event_id(message.created_at, message.id))

    async def replay() -> list[str]:
        missed = await store.since(user, position.created_at, position.message_id, tenant=tenant)
        return [message_frame(m) for m in missed]

    async def counts_frame() -> str:
        counts = await store.counts(user, tenant=tenant)
        return _frame("counts", counts.model_dump_json(by_alias=True))

    subscription = hub.subscribe(user)
    try:
        yield f"retry: {RETRY_MS}\n\n"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hub.subscribed.wait(), SUBSCRIBE_WAIT)
        # What is read now is fresh: a resync queued while the hub subscribed adds nothing.
        queued = _drain(subscription)
        frames = [] if resume is None else await replay()
        if None in queued:
            return
        frames += [f for e in queued if e is not None and (f := _live_frame(e, tenant, position)) is not None]
        yield "".join(frames) + await counts_frame()
        while True:
            remaining = claims.exp - time.time()
            try:
                event = await asyncio.wait_for(subscription.queue.get(), max(0.0, min(HEARTBEAT_SECONDS, remaining)))
            except TimeoutError:
                if time.time() >= claims.exp or not await context.sessions.alive(claims.sid):
                    yield _frame("expired", json.dumps({"detail": "the access token expired or its session ended"}))
                    return
                yield ": heartbeat\n\n"
                continue
            batch = [event, *_drain(subscription)]
            if None in batch:  # dropped: too slow, or the process is stopping
                return
            frames, changed = [], False
            for item in batch:
                assert item is not None
                if item.kind == "resync":
                    frames += await replay()
                    changed = True
                elif (frame := _live_frame(item, tenant, position)) is not None:
                    frames.append(frame)
                    changed = True
            if changed:
                yield "".join(frames) + await counts_frame()
    finally:
        hub.unsubscribe(subscription)


def _drain(subscription: Subscription) -> list[FeedEvent | None]:
    found: list[FeedEvent | None] = []
    while not subscription.queue.empty():
        found.append(subscription.queue.get_nowait())
    return found


def _live_frame(event: FeedEvent, tenant: str | None, position: _Position) -> str | None:
    """The SSE frame of a published event (None: not for this stream, or a resync)."""
    if event.kind == "update":
        return _frame("update", event.data)
    if event.kind != "message" or event.message_id is None or event.created_at is None:
        return None
    if tenant is not None and event.tenant != tenant:
        return None
    created_at = datetime.fromisoformat(event.created_at)
    position.advance(created_at, event.message_id)
    return _frame("message", event.data, _event_id(created_at, event.message_id))


STREAM_DESCRIPTION = """\
Server-Sent Events of the caller's feed, on whichever api replica serves the request:

- `event: message`: a new message (the FeedMessage JSON), with `id:` for Last-Event-ID;
- `event: update`: marks made elsewhere (`{"action": "read", "ids": [...]}` or `{"action": ..., "all": true}`);
- `event: counts`: `{"total", "unread", "unseen"}` at the start and after every change;
- `event: expired`: the access token expired or its session ended; the stream ends (open a new
  one with a fresh token);
- a comment line every 15 s (heartbeat).

EventSource cannot send headers: give the access token as `?token=` (or use the session
cookie). A reconnecting EventSource sends Last-Event-ID; the messages delivered since are
sent first (at most 100). A client too slow to read is disconnected (and may reconnect)."""


@router.get(
    "/stream",
    summary="The caller's feed, live (Server-Sent Events)",
    description=STREAM_DESCRIPTION,
    response_class=StreamingResponse,
    responses={
        200: {"description": "An event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
        **problem_responses(401, 422, 503),
    },
)
async def stream(
    request: Request,
    context: AuthDep,
    claims: Annotated[AccessClaims, Depends(stream_claims)],
    store: StoreDep,
    tenant: Tenant = None,
    last_event_id: Annotated[
        str | None, Header(max_length=300, description="Set by a reconnecting EventSource.")
    ] = None,
) -> StreamingResponse:
    hub = feed_state(request.app).hub
    body = _events(store, hub, claims, context, tenant, _parse_event_id(last_event_id))
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# -- one message -----------------------------------------------------------------------------


@router.get(
    "/{message_id}",
    response_model=FeedMessage,
    response_model_by_alias=True,
    summary="One message",
    responses=problem_responses(401, 404, 422, 503),
)
async def get_message(message_id: MessageId, claims: ClaimsDep, store: StoreDep) -> FeedMessage:
    return await store.get_for(claims.sub, message_id)


@router.post(
    "/{message_id}/{action}",
    response_model=FeedMessage,
    response_model_by_alias=True,
    summary="Mark one message",
    description=(
        "seen (sets seenAt), read (readAt, and seenAt when unset), unread (clears readAt), archive "
        "(archivedAt: left out of `all`), unarchive. The first seen and read times stay."
    ),
    responses=problem_responses(401, 404, 422, 503),
)
async def mark(
    message_id: MessageId,
    action: Annotated[FeedAction, Path(description="What to do.")],
    claims: ClaimsDep,
    store: StoreDep,
) -> FeedMessage:
    return await store.mark(claims.sub, message_id, action)
