"""The SMTP sink of bench/email.py: aiosmtpd in a process of its own, counting what it accepts.

    python bench/peers/smtp_sink.py SMTP_PORT HTTP_PORT

Both sides of the throughput run send to it, so its CPU cost is the same for each and out of
the measuring process. It accepts every message (250) without parsing it, and counts it with
the time it was accepted (`time.monotonic()`, the system-wide CLOCK_MONOTONIC, which the
measuring process reads too). A small HTTP endpoint on loopback answers:

    GET /count   {"count": N, "last": <monotonic time of the last message accepted>}
    GET /reset   count back to 0 (answers the same body as before the reset)

The bench polls /count every few tens of milliseconds and takes the time of the Nth message
from `last`, so the end of a run is exact whatever the polling interval.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time

from aiosmtpd.smtp import SMTP, Envelope, Session


class Counter:
    """The aiosmtpd handler: every DATA is accepted and counted."""

    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.count += 1
        self.last = time.monotonic()
        return "250 OK: queued as " + str(self.count)

    def body(self) -> bytes:
        return json.dumps({"count": self.count, "last": self.last}).encode()


async def serve(smtp_port: int, http_port: int) -> None:
    counter = Counter()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            path = request.split()[1] if len(request.split()) > 1 else b"/"
            body = counter.body()
            if path == b"/reset":
                counter.count, counter.last = 0, 0.0
            status = b"200 OK" if path in (b"/count", b"/reset") else b"404 Not Found"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
            )
            await writer.drain()
        finally:
            writer.close()

    loop = asyncio.get_running_loop()
    # hostname given: aiosmtpd would otherwise look up this host's FQDN
    smtp = await loop.create_server(lambda: SMTP(counter, hostname="sink"), "127.0.0.1", smtp_port)
    http = await asyncio.start_server(answer, "127.0.0.1", http_port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    http.close()
    smtp.close()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2])))
