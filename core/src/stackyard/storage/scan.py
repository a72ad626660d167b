"""A client of ClamAV's daemon (clamd): the malware scan of uploads.

It speaks clamd's own protocol over TCP (`tcp://host:port`) or a unix socket
(`unix:///path`), as clamd(8) documents it: commands prefixed with `z` and ended by a NUL
byte, so that replies end with NUL too.

- `zPING\\0` -> `PONG`.
- `zINSTREAM\\0`, then the bytes as chunks, each preceded by its length as 4 bytes big-endian,
  then a zero length -> `stream: OK`, `stream: <Signature> FOUND` or `... ERROR` (among them
  `INSTREAM size limit exceeded. ERROR` once more than clamd's StreamMaxLength was sent; clamd
  may then close the connection before the client has sent everything).

Written here rather than taken from PyPI: the `clamd` package was last released in 2017,
is synchronous and unmaintained; the protocol is a few lines.

A verdict is a `ScanResult`: clean, infected, or unscannable (clamd refused the stream as
larger than its StreamMaxLength: asking again would get the same answer, so it is a verdict,
and the file is quarantined). Anything else (clamd unreachable, no answer within the timeout,
an ERROR reply) raises `ScanUnavailable`: the scan job fails and its queue retries it, the
file stays `scanning` and is never served meanwhile.

    scanner = Clamd("tcp://clamav:3310", timeout=60)
    result = await scanner.instream(storage.read("files/" + file_id))
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "CHUNK_BYTES",
    "TOO_LARGE",
    "Clamd",
    "ScanResult",
    "ScanUnavailable",
    "parse_address",
    "parse_reply",
]

CHUNK_BYTES = 256 * 1024
"""Largest chunk sent in one INSTREAM frame (larger reads are split)."""
REPLY_LIMIT = 4096
"""Most bytes of a reply read (a signature name is short)."""


class ScanUnavailable(Exception):
    """No verdict: clamd unreachable or silent, an ERROR reply. The message names the
    address's kind and the reason, never the file's contents."""


TOO_LARGE = "larger than clamd's StreamMaxLength"
"""The reason of an unscannable verdict: clamd's size limit (raise its StreamMaxLength to at
least the Bucket's limits.maxObjectSize)."""

Verdict = Literal["clean", "infected", "unscannable"]


@dataclass(frozen=True)
class ScanResult:
    result: Verdict
    signature: str | None = None
    """The matched signature's name when infected (e.g. `Win.Test.EICAR_HDB-1`)."""
    reason: str | None = None
    """Why there is no clean or infected verdict when unscannable (TOO_LARGE)."""

    @property
    def clean(self) -> bool:
        return self.result == "clean"

    @property
    def infected(self) -> bool:
        return self.result == "infected"

    @property
    def unscannable(self) -> bool:
        return self.result == "unscannable"


@dataclass(frozen=True)
class Address:
    host: str | None = None
    port: int | None = None
    path: str | None = None

    def __str__(self) -> str:
        return f"unix://{self.path}" if self.path is not None else f"tcp://{self.host}:{self.port}"


def parse_address(address: str) -> Address:
    """`tcp://host:port` or `unix:///path` (the forms ScanSettings.address allows)."""
    if address.startswith("unix://"):
        path = address[len("unix://") :]
        if not path.startswith("/"):
            raise ValueError(f"not a clamd address: {address!r} (write unix:///path/to/clamd.sock)")
        return Address(path=path)
    if address.startswith("tcp://"):
        host, sep, port = address[len("tcp://") :].rpartition(":")
        if sep and host and port.isdigit() and 0 < int(port) < 65536:
            return Address(host=host.strip("[]"), port=int(port))
    raise ValueError(f"not a clamd address: {address!r} (write tcp://host:port or unix:///path)")


def parse_reply(reply: bytes) -> ScanResult:
    """The verdict in an INSTREAM reply (clamd's size limit: unscannable, TOO_LARGE);
    ScanUnavailable when it is none."""
    text = reply.rstrip(b"\0\r\n").decode("utf-8", "replace").strip()
    # clamd answers `stream: ...`; with a session id prefix (`1: stream: ...`) under IDSESSION.
    _, _, verdict = text.partition("stream: ")
    if verdict == "OK":
        return ScanResult("clean")
    if verdict.endswith(" FOUND"):
        return ScanResult("infected", verdict[: -len(" FOUND")].strip() or "unknown")
    if "size limit exceeded" in text:
        return ScanResult("unscannable", reason=TOO_LARGE)
    if not text:
        raise ScanUnavailable("clamd closed the connection without a verdict")
    raise ScanUnavailable(f"clamd answered {text[:200]!r}")


class Clamd:
    """One clamd, reached at `address`; each call opens its own connection (clamd serves
    one command per connection unless a session is started)."""

    def __init__(self, address: str, *, timeout: float = 60.0, connect_timeout: float = 5.0) -> None:
        self.address = parse_address(address)
        self.timeout = timeout
        self.connect_timeout = min(connect_timeout, timeout)

    async def ping(self) -> None:
        """PING -> PONG, or ScanUnavailable."""
        reply = await self._command(b"zPING\0", None)
        if reply.rstrip(b"\0\r\n") != b"PONG":
            raise ScanUnavailable(f"clamd at {self._where()} answered PING with {reply[:100]!r}")

    async def version(self) -> str:
        """clamd's version line, e.g. `ClamAV 1.4.6/27000/...`."""
        return (await self._command(b"zVERSION\0", None)).rstrip(b"\0\r\n").decode("utf-8", "replace")

    async def instream(self, chunks: AsyncIterable[bytes]) -> ScanResult:
        """Stream `chunks` to clamd and return its verdict (the whole scan within `timeout`);
        past clamd's StreamMaxLength it stops sending and answers unscannable."""
        return parse_reply(await self._command(b"zINSTREAM\0", chunks))

    async def _command(self, command: bytes, chunks: AsyncIterable[bytes] | None) -> bytes:
        try:
            async with asyncio.timeout(self.timeout):
                loop = asyncio.get_running_loop()
                sock = await self._connect(loop)
                # The reply is read while the stream is sent: past StreamMaxLength clamd answers,
                # stops reading and closes with our bytes unread, which resets the connection.
                # A plain socket (not asyncio's streams, whose transport drops what it received
                # once a write fails) still gives what arrived before the reset.
                replying = asyncio.create_task(_read_reply(loop, sock))
                try:
                    try:
                        await loop.sock_sendall(sock, command)
                        if chunks is not None:
                            await _send_stream(loop, sock, chunks, replying)
                    except (ConnectionResetError, BrokenPipeError) as exc:
                        if not await replying:
                            raise ScanUnavailable(
                                f"clamd at {self._where()} closed the connection ({type(exc).__name__})"
                            ) from None
                    return await replying
                finally:
                    replying.cancel()
                    sock.close()
        except TimeoutError:
            raise ScanUnavailable(f"clamd at {self._where()} gave no answer within {self.timeout:g} s") from None
        except ScanUnavailable:
            raise
        except OSError as exc:
            reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else exc.strerror
            reason = reason or type(exc).__name__
            raise ScanUnavailable(f"clamd at {self._where()} is unreachable: {reason}") from None

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> socket.socket:
        address = self.address
        try:
            async with asyncio.timeout(self.connect_timeout):
                if address.path is not None:
                    return await _connected(loop, socket.AF_UNIX, address.path)
                found = await loop.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
                error: OSError = ConnectionRefusedError("no address")
                for family, _, _, _, where in found:
                    try:
                        return await _connected(loop, family, where)
                    except OSError as exc:
                        error = exc
                raise error
        except TimeoutError:
            raise ScanUnavailable(
                f"clamd at {self._where()} did not accept a connection within {self.connect_timeout:g} s"
            ) from None

    def _where(self) -> str:
        return str(self.address)


async def _connected(loop: asyncio.AbstractEventLoop, family: int, where: Any) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, where)
    except BaseException:
        sock.close()
        raise
    return sock


async def _send_stream(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, chunks: AsyncIterable[bytes], replying: asyncio.Task[bytes]
) -> None:
    """The INSTREAM frames; stops early when clamd has answered already (its size limit)."""
    async for chunk in chunks:
        for start in range(0, len(chunk), CHUNK_BYTES):
            if replying.done():
                return
            part = chunk[start : start + CHUNK_BYTES]
            await loop.sock_sendall(sock, struct.pack(">I", len(part)) + part)
    await loop.sock_sendall(sock, struct.pack(">I", 0))


async def _read_reply(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
    """What clamd answers, up to its NUL (what came before a reset or the end)."""
    reply = b""
    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
        while len(reply) < REPLY_LIMIT:
            data = await loop.sock_recv(sock, REPLY_LIMIT - len(reply))
            if not data:
                break
            reply += data
            if reply.endswith(b"\0"):
                break
    return reply
