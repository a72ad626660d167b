"""pytest fixtures for the real servers, started once per session on first use.

Outside CI, a test whose server's binary is missing is skipped with the command to run
(`make tools`); with CI set, it fails: in CI a missing server is a failure, not a skip.
A server that is there but does not start always fails the test, with its log's tail.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .clamav import ClamdServer
from .fake_sentry import FakeSentry
from .harness import Harness
from .kube import KubeCluster
from .mongo import MongoServer
from .oidc_provider import OidcClient, OidcProvider
from .otel import OtelCollector
from .redis import RedisServer
from .redis_cluster import RedisCluster
from .s3 import S3Server
from .tools import ToolMissing, Tools


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def unavailable(reason: str | Exception) -> None:
    """A server, tool or image a test needs is missing: fail in CI, else skip saying
    what to run (the reason names the make target)."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: a missing server is a failure, not a skip)", pytrace=False)
    pytest.skip(str(reason))


@pytest.fixture(scope="session")
def harness() -> Iterator[Harness]:
    running = Harness()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def tools() -> Tools:
    return Tools.locate()


def _service(harness: Harness, name: str):  # type: ignore[no-untyped-def]
    try:
        return harness.service(name)
    except ToolMissing as exc:
        unavailable(exc)


@pytest.fixture(scope="session")
def kube(harness: Harness) -> KubeCluster:
    return _service(harness, "kube")


@pytest.fixture(scope="session")
def redis_server(harness: Harness) -> RedisServer:
    return _service(harness, "redis")


@pytest.fixture(scope="session")
def redis_cluster(harness: Harness) -> RedisCluster:
    """Three Redis masters in one cluster (hash slots split in three)."""
    return _service(harness, "redis-cluster")


@pytest.fixture(scope="session")
def mongo_server(harness: Harness) -> MongoServer:
    return _service(harness, "mongo")


@pytest.fixture(scope="session")
def s3_server(harness: Harness) -> S3Server:
    """MinIO: `.endpoint`, `.access_key`, `.secret_key`, `.region`, `.create_bucket(prefix)`."""
    return _service(harness, "s3")


@pytest.fixture(scope="session")
def clamd(harness: Harness) -> ClamdServer:
    """Debian's clamd with a test signature database (the EICAR file and `clamav.MARKER`):
    `.address` (tcp://127.0.0.1:<port>), `.unix_address` (unix:///…/clamd.sock)."""
    return _service(harness, "clamd")


@pytest.fixture(scope="session")
def otel_collector(harness: Harness) -> OtelCollector:
    return _service(harness, "otel")


@pytest.fixture(scope="session")
def fake_sentry_server() -> Iterator[FakeSentry]:
    with FakeSentry() as server:
        yield server


@pytest.fixture
def fake_sentry(fake_sentry_server: FakeSentry) -> FakeSentry:
    """A local Sentry (envelope and store endpoints, Sentry's auth and refusals): point an
    SDK at its `.dsn`, read `.events()`. One per session, emptied for each test."""
    fake_sentry_server.reset()
    return fake_sentry_server


@pytest.fixture(scope="session")
def helm(tools: Tools) -> str:
    try:
        return str(tools.require("helm"))
    except ToolMissing as exc:
        unavailable(exc)
        raise


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., OidcProvider]]:
    """Starts a real OpenID Provider (node oidc-provider) with one client:
    `oidc_provider(redirect_uris=[...], accounts={...})`; each is stopped at the end."""
    started: list[OidcProvider] = []

    def start(
        redirect_uris: list[str], accounts: dict[str, dict[str, Any]] | None = None, **client: Any
    ) -> OidcProvider:
        provider = OidcProvider(
            OidcClient(redirect_uris, **client), tmp_path_factory.mktemp("oidc"), accounts=accounts or {}
        )
        try:
            started.append(provider.start())
        except ToolMissing as exc:
            unavailable(exc)
        return provider

    yield start
    for provider in started:
        provider.stop()


CHROMIUM = os.environ.get("STACKYARD_CHROMIUM", "/usr/bin/chromium")
"""Debian's chromium (hack/apt-packages.sh installs it); STACKYARD_CHROMIUM names another."""
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless chromium (Playwright, sync API) for one test module, shared by its tests
    (each in a context of its own). One module at a time, on purpose: while Playwright's sync
    API runs, the main thread has a running event loop, so `asyncio.run` fails in any test
    after it, and a second instance refuses to start."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed: run `make install`")
    if not os.path.exists(CHROMIUM):
        unavailable(f"no chromium at {CHROMIUM}: run `sudo hack/apt-packages.sh` (it installs Debian's chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
