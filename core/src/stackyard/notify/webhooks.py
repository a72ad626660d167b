"""Delivering webhooks: the body of the job function `stackyard.webhooks.deliver`, the one
HTTP attempt it makes, and what each Webhook's endpoint has shown lately (in Redis).

One attempt of a delivery:

1. the delivery record is read (its payload is the body, the same bytes on every attempt);
   a delivery already succeeded or failed is left alone (a retried job changes nothing);
2. the Webhook in force is read: gone -> failed ("no Webhook ...", after waiting up to 30 s
   from the publish for this worker's config to catch up); paused -> paused, not
   sent; disabled (see below) -> failed with why; its signing secret comes from the
   credentials (credential_key("Webhook", name, "signingSecret"));
3. the request is POSTed, signed per Standard Webhooks with `stackyard.jobs.http_target.sign`:
   `webhook-id` = the delivery id (the same on every attempt; a replay is a new delivery, so
   it has a new one), `webhook-timestamp` = this attempt's time, with the Webhook's headers
   and timeout, redirects not followed;
4. the answer decides, as for HTTP-target jobs (`judge`): 2xx succeeded; 429 retried no sooner
   than Retry-After; 408, 425, 5xx, timeouts and connection failures retried with the
   `webhooks` queue's backoff (Retry-After honoured when given); 3xx and other 4xx failed at
   once; the last of the Webhook's maxAttempts failed.

Every attempt is recorded on the delivery ({at, httpStatus, durationMs, error,
responseExcerpt}). An endpoint failing continuously: the time of the first failure since the
last success is kept (`failingSince`; any success clears it); a failure when that is older
than the Webhook's disableAfter disables the endpoint: the flag holds the spec's hash, and
until `POST /v1/webhooks/{name}/enable` or a change of the Webhook's spec every delivery to it
is recorded failed with why, without a request.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from ..clients import AnyRedis
from ..config.runtime import credential_key
from ..jobs.context import Suspend
from ..jobs.errors import NonRetryable, RetryAfter
from ..jobs.http_target import (
    _connect_failure,
    _excerpt,
    _read_limited,
    _status_text,
    _where,
    forbidden_headers,
    parse_retry_after,
    sign,
)
from ..resources.base import duration_seconds
from ..resources.notify import WebhookSpec
from .deliveries import DeliveryStore, now_ms
from .webhook_contract import DeliveryAttempt, LastDelivery, WebhookDelivery

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from ..config import AppliedConfig
    from ..jobs.context import JobContext

__all__ = [
    "DELIVER_FUNCTION",
    "AttemptOutcome",
    "DeliveryFailed",
    "Disabled",
    "EndpointState",
    "Verdict",
    "WebhookDeliverer",
    "judge",
    "post_delivery",
    "signing_secret_key",
    "spec_hash",
]

log = logging.getLogger(__name__)

DELIVER_FUNCTION = "stackyard.webhooks.deliver"
ROOT = "sy:webhook:"
try:
    _VERSION = version("stackyard")
except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
    _VERSION = "0"
USER_AGENT = f"stackyard-webhooks/{_VERSION}"
CONFIG_LAG = 30.0
"""Seconds after its publish that a delivery to a Webhook this worker's config lacks waits
for the config (api and worker take a new config a moment apart) before it is failed."""
CONFIG_RETRY = 1.0


class DeliveryFailed(Exception):
    """An attempt failed in a way another may fix (5xx, 408, 425, a timeout, no connection):
    retried with the webhooks queue's backoff."""


def signing_secret_key(webhook: str) -> str:
    return credential_key("Webhook", webhook, "signingSecret")


def spec_hash(spec: WebhookSpec) -> str:
    """A short digest of the Webhook's spec: a disable holds while the spec stays the same."""
    return hashlib.sha256(spec.model_dump_json(by_alias=True).encode()).hexdigest()[:16]


# --- the answer ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    ok: bool
    retry: bool
    """Whether another attempt may help (False with ok: nothing more to do)."""
    retry_after: float | None = None
    """No sooner than this many seconds (a Retry-After header); None: the queue's backoff."""


def judge(code: int, retry_after: str | None = None, *, now: float | None = None) -> Verdict:
    """What an answer means, the table of HTTP-target jobs (docs/jobs-http-targets.md): 2xx
    done; 3xx failed (redirects are not followed); 429 retried after Retry-After; 408, 425,
    5xx retried (after Retry-After when given); any other 4xx failed at once."""
    if 200 <= code < 300:
        return Verdict(ok=True, retry=False)
    if 300 <= code < 400:
        return Verdict(ok=False, retry=False)
    after = parse_retry_after(retry_after, now=now)
    if code == 429 or code in (408, 425) or 500 <= code < 600:
        return Verdict(ok=False, retry=True, retry_after=after)
    if 400 <= code < 500:
        return Verdict(ok=False, retry=False)
    return Verdict(ok=False, retry=True, retry_after=after)


@dataclass(frozen=True)
class AttemptOutcome:
    attempt: DeliveryAttempt
    verdict: Verdict


async def post_delivery(
    client: httpx.AsyncClient,
    spec: WebhookSpec,
    *,
    delivery_id: str,
    body: bytes,
    secret: str,
    timeout: float | None = None,
    clock: Callable[[], float] = time.time,
) -> AttemptOutcome:
    """POST `body` to the Webhook's URL, signed under `webhook-id` = `delivery_id` and this
    attempt's timestamp, with its headers; the whole call bounded by its timeout. Never raises
    for what the endpoint or the network did: the outcome says."""
    started_at = now_ms()
    started = time.perf_counter()
    url = httpx.URL(spec.url)
    where = _where("POST", url)
    wait = timeout if timeout is not None else duration_seconds(spec.timeout)

    def outcome(
        verdict: Verdict, error: str | None, status: int | None = None, excerpt: str | None = None
    ) -> AttemptOutcome:
        attempt = DeliveryAttempt(
            at=started_at,
            http_status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
            error=error,
            response_excerpt=excerpt or None,
        )
        return AttemptOutcome(attempt, verdict)

    refused = forbidden_headers(spec.headers)
    if refused:
        return outcome(Verdict(False, False), f"the Webhook's headers may not set {', '.join(refused)}")
    timestamp = int(clock())
    try:
        signature = sign(secret, delivery_id, timestamp, body)
    except ValueError as exc:  # the secret, not the endpoint: fixing the Secret helps
        return outcome(Verdict(False, True), f"the Webhook's signing secret is unusable: {exc}")
    headers = {
        **spec.headers,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": delivery_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }
    try:
        async with client.stream(
            "POST", url, content=body, headers=headers, timeout=httpx.Timeout(wait), follow_redirects=False
        ) as response:
            data, _ = await _read_limited(response)
    except (TimeoutError, httpx.TimeoutException):
        return outcome(Verdict(False, True), f"{where} timed out after {wait:g}s")
    except httpx.ConnectError as exc:
        return outcome(Verdict(False, True), f"{where}: {_connect_failure(exc, url)}")
    except (httpx.LocalProtocolError, httpx.UnsupportedProtocol) as exc:
        return outcome(Verdict(False, False), f"{where}: the request cannot be sent: {exc}")
    except httpx.HTTPError as exc:
        return outcome(Verdict(False, True), f"{where}: {type(exc).__name__}: {exc}")
    code = response.status_code
    excerpt = _excerpt(response, data)
    verdict = judge(code, response.headers.get("retry-after"))
    if verdict.ok:
        return outcome(verdict, None, code, excerpt)
    error = f"{where} answered {_status_text(response)}"
    if 300 <= code < 400:
        error += f" to {response.headers.get('location', '(no Location)')}; redirects are not followed"
    return outcome(verdict, error, code, excerpt)


# --- the endpoint's state -----------------------------------------------------------------


@dataclass(frozen=True)
class Disabled:
    since: datetime
    reason: str


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse(value: bytes | str | None) -> datetime | None:
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else value
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class EndpointState:
    """What the endpoints of one Stack's Webhooks have shown, in Redis: failing since,
    disabled (with the spec hash it holds for), the latest attempt."""

    def __init__(self, redis: AnyRedis, scope: str) -> None:
        self.redis: Any = redis
        self.scope = scope

    def key(self, kind: str, name: str) -> str:
        return f"{ROOT}{{{self.scope}}}:{kind}:{name}"

    async def failing_since(self, name: str) -> datetime | None:
        return _parse(await self.redis.get(self.key("failing", name)))

    async def failed(self, name: str, at: datetime) -> datetime:
        """Note a failure at `at`: answers since when the endpoint has been failing."""
        key = self.key("failing", name)
        await self.redis.set(key, _iso(at), nx=True)
        return _parse(await self.redis.get(key)) or at

    async def succeeded(self, name: str) -> None:
        await self.redis.delete(self.key("failing", name))

    async def disable(self, name: str, spec: WebhookSpec, since: datetime, reason: str) -> Disabled:
        value = orjson.dumps({"since": _iso(since), "reason": reason, "spec": spec_hash(spec)})
        await self.redis.set(self.key("disabled", name), value, nx=True)
        found = await self.disabled(name, spec)
        return found or Disabled(since, reason)

    async def disabled(self, name: str, spec: WebhookSpec) -> Disabled | None:
        """The endpoint's disable, if one holds for this spec; one made for another spec is
        dropped (the Webhook changed: enabled again, failing from scratch)."""
        raw = await self.redis.get(self.key("disabled", name))
        if raw is None:
            return None
        record = orjson.loads(raw)
        if record.get("spec") != spec_hash(spec):
            await self.enable(name)
            return None
        return Disabled(_parse(record["since"]) or now_ms(), record.get("reason") or "disabled")

    async def enable(self, name: str) -> bool:
        """Clear the disable and the failure streak; answers whether it was disabled."""
        removed = await self.redis.delete(self.key("disabled", name), self.key("failing", name))
        return bool(removed)

    async def record_last(self, name: str, last: LastDelivery) -> None:
        await self.redis.set(self.key("last", name), last.model_dump_json(by_alias=True))

    async def last(self, name: str) -> LastDelivery | None:
        raw = await self.redis.get(self.key("last", name))
        return LastDelivery.model_validate_json(raw) if raw else None


# --- the job function ---------------------------------------------------------------------


def _payload_fields(payload: Any) -> tuple[str, str]:
    if isinstance(payload, dict):
        delivery, webhook = payload.get("delivery"), payload.get("webhook")
        if isinstance(delivery, str) and delivery and isinstance(webhook, str) and webhook:
            return delivery, webhook
    raise NonRetryable('the payload must be {"delivery": "whd_…", "webhook": "<name>"}')


class WebhookDeliverer:
    """The job function `stackyard.webhooks.deliver` {"delivery": id, "webhook": name}, over
    the config in force (`applied()`), its Redis and its database."""

    def __init__(
        self,
        applied: Callable[[], AppliedConfig],
        redis: Callable[[], AnyRedis],
        database: Callable[[], AsyncDatabase[Any]],
        http: httpx.AsyncClient,
    ) -> None:
        self._applied = applied
        self._redis = redis
        self._database = database
        self.http = http
        self._stores: dict[int, DeliveryStore] = {}

    def store(self) -> DeliveryStore:
        database = self._database()
        store = self._stores.get(id(database))
        if store is None:
            store = self._stores[id(database)] = DeliveryStore(database)
        return store

    def state(self) -> EndpointState:
        config = self._applied().config
        return EndpointState(self._redis(), f"{config.namespace}/{config.stack}")

    async def deliver(self, ctx: JobContext, payload: Any) -> dict[str, Any]:
        delivery_id, name = _payload_fields(payload)
        store = self.store()
        delivery = await store.get(delivery_id)
        if delivery is None:
            raise NonRetryable(f"no webhook delivery {delivery_id} in the delivery log")
        if delivery.status in ("succeeded", "failed"):
            return {"delivery": delivery_id, "status": delivery.status}
        applied = self._applied()
        spec = applied.config.webhooks.get(name)
        if spec is None and now_ms() - delivery.created_at < timedelta(seconds=CONFIG_LAG):
            # The publisher may have a newer config than this worker: come back in a moment
            # (the attempt is not counted) rather than fail a delivery to a Webhook just added.
            raise Suspend(CONFIG_RETRY, "webhook-config")
        if spec is None:
            why = f"no Webhook {name!r} in the Stack's config any more"
            await store.finish(delivery_id, "failed", why)
            return {"delivery": delivery_id, "status": "failed", "reason": why}
        if spec.paused:
            await store.finish(delivery_id, "paused", "the Webhook is paused")
            return {"delivery": delivery_id, "status": "paused"}
        state = self.state()
        disabled = await state.disabled(name, spec)
        if disabled is not None:
            why = f"the endpoint is disabled since {_iso(disabled.since)}: {disabled.reason}"
            await store.finish(delivery_id, "failed", why)
            return {"delivery": delivery_id, "status": "failed", "reason": why}
        secret = applied.credentials.get(signing_secret_key(name))
        body = orjson.dumps(delivery.payload)
        if not secret:
            attempt = DeliveryAttempt(
                at=now_ms(), duration_ms=0.0, error=f"no signing secret for Webhook {name!r} in the credentials"
            )
            outcome = AttemptOutcome(attempt, Verdict(ok=False, retry=True))
        else:
            outcome = await post_delivery(self.http, spec, delivery_id=delivery_id, body=body, secret=secret)
        return await self._record(ctx, store, state, delivery, name, spec, outcome)

    async def _record(
        self,
        ctx: JobContext,
        store: DeliveryStore,
        state: EndpointState,
        delivery: WebhookDelivery,
        name: str,
        spec: WebhookSpec,
        outcome: AttemptOutcome,
    ) -> dict[str, Any]:
        attempt, verdict = outcome.attempt, outcome.verdict
        count = delivery.attempt_count + 1
        last = LastDelivery(
            at=attempt.at, event_type=delivery.event_type, succeeded=verdict.ok, http_status=attempt.http_status
        )
        await state.record_last(name, last)
        if verdict.ok:
            await store.record_attempt(delivery.id, attempt, "succeeded", count=count)
            await state.succeeded(name)
            return {"delivery": delivery.id, "status": "succeeded", "httpStatus": attempt.http_status}
        error = attempt.error or "failed"
        failing_since = await state.failed(name, attempt.at)
        limit = duration_seconds(spec.disable_after)
        if attempt.at - failing_since >= timedelta(seconds=limit):
            reason = f"every delivery failed for {spec.disable_after} or more (since {_iso(failing_since)}): {error}"
            disabled = await state.disable(name, spec, attempt.at, reason)
            log.warning("Webhook %s disabled: %s", name, disabled.reason)
            why = f"the endpoint was disabled: {error}"
            await store.record_attempt(delivery.id, attempt, "failed", count=count, reason=why)
            return {"delivery": delivery.id, "status": "failed", "reason": "disabled"}
        final = not verdict.retry or ctx.attempt >= ctx.max_attempts
        await store.record_attempt(delivery.id, attempt, "failed" if final else "pending", count=count)
        if final:
            raise NonRetryable(error if not verdict.retry else f"given up after {ctx.attempt} attempts: {error}")
        if verdict.retry_after is not None:
            raise RetryAfter(error, verdict.retry_after)
        raise DeliveryFailed(error)


def describe_disabled(disabled: Disabled | None) -> Mapping[str, Any]:
    """The disable as WebhookView fields."""
    if disabled is None:
        return {"enabled": True}
    return {"enabled": False, "disabled_at": disabled.since, "disabled_reason": disabled.reason}
