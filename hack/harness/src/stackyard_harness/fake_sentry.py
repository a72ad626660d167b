"""A local stand-in for Sentry's ingestion API, following its documented contract (Sentry's
developer documentation: "Envelopes", "Authentication", "Rate Limiting"), that tests point
a DSN at instead of sentry.io:

    POST /api/<project id>/envelope/   an envelope: a JSON header line, then items, each a
                                       JSON item header line (`type`, optional `length`)
                                       and its payload; answers {"id": <event id>}
    POST /api/<project id>/store/      the legacy endpoint: one event as JSON

Both take the body plain or with Content-Encoding gzip or deflate (br when the brotli
module is there). Authentication is the public key of the DSN, from the `X-Sentry-Auth`
header (`Sentry sentry_version=7, sentry_key=<key>, sentry_client=…`), the `sentry_key`
query parameter, or for envelopes the `dsn` of the envelope header. Refusals are Sentry's:

    400  a body that is not an envelope (or event), an encoding it cannot read
    401  no authentication at all
    403  a key or project it does not know ("event submission rejected with_reason: ProjectId",
         which is what sentry.io answers to a wrong DSN)
    413  a body over `max_envelope_bytes`, or an event over `max_event_bytes` (Relay's limits)
    429  when told to (`rate_limit`): Retry-After and X-Sentry-Rate-Limits
         (`<seconds>:<categories>:<scope>:<reason>`), which the SDKs obey

One aiohttp app on a free loopback port in a background thread (a `FakeServer`).
What it accepted is kept: `envelopes()`, `events()` (the event payloads, parsed), and
`wait_for_events(n)`; `requests` counts every request, answered or refused. `reset()`
forgets it all, the rate limit and the hangs too."""

from __future__ import annotations

import asyncio
import time
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web

from .fake_server import FakeServer

PUBLIC_KEY = "7f3c1e9a2b4d4c6e8a0b1c2d3e4f5a6b"
PROJECT_ID = "4242"
MAX_ENVELOPE_BYTES = 100 * 1024 * 1024
"""Relay's default limit for a whole envelope (after decompression)."""
MAX_EVENT_BYTES = 1024 * 1024
"""Relay's default limit for one event."""


class EnvelopeError(ValueError):
    """The body is not an envelope."""


@dataclass(frozen=True)
class Item:
    headers: dict[str, Any]
    payload: bytes

    @property
    def type(self) -> str:
        return str(self.headers.get("type"))

    def json(self) -> Any:
        return orjson.loads(self.payload)


@dataclass(frozen=True)
class Envelope:
    headers: dict[str, Any]
    items: tuple[Item, ...]


@dataclass(frozen=True)
class SentryRequest:
    """One request as it arrived, whatever the answer."""

    path: str
    headers: dict[str, str]
    status: int


def parse_envelope(body: bytes) -> Envelope:
    """Sentry's envelope format: the header line, then per item a header line and a payload
    of `length` bytes (followed by an optional newline) or, without `length`, up to the next
    newline or the end. A trailing newline is allowed; anything else that does not fit is an
    EnvelopeError."""
    if not body.strip():
        raise EnvelopeError("empty body")
    header_line, _, rest = body.partition(b"\n")
    headers = _json_object(header_line, "envelope header")
    items: list[Item] = []
    position = 0
    while position < len(rest):
        end = rest.find(b"\n", position)
        end = len(rest) if end < 0 else end
        line = rest[position:end]
        position = end + 1
        if not line.strip():
            if position >= len(rest):
                break
            raise EnvelopeError("empty item header")
        item_headers = _json_object(line, "item header")
        if not isinstance(item_headers.get("type"), str):
            raise EnvelopeError("item header without a type")
        length = item_headers.get("length")
        if length is not None:
            if not isinstance(length, int) or isinstance(length, bool) or length < 0:
                raise EnvelopeError(f"item length {length!r} is not a byte count")
            if position + length > len(rest):
                raise EnvelopeError("item payload shorter than its length")
            payload = rest[position : position + length]
            position += length
            if position < len(rest):
                if rest[position : position + 1] != b"\n":
                    raise EnvelopeError("item payload longer than its length")
                position += 1
        else:
            end = rest.find(b"\n", position)
            end = len(rest) if end < 0 else end
            payload, position = rest[position:end], end + 1
        items.append(Item(item_headers, payload))
    return Envelope(headers, tuple(items))


def parse_auth_header(value: str) -> dict[str, str]:
    """`Sentry sentry_version=7, sentry_key=abc, sentry_client=x/1.0` -> its fields."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "sentry":
        return {}
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, equals, field_value = part.strip().partition("=")
        if equals:
            fields[name.strip()] = field_value.strip()
    return fields


def decode_body(raw: bytes, encoding: str, limit: int) -> bytes:
    """The body without its Content-Encoding, at most `limit` + 1 bytes of it (so that a
    small compressed body cannot unpack into gigabytes before the size check)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding in ("gzip", "x-gzip"):
        return _inflate(raw, zlib.MAX_WBITS | 16, limit)
    if encoding == "deflate":
        try:
            return _inflate(raw, zlib.MAX_WBITS, limit)
        except EnvelopeError:
            return _inflate(raw, -zlib.MAX_WBITS, limit)  # raw deflate, as some clients send it
    if encoding == "br":
        try:
            import brotli
        except ImportError:
            raise EnvelopeError("br bodies need the brotli module in the fake") from None
        return bytes(brotli.decompress(raw))[: limit + 1]
    raise EnvelopeError(f"unsupported Content-Encoding {encoding!r}")


def _inflate(raw: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    try:
        return inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise EnvelopeError(f"cannot decompress the body: {exc}") from None


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise EnvelopeError(f"{what} is not a JSON object")
    return value


@dataclass
class _RateLimit:
    retry_after: int
    categories: tuple[str, ...]
    scope: str
    reason: str
    count: int | None
    """Requests left to refuse; None: until `reset`."""

    def header(self) -> str:
        return f"{self.retry_after}:{';'.join(self.categories)}:{self.scope}:{self.reason}"


@dataclass
class _State:
    envelopes: list[Envelope] = field(default_factory=list)
    requests: list[SentryRequest] = field(default_factory=list)
    rate_limit: _RateLimit | None = None
    hangs: list[float] = field(default_factory=list)


class FakeSentry(FakeServer[_State]):
    name = "fake Sentry"
    auto_decompress = False  # the decompression and its limit are ours (400, 413 as Sentry answers)

    def __init__(
        self,
        *,
        public_key: str = PUBLIC_KEY,
        project_id: str = PROJECT_ID,
        max_envelope_bytes: int = MAX_ENVELOPE_BYTES,
        max_event_bytes: int = MAX_EVENT_BYTES,
    ) -> None:
        super().__init__(_State)
        self.public_key, self.project_id = public_key, project_id
        self.max_envelope_bytes, self.max_event_bytes = max_envelope_bytes, max_event_bytes

    @property
    def dsn(self) -> str:
        """The DSN that points an SDK here."""
        return f"http://{self.public_key}@127.0.0.1:{self.port}/{self.project_id}"

    def _application(self) -> web.Application:
        # The body limit is ours too (413 as Sentry answers), not aiohttp's.
        app = web.Application(client_max_size=self.max_envelope_bytes + 1)
        app.router.add_post("/api/{project}/envelope/", self._envelope)
        app.router.add_post("/api/{project}/store/", self._store)
        return app

    # --- what tests ask and tell ------------------------------------------------------------

    def envelopes(self) -> list[Envelope]:
        """Every envelope accepted, in order (a store request counts as one with one event)."""
        with self._lock:
            return list(self._state.envelopes)

    def events(self) -> list[dict[str, Any]]:
        """The payloads of every accepted `event` item (errors and messages), parsed."""
        return [item.json() for envelope in self.envelopes() for item in envelope.items if item.type == "event"]

    def wait_for_events(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The events once at least `count` have arrived; AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            if len(events) >= count:
                return events
            if time.monotonic() > deadline:
                raise AssertionError(f"the fake Sentry has {len(events)} events after {timeout:.0f}s, not {count}")
            time.sleep(0.02)

    @property
    def requests(self) -> list[SentryRequest]:
        with self._lock:
            return list(self._state.requests)

    def rate_limit(
        self,
        retry_after: int = 60,
        *,
        categories: tuple[str, ...] = (),
        scope: str = "key",
        reason: str = "quota_exceeded",
        count: int | None = None,
    ) -> None:
        """Answer 429 to the next `count` requests (all until `reset` when None), with
        Retry-After and X-Sentry-Rate-Limits for `categories` (empty: every category)."""
        with self._lock:
            self._state.rate_limit = _RateLimit(retry_after, categories, scope, reason, count)

    def hang_next(self, seconds: float, count: int = 1) -> None:
        """Hold the next `count` requests for `seconds` each before answering them."""
        with self._lock:
            self._state.hangs.extend([seconds] * count)

    # --- Sentry -----------------------------------------------------------------------------

    async def _envelope(self, request: web.Request) -> web.Response:
        return await self._ingest(request, envelope=True)

    async def _store(self, request: web.Request) -> web.Response:
        return await self._ingest(request, envelope=False)

    async def _ingest(self, request: web.Request, *, envelope: bool) -> web.Response:
        with self._lock:
            hang = self._state.hangs.pop(0) if self._state.hangs else None
        if hang is not None:
            await asyncio.sleep(hang)
        answer = await self._answer(request, envelope=envelope)
        with self._lock:
            self._state.requests.append(SentryRequest(request.path, dict(request.headers), answer.status))
        return answer

    async def _answer(self, request: web.Request, *, envelope: bool) -> web.Response:
        raw = await request.read()
        if len(raw) > self.max_envelope_bytes:
            return _detail(413, "envelope exceeds size limits")
        try:
            body = decode_body(raw, request.headers.get("Content-Encoding", ""), self.max_envelope_bytes)
        except EnvelopeError as exc:
            return _detail(400, f"invalid body: {exc}")
        if len(body) > self.max_envelope_bytes:
            return _detail(413, "envelope exceeds size limits")
        try:
            parsed = parse_envelope(body) if envelope else _store_envelope(body)
        except EnvelopeError as exc:
            return _detail(400, f"invalid {'envelope' if envelope else 'event'}: {exc}")
        key, project = self._credentials(request, parsed.headers.get("dsn") if envelope else None)
        if key is None:
            return _detail(401, "missing authorization information")
        if key != self.public_key or project != self.project_id:
            return _detail(403, "event submission rejected with_reason: ProjectId")
        limited = self._rate_limited()
        if limited is not None:
            headers = {"Retry-After": str(limited.retry_after), "X-Sentry-Rate-Limits": limited.header()}
            return _detail(429, "event submission rejected with_reason: RateLimited", headers)
        if any(item.type == "event" and len(item.payload) > self.max_event_bytes for item in parsed.items):
            return _detail(413, "event exceeds size limits")
        try:
            for item in parsed.items:
                if item.type == "event":
                    _json_object(item.payload, "event")
        except EnvelopeError as exc:
            return _detail(400, f"invalid event: {exc}")
        with self._lock:
            self._state.envelopes.append(parsed)
        event_id = parsed.headers.get("event_id")
        return web.json_response({"id": event_id} if event_id else {})

    def _credentials(self, request: web.Request, dsn: object) -> tuple[str | None, str]:
        """(public key, project id) the request authenticates with: the X-Sentry-Auth header,
        else the sentry_key query parameter, else the envelope's DSN."""
        project = request.match_info["project"]
        auth = parse_auth_header(request.headers.get("X-Sentry-Auth", ""))
        if key := auth.get("sentry_key") or request.query.get("sentry_key"):
            return key, project
        if isinstance(dsn, str) and dsn:
            parts = urlsplit(dsn)
            dsn_project = parts.path.rstrip("/").rpartition("/")[2]
            # The envelope's DSN must name the project of the URL it is posted to.
            return parts.username, project if dsn_project == project else ""
        return None, project

    def _rate_limited(self) -> _RateLimit | None:
        with self._lock:
            limit = self._state.rate_limit
            if limit is None:
                return None
            if limit.count is not None:
                limit.count -= 1
                if limit.count <= 0:
                    self._state.rate_limit = None
            return limit


def _store_envelope(body: bytes) -> Envelope:
    """A store request as the envelope it stands for: one event item."""
    event = _json_object(body, "event")
    return Envelope({"event_id": event.get("event_id")}, (Item({"type": "event"}, body),))


def _detail(status: int, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"detail": detail}, status=status, headers=headers)
