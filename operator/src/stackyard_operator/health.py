"""A liveness endpoint that answers from the start, also while a replica waits for the
Lease (kopf's own endpoint only exists once kopf runs, i.e. on the leader). Served with
aiohttp, which kopf already depends on."""

from __future__ import annotations

from aiohttp import web


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def serve_health(port: int) -> web.AppRunner:
    """GET /healthz answers 200 while the event loop runs (a wedged loop fails the probe).
    Stop it with `await runner.cleanup()`."""
    app = web.Application()
    app.router.add_get("/healthz", _healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()  # noqa: S104 - a probe endpoint
    return runner
