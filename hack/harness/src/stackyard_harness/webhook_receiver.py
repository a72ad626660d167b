"""A webhook endpoint for the tests: it keeps every request it gets (path, headers, raw body,
when) and answers each path with the status the test chose (204 by default).

    with WebhookReceiver() as receiver:
        receiver.answer("/crm", 500)             # every POST /crm answers 500 from now on
        url = receiver.url + "/crm"
        ...
        [request] = receiver.wait_for(1, path="/crm")
        standardwebhooks.Webhook(secret).verify(request.body, request.headers)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web

from .fake_server import FakeServer

__all__ = ["Received", "WebhookReceiver"]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes
    at: float
    """time.time() when it arrived."""
    status: int
    """What it was answered."""


@dataclass
class _State:
    received: list[Received] = field(default_factory=list)
    answers: dict[str, int] = field(default_factory=dict)


class WebhookReceiver(FakeServer[_State]):
    name = "webhook receiver"

    def __init__(self) -> None:
        super().__init__(_State)

    def answer(self, path: str, status: int) -> None:
        """Answer POSTs to `path` with `status` from now on."""
        with self._lock:
            self._state.answers[path] = status

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._state.received if path is None or r.path == path]

    def wait_for(self, count: int, *, path: str | None = None, timeout: float = 15.0) -> list[Received]:
        """At least `count` requests (to `path`), waiting for them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.received(path)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} webhook requests to {path or 'any path'} in {timeout}s")
            time.sleep(0.02)

    def _application(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            status = self._state.answers.get(request.path, 204)
            self._state.received.append(
                Received(request.path, {k.lower(): v for k, v in request.headers.items()}, body, time.time(), status)
            )
        return web.Response(status=status, text="" if status == 204 else f"answered {status}")
