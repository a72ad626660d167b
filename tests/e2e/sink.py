"""An in-cluster sink for the e2e suite: SMTP on :1025 and HTTP on :8000.

It runs in a pod of the api image (Python standard library only, mounted from a
ConfigMap) and prints one JSON line per mail it accepts and per HTTP request it gets;
the suite reads them with `kubectl logs`. HTTP answers 200 to everything (a job's
target), and GET /healthz is its readiness probe.
"""

from __future__ import annotations

import asyncio
import json
import sys


def record(kind: str, **fields: object) -> None:
    print(json.dumps({"kind": kind, **fields}), flush=True)


async def smtp_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    async def reply(line: str) -> None:
        writer.write(f"{line}\r\n".encode())
        await writer.drain()

    sender, recipients = "", []
    await reply("220 e2e-sink ESMTP")
    try:
        while line := await reader.readline():
            command = line.decode(errors="replace").strip()
            verb = command.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                await reply(
                    "250-e2e-sink\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME" if verb == "EHLO" else "250 e2e-sink"
                )
            elif verb == "AUTH":
                if command.upper().startswith("AUTH LOGIN"):
                    for prompt in ("334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6"):
                        await reply(prompt)
                        await reader.readline()
                await reply("235 accepted")
            elif verb == "MAIL":
                sender, recipients = command.split(":", 1)[1].strip().strip("<>").split(">")[0], []
                await reply("250 ok")
            elif verb == "RCPT":
                recipients.append(command.split(":", 1)[1].strip().strip("<>").split(">")[0])
                await reply("250 ok")
            elif verb == "DATA":
                await reply("354 end with .")
                body = []
                while (data := await reader.readline()) not in (b".\r\n", b".\n", b""):
                    body.append(data.decode(errors="replace"))
                record("mail", sender=sender, recipients=recipients, data="".join(body))
                await reply("250 queued")
            elif verb == "QUIT":
                await reply("221 bye")
                break
            elif verb in ("RSET", "NOOP"):
                await reply("250 ok")
            else:
                await reply("502 not implemented")
    finally:
        writer.close()


async def http_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        request = (await reader.readline()).decode(errors="replace").split()
        headers = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode(errors="replace").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
        if len(request) >= 2 and request[1] != "/healthz":
            record("http", method=request[0], path=request[1], headers=headers, body=body.decode(errors="replace"))
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"
        )
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
        print(f"sink: bad request: {exc}", file=sys.stderr, flush=True)
    finally:
        writer.close()


async def main() -> None:
    smtp = await asyncio.start_server(smtp_session, "0.0.0.0", 1025)
    http = await asyncio.start_server(http_session, "0.0.0.0", 8000)
    record("ready", smtp=1025, http=8000)
    async with smtp, http:
        await asyncio.gather(smtp.serve_forever(), http.serve_forever())


if __name__ == "__main__":
    asyncio.run(main())
