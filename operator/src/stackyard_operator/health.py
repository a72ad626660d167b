"""A liveness endpoint that answers from the start, also while a replica waits for the
Lease (kopf's own endpoint only exists once kopf runs, i.e. on the leader)."""

from __future__ import annotations

import asyncio

_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        request_line = await asyncio.wait_for(reader.readline(), timeout=5)
        parts = request_line.decode("latin-1").split()
        writer.write(_OK if len(parts) >= 2 and parts[1] in ("/healthz", "/livez") else _NOT_FOUND)
        await writer.drain()
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve_health(port: int) -> asyncio.Server:
    """GET /healthz answers 200 while the event loop runs (a wedged loop fails the probe)."""
    return await asyncio.start_server(_answer, "0.0.0.0", port)  # noqa: S104 - a probe endpoint
