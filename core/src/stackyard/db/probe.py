"""Is a Database reachable, and what answers: the server's version, the topology and a
measured round trip; or why not, in one of five reasons a person can act on.

    result = await probe(client, "app")
    result.ok, result.reason, result.message   # True, "Connected", "MongoDB 7.0.77, Single, 0.8 ms"
    result.server                               # ServerInfo(version, topology, round_trip_ms, checked_at)

| reason                | what happened                                                          |
|-----------------------|------------------------------------------------------------------------|
| Connected             | ping and buildInfo answered                                            |
| AuthenticationFailed  | the server refused the credentials (codes 18 AuthenticationFailed, 8000) |
| TLSError              | the TLS handshake failed (certificate, CA, hostname, TLS to a plain port) |
| Timeout               | nothing answered in time (no server selected, a socket or operation timeout) |
| Unreachable           | the connection was refused or the name did not resolve                 |
| Misconfigured         | the settings cannot work (a bad URI option, not the MongoDB protocol, ...) |

Messages never hold a URI or a password: the driver's texts are cut to the first server's
error and scrubbed of anything shaped like a connection string or credentials.

`is_connection_error` tells the failures that mean "MongoDB is away right now" (the api's
503 database-unavailable; a job's retry) from those of a request itself.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import (
    ConfigurationError,
    ConnectionFailure,
    ExecutionTimeout,
    NetworkTimeout,
    OperationFailure,
    ProtocolError,
    PyMongoError,
    ServerSelectionTimeoutError,
    WaitQueueTimeoutError,
)

from ..resources.database import ServerInfo

__all__ = ["REASONS", "ProbeResult", "classify", "is_connection_error", "probe", "scrub"]

REASONS = ("AuthenticationFailed", "TLSError", "Timeout", "Unreachable", "Misconfigured")
"""The reasons of a failed probe (Connected=False)."""
AUTH_CODES = frozenset({18, 8000})
"""AuthenticationFailed, and Atlas's AtlasError for refused credentials."""
TIMEOUT_CODES = frozenset({50, 262})
"""MaxTimeMSExpired, ExceededTimeLimit."""
MESSAGE_LIMIT = 512

_URI = re.compile(r"mongodb(?:\+srv)?://\S*", re.IGNORECASE)
_USERINFO = re.compile(r"[^\s/@:'\"]+:[^\s/@'\"]+@")
_DRIVER_TAIL = re.compile(r"\s*(?:\(configured timeouts:|, Timeout: |Topology Description:|, full error:).*", re.DOTALL)
_TLS_HINTS = ("ssl", "tls", "certificate")


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    reason: str
    """Connected, or one of REASONS."""
    message: str
    server: ServerInfo | None


async def probe(client: AsyncMongoClient[Any], dbname: str, *, timeout: float | None = None) -> ProbeResult:
    """Ping `dbname` (once to connect, once timed), read buildInfo and the topology; a failure
    classified. `timeout` bounds the whole probe (None: the client's own timeouts)."""
    database = client[dbname]
    try:
        async with asyncio.timeout(timeout):
            await database.command("ping")
            info = await database.command("buildInfo")
            started = time.perf_counter()
            await database.command("ping")
            round_trip = (time.perf_counter() - started) * 1000
    except Exception as exc:
        reason, message = classify(exc, client, timeout)
        return ProbeResult(False, reason, message, None)
    server = ServerInfo(
        version=str(info.get("version", "unknown"))[:100],
        topology=client.topology_description.topology_type_name[:50],
        round_trip_ms=round(round_trip, 1),
        checked_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    message = f"MongoDB {server.version}, {server.topology}, {server.round_trip_ms:g} ms"
    return ProbeResult(True, "Connected", message, server)


def classify(
    exc: BaseException, client: AsyncMongoClient[Any] | None = None, timeout: float | None = None
) -> tuple[str, str]:
    """(reason, message) for a failure to reach or use a database; `client` lends the
    servers' own errors when no server could be selected."""
    if isinstance(exc, TimeoutError):
        return "Timeout", f"no answer within {timeout:g} s" if timeout else "no answer in time"
    cause = _server_error(exc, client) if isinstance(exc, ServerSelectionTimeoutError) else exc
    text = _first_line(str(cause if cause is not None else exc))
    if cause is None and isinstance(exc, ServerSelectionTimeoutError):
        return "Timeout", f"no server answered in time ({text})"
    if _is_tls(cause):
        return "TLSError", f"the TLS handshake failed: {text}"
    if isinstance(cause, OperationFailure):
        if cause.code in AUTH_CODES:
            return "AuthenticationFailed", f"the server refused the credentials: {text}"
        if cause.code in TIMEOUT_CODES or isinstance(cause, ExecutionTimeout):
            return "Timeout", f"the server gave up in time: {text}"
        return "Misconfigured", f"the server refused the probe ({cause.code}): {text}"
    if isinstance(cause, ProtocolError):
        return "Misconfigured", f"what answered does not speak MongoDB's protocol: {text}"
    if isinstance(cause, (NetworkTimeout, WaitQueueTimeoutError)) or "timed out" in text.lower():
        return "Timeout", f"no answer in time: {text}"
    if isinstance(cause, ConnectionFailure):
        return "Unreachable", text
    if isinstance(cause, ConfigurationError):
        return "Misconfigured", f"the connection settings cannot work: {text}"
    return "Misconfigured", f"the probe failed ({type(cause).__name__}): {text}"


def is_connection_error(exc: BaseException) -> bool:
    """True for the driver's ConnectionFailure family (no server, network error or timeout,
    pool wait timeout) and its client-side operation timeouts, here or in the causes."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ConnectionFailure) or (isinstance(seen, PyMongoError) and seen.timeout):
            return True
        seen = seen.__cause__
    return False


def scrub(text: str) -> str:
    """`text` without connection strings or `user:password@` parts."""
    return _USERINFO.sub("***@", _URI.sub("mongodb://***", text))


def _server_error(exc: ServerSelectionTimeoutError, client: AsyncMongoClient[Any] | None) -> BaseException | None:
    """The first error a server of the topology holds (None: none answered yet)."""
    if client is None:
        return exc
    for description in client.topology_description.server_descriptions().values():
        if description.error is not None:
            return description.error
    return None


def _is_tls(exc: BaseException | None) -> bool:
    seen = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        if isinstance(seen, ConnectionFailure) and any(hint in str(seen).lower() for hint in _TLS_HINTS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _first_line(text: str) -> str:
    line = _DRIVER_TAIL.sub("", scrub(text)).strip().splitlines()
    first = line[0] if line else "no detail"
    return first if len(first) <= MESSAGE_LIMIT else first[: MESSAGE_LIMIT - 1] + "…"
