"""HTTP-target jobs: the worker calls the user's service, signed per Standard Webhooks
(https://www.standardwebhooks.com/), and turns the answer into done, retry or dead letter.

How the answer steers the job (the same table is in docs/jobs-http-targets.md):

- 2xx: done; the job's result is {"status": code, "body": ...}.
- 3xx: NonRetryable; redirects are not followed (see call_http_target).
- 429: RetryAfter, no sooner than its Retry-After header says (None: the queue's backoff).
- 408, 425 and 5xx: HttpTargetError, retried with the queue's backoff; RetryAfter instead
  when the answer carries a Retry-After header (503 during maintenance, typically).
- any other 4xx (400, 401, 403, 404, 410, 422, ...): NonRetryable, straight to the dead letters.
- a timeout, a refused, reset or unresolvable connection: HttpTargetError, retried.

408 (the server gave up waiting for the request) and 425 (the server will not risk a replay
of early data) say "send it again" by definition (RFC 9110 15.5.9, RFC 8470), so they are
retried, as Cloud Tasks (which retries every non-2xx) and the Standard Webhooks retry advice
would; failing them for good would dead-letter jobs over a transient hiccup of a proxy.

Framework-free: the worker passes in its httpx.AsyncClient; a receiver written in Python can
use `verify` on its own.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import codecs
import email.utils
import hashlib
import hmac
import socket
import time
from collections.abc import Mapping, Sequence
from datetime import UTC
from http import HTTPStatus
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import unquote

import httpx
import orjson

from stackyard.jobs.contract import HttpTarget
from stackyard.jobs.errors import NonRetryable, RetryAfter

__all__ = [
    "RESULT_BODY_LIMIT",
    "HttpTargetError",
    "InvalidSignature",
    "call_http_target",
    "forbidden_headers",
    "parse_retry_after",
    "sign",
    "url_allowed",
    "verify",
]

SECRET_PREFIX = "whsec_"
RESULT_BODY_LIMIT = 64 * 1024
"""Bytes of the answer kept as the job's result (and read at all: the rest is never downloaded)."""
EXCERPT_CHARS = 200
"""Characters of an error answer's body quoted in the job's error."""

try:
    _VERSION = version("stackyard")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
    _VERSION = "0"
USER_AGENT = f"stackyard-jobs/{_VERSION}"

_OWN_HEADERS = frozenset(
    {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "stackyard-attempt",
        "stackyard-queue",
        "content-type",
        "user-agent",
    }
)
# Headers that frame the message or pick the virtual host: a job setting them could smuggle a
# second request or reach a host that allowedUrls never allowed (Host on a shared ingress).
_FRAMING_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer"}
)


class InvalidSignature(ValueError):
    """A request's Standard Webhooks signature does not hold; the message says why."""


class HttpTargetError(Exception):
    """The call failed in a way another attempt may fix: a 5xx, 408 or 425 answer, a timeout,
    a refused or dropped connection. `status` is None when no answer came."""

    def __init__(self, message: str, *, status: int | None = None, body: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


# --- signing -------------------------------------------------------------------------------


def _key(secret: str) -> bytes:
    """The HMAC key of a signing secret.

    "whsec_<base64>" (the Standard Webhooks serialisation) is the base64-decoded bytes after
    the prefix, padding optional. Any other string is its own UTF-8 bytes. The reference
    libraries base64-decode every secret, prefixed or not: a receiver using one of them with a
    secret that is not "whsec_..." passes "whsec_" + base64(secret) (or the raw bytes, where
    the library takes bytes)."""
    if not secret:
        raise ValueError("the signing secret is empty")
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode()
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the signing secret starts with whsec_ but the rest is not base64") from None
    if not key:
        raise ValueError("the signing secret whsec_ holds no key bytes")
    return key


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = b"%s.%d.%s" % (msg_id.encode(), timestamp, body)
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: "v1," + base64(HMAC-SHA256(key, f"{msg_id}.{timestamp}.{body}"))."""
    return "v1," + base64.b64encode(_digest(_key(secret), msg_id, timestamp, body)).decode()


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, tolerance: float = 300, now: float | None = None
) -> None:
    """Check a request's Standard Webhooks signature, for receivers; returns when it holds.

    `headers` is any mapping of the request's headers (names in any case), `body` the raw
    bytes as received (not re-serialised JSON). The timestamp must lie within `tolerance`
    seconds of `now` (the clock when None) either way. Of the space-separated signatures,
    one "v1," entry must match; other versions (v1a, ...) are skipped.

    Raises InvalidSignature (answer 401) with the reason; ValueError for an unusable secret.
    """
    key = _key(secret)
    lowered = {name.lower(): value for name, value in headers.items()}
    values: dict[str, str] = {}
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        value = lowered.get(name, "").strip()
        if not value:
            raise InvalidSignature(f"missing {name} header")
        values[name] = value
    stamp = values["webhook-timestamp"]
    if not (stamp.isascii() and stamp.isdigit()):
        raise InvalidSignature(f"webhook-timestamp is not unix seconds: {stamp[:20]!r}")
    timestamp = int(stamp)
    clock = time.time() if now is None else now
    if timestamp < clock - tolerance:
        raise InvalidSignature(
            f"webhook-timestamp is too old: {clock - timestamp:.0f} s ago, tolerance {tolerance:g} s"
        )
    if timestamp > clock + tolerance:
        raise InvalidSignature(
            f"webhook-timestamp is too new: {timestamp - clock:.0f} s ahead, tolerance {tolerance:g} s"
        )
    expected = _digest(key, values["webhook-id"], timestamp, body)
    checked = 0
    for entry in values["webhook-signature"].split():
        scheme, _, encoded = entry.partition(",")
        if scheme != "v1":
            continue
        checked += 1
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(expected, candidate):
            return
    if not checked:
        raise InvalidSignature("webhook-signature has no v1 signature")
    raise InvalidSignature(f"no matching signature (checked {checked} v1 signature{'s' if checked > 1 else ''})")


# --- allowed URLs --------------------------------------------------------------------------

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_and_segments(url: str) -> tuple[tuple[str, str, int], list[str]] | None:
    """(scheme, host, port) and the decoded path segments, or None for a URL no prefix may
    allow: unparseable, not http(s), no host, userinfo, or a path whose meaning depends on
    who decodes it (dot segments, encoded slashes or backslashes).

    Parsed with httpx, the client that sends the request, so the host checked is the host
    dialled (`https://a.example.com@evil.net` is evil.net with userinfo to both)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return None
    scheme = parsed.scheme
    if scheme not in _DEFAULT_PORTS or parsed.userinfo:
        return None
    host = parsed.raw_host.decode("ascii", "replace").lower()
    if not host or "%" in host:
        return None
    port = parsed.port if parsed.port is not None else _DEFAULT_PORTS[scheme]
    path = parsed.raw_path.split(b"?", 1)[0].decode("ascii", "replace")
    segments = [unquote(raw) for raw in path.split("/")[1:]]
    if any(s in (".", "..") or "/" in s or "\\" in s for s in segments):
        return None
    return (scheme, host, port), segments


def url_allowed(url: str, allowed_prefixes: Sequence[str]) -> bool:
    """Whether `url` is under one of the prefixes (a JobQueue's spec.httpTarget.allowedUrls).

    Scheme, host (lower-cased, IDNA) and port (default ports filled in) must be equal; the
    prefix's path must be a whole-segment prefix of the URL's: "https://a.example.com/hooks"
    allows /hooks and /hooks/x, not /hooksevil. A query string on the URL is fine; a prefix
    with userinfo, a query or a fragment allows nothing. No prefixes: nothing is allowed."""
    candidate = _origin_and_segments(url)
    if candidate is None:
        return False
    origin, segments = candidate
    for prefix in allowed_prefixes:
        if "?" in prefix or "#" in prefix:
            continue
        allowed = _origin_and_segments(prefix)
        if allowed is None or allowed[0] != origin:
            continue
        wanted = allowed[1]
        while wanted and wanted[-1] == "":  # "https://h/hooks/" and "https://h/" as "/hooks" and ""
            wanted = wanted[:-1]
        if segments[: len(wanted)] == wanted:
            return True
    return False


def forbidden_headers(headers: Mapping[str, str]) -> list[str]:
    """The names among a target's extra headers that a job may not set: the signature and
    stackyard headers, content-type, user-agent, and those that frame the message or pick the
    virtual host (Host, Content-Length, Transfer-Encoding, Connection, ...)."""
    return sorted(name for name in headers if name.lower() in _OWN_HEADERS | _FRAMING_HEADERS)


# --- the call ------------------------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a Retry-After value: delta-seconds or an HTTP-date (past dates: 0).
    None when absent or unparseable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # asctime and "-0000" dates are UTC by definition (RFC 9110 5.6.7)
        when = when.replace(tzinfo=UTC)
    clock = time.time() if now is None else now
    return max(0.0, when.timestamp() - clock)


def _where(method: str, url: httpx.URL) -> str:
    # Without userinfo and query string: they may carry the user's credentials.
    return f"{method} {url.copy_with(userinfo=b'', query=None, fragment=None)}"


def _status_text(response: httpx.Response) -> str:
    try:
        phrase = HTTPStatus(response.status_code).phrase
    except ValueError:
        phrase = response.reason_phrase
    return f"{response.status_code} {phrase}".rstrip()


async def _read_limited(response: httpx.Response) -> tuple[bytes, bool]:
    """Up to RESULT_BODY_LIMIT bytes of the (decoded) body, and whether there was more."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > RESULT_BODY_LIMIT:
            return b"".join(chunks)[:RESULT_BODY_LIMIT], True
    return b"".join(chunks), False


def _text(response: httpx.Response, data: bytes) -> str:
    # Incremental decoding drops a character cut in half by the limit instead of mangling it.
    try:
        factory = codecs.getincrementaldecoder(response.encoding or "utf-8")
    except LookupError:  # a charset Python does not know
        factory = codecs.getincrementaldecoder("utf-8")
    decoder = factory(errors="replace")
    return decoder.decode(data, final=False)


def _result_body(response: httpx.Response, data: bytes, truncated: bool) -> Any:
    if not data:
        return None
    if not truncated and "json" in response.headers.get("content-type", "").lower():
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return _text(response, data)


def _excerpt(response: httpx.Response, data: bytes) -> str:
    return " ".join(_text(response, data[: EXCERPT_CHARS * 4]).split())[:EXCERPT_CHARS]


def _connect_failure(exc: BaseException, url: httpx.URL) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return f"could not resolve host {url.host}"
        cause = cause.__cause__ or cause.__context__
    return f"could not connect: {exc}" if str(exc) else "could not connect"


async def call_http_target(
    client: httpx.AsyncClient,
    target: HttpTarget,
    *,
    job_id: str,
    queue: str,
    attempt: int,
    payload: Any,
    signing_secret: str,
    timeout: float,
) -> dict[str, Any]:
    """Send one attempt of an HTTP-target job and judge the answer (the table at the top).

    The body is the compact JSON of `target.body`, or of `payload` when that is None; it is
    signed with `signing_secret` under `webhook-id` = `job_id`, the same on every attempt so
    the receiver can deduplicate. `timeout` bounds the whole call: connecting, sending and
    reading the answer (a server that trickles bytes forever still times out).

    Returns {"status": code, "body": JSON, text or None}; the body is cut to 64 KiB (a cut
    JSON body is returned as text). Raises NonRetryable, RetryAfter or HttpTargetError.
    The URL is not checked here: the worker checks it with `url_allowed` first.
    """
    method = target.method
    url = httpx.URL(str(target.url))
    where = _where(method, url)
    forbidden = forbidden_headers(target.headers)
    if forbidden:
        raise NonRetryable(f"{where}: the job may not set the header(s) {', '.join(forbidden)}")
    try:
        body = orjson.dumps(target.body if target.body is not None else payload)
    except TypeError as exc:  # orjson.JSONEncodeError
        raise NonRetryable(f"{where}: the body is not JSON: {exc}") from None
    timestamp = int(time.time())
    try:
        signature = sign(signing_secret, job_id, timestamp, body)
    except ValueError as exc:
        # The queue's configuration, not the job, is wrong: retried, so that fixing the Secret helps.
        raise HttpTargetError(f"{where}: the queue's signing secret is unusable: {exc}") from None
    # Job ids are "<queue>.<ULID>": the dot cannot shift the signed fields, since the 26
    # characters after it are never a timestamp within any tolerance.
    headers = {
        **target.headers,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": job_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
        "stackyard-attempt": str(attempt),
        "stackyard-queue": queue,
    }
    try:
        async with asyncio.timeout(timeout):
            # No redirects: allowedUrls was checked for this URL only. Following a Location
            # would send the signed request (307/308 even its body) wherever the answer says,
            # inside the cluster as well, and the receiver's fix is to update the job's URL.
            async with client.stream(
                method,
                url,
                content=body,
                headers=headers,
                timeout=httpx.Timeout(timeout),
                follow_redirects=False,
            ) as response:
                data, truncated = await _read_limited(response)
    except (TimeoutError, httpx.TimeoutException):
        raise HttpTargetError(f"{where} timed out after {timeout:g}s") from None
    except httpx.ConnectError as exc:
        raise HttpTargetError(f"{where}: {_connect_failure(exc, url)}") from None
    except (httpx.LocalProtocolError, httpx.UnsupportedProtocol) as exc:
        # The request itself cannot be sent (a header value with a line break, say): it never will be.
        raise NonRetryable(f"{where}: the request cannot be sent: {exc}") from None
    except httpx.RemoteProtocolError as exc:
        raise HttpTargetError(f"{where}: the connection broke before a full answer: {exc}") from None
    except httpx.HTTPError as exc:
        raise HttpTargetError(f"{where}: {type(exc).__name__}: {exc}") from None

    code = response.status_code
    if 200 <= code < 300:
        return {"status": code, "body": _result_body(response, data, truncated)}
    excerpt = _excerpt(response, data)
    answered = f"{where} answered {_status_text(response)}" + (f": {excerpt}" if excerpt else "")
    if 300 <= code < 400:
        location = response.headers.get("location", "(no Location)")
        raise NonRetryable(
            f"{where} answered {_status_text(response)} to {location}; redirects are not followed, update the job's URL"
        )
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if code == 429:
        raise RetryAfter(answered, retry_after)
    if code in (408, 425) or 500 <= code < 600:
        if retry_after is not None:
            raise RetryAfter(answered, retry_after)
        raise HttpTargetError(answered, status=code, body=excerpt)
    if 400 <= code < 500:
        raise NonRetryable(answered)
    raise HttpTargetError(answered, status=code, body=excerpt)
