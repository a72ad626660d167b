"""Fixtures of the OpenID Provider tests: the `make up` stack (its Stack's issuer is the api's
URL, hack/harness local_stack.py), the example OIDCClients with their secrets, a person who
signed up and verified their address through the mail sink, the clients' callback ports,
one headless chromium, and the openid-client process.

Debian's chromium and the node relying party are used as they are (`sudo hack/apt-packages.sh`
installs chromium, `make tools` installs openid-client). Outside CI a missing one skips the
tests saying what to run; with CI set it fails them."""

from __future__ import annotations

import email
import email.policy
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from stackyard_harness.local_stack import NAMESPACE, LocalStack
from stackyard_harness.pytest_plugin import unavailable

from . import screenshot
from .callbacks import CallbackServer
from .node_rp import NodeRelyingParty, installed_script

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

TIMEOUT_MS = 15_000
PASSWORD = "a long and quiet river at the provider"
TOKEN = re.compile(r"token=([A-Za-z0-9_\-]+)")
EXAMPLE_CLIENTS = ("demo-web", "demo-spa", "demo-worker", "partner-app")
"""The OIDCClients of examples/oidc-client.yaml."""


@dataclass(frozen=True)
class Client:
    """An example OIDCClient as its app is configured: id, secret (none for a public client),
    its first redirect URI and post-logout redirect URI, scopes."""

    client_id: str
    type: str
    secret: str | None
    redirect_uri: str | None
    post_logout_redirect_uri: str | None
    scopes: list[str]

    @property
    def port(self) -> int:
        assert self.redirect_uri, f"{self.client_id} has no redirect URI"
        return int(self.redirect_uri.split(":")[2].split("/")[0])


@dataclass(frozen=True)
class Person:
    email: str
    password: str
    name: str


@pytest.fixture(scope="session")
def issuer(make_up: LocalStack) -> str:
    """The Stack's issuer, which is the api's URL; its discovery document must name it."""
    answer = httpx.get(f"{make_up.issuer}/.well-known/openid-configuration", timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["issuer"] == make_up.issuer, answer.json()
    return make_up.issuer


@pytest.fixture(scope="session")
def stack_clients(make_up: LocalStack, issuer: str) -> dict[str, Client]:
    """The example OIDCClients, read from the cluster; the secrets from the Secrets the
    operator made (`<name>-oidc-client`), and each client in the api's config."""
    clients = {}
    for name in EXAMPLE_CLIENTS:
        resource = make_up.kube.kubectl_json("get", "oidcclient", name, "-n", NAMESPACE)
        spec = resource["spec"]
        secret = make_up.oidc_client_secret(name) if spec["type"] != "public" else None
        clients[name] = Client(
            client_id=name,
            type=spec["type"],
            secret=secret,
            redirect_uri=(spec.get("redirectUris") or [None])[0],
            post_logout_redirect_uri=(spec.get("postLogoutRedirectUris") or [None])[0],
            scopes=spec.get("scopes") or ["openid", "profile", "email", "offline_access"],
        )
    return clients


@pytest.fixture(scope="session")
def person(make_up: LocalStack, issuer: str) -> Person:
    """Someone who signed up with a password and confirmed their address with the link the
    stack mailed (read from the SMTP sink's maildir), as a newcomer would."""
    return sign_up(make_up, issuer, "Ada Lovelace")


def sign_up(make_up: LocalStack, issuer: str, name: str) -> Person:
    """A new person (address oidc-<random>@example.com), signed up through the api with a
    password and their address confirmed with the link the stack mailed."""
    address = f"oidc-{uuid.uuid4().hex[:8]}@example.com"
    with httpx.Client(base_url=issuer, timeout=10) as api:
        answer = api.post("/v1/auth/signup", json={"email": address, "password": PASSWORD, "profile": {"name": name}})
        assert answer.status_code in (201, 202), answer.text
        if answer.status_code == 202:
            token = _wait(lambda: _verification_token(make_up.maildir, address), 60, "the verification mail")
            verified = api.post("/v1/auth/verify-email", json={"token": token})
            assert verified.status_code == 200, verified.text
    return Person(address, PASSWORD, name)


def mailed_link(maildir: Path, address: str, path: str, timeout: float = 60) -> str:
    """The first link to `path` (for example /oauth2/ui/verify-email) in a mail the stack sent
    to `address`, waiting up to `timeout` seconds for it to arrive in the SMTP sink's maildir."""
    pattern = re.compile(rf"https?://[^\s\"<>]+{re.escape(path)}\?[^\s\"<>]+")

    def found() -> str | None:
        return next((link.group(0) for body in _mails_to(maildir, address) if (link := pattern.search(body))), None)

    return str(_wait(found, timeout, f"a mail to {address} with a link to {path}"))


def _verification_token(maildir: Path, address: str) -> str | None:
    return next((found.group(1) for body in _mails_to(maildir, address) if (found := TOKEN.search(body))), None)


def _mails_to(maildir: Path, address: str) -> Iterator[str]:
    """The plain-text bodies of the mails in `maildir` sent to `address`."""
    for path in sorted(maildir.glob("*.eml")):
        mail = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        body = mail.get_body(("plain",)) if isinstance(mail, EmailMessage) else None
        if address in str(mail["To"]) and body:
            yield body.get_content()


def _wait(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := check()) is not None:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s")


@pytest.fixture(scope="session")
def callbacks(stack_clients: dict[str, Client]) -> Iterator[dict[str, CallbackServer]]:
    """The redirect URIs' listeners, by client id (clients on one port share one)."""
    by_port: dict[int, CallbackServer] = {}
    for client in stack_clients.values():
        if client.redirect_uri and client.port not in by_port:
            by_port[client.port] = CallbackServer(client.port).start()
    try:
        yield {c.client_id: by_port[c.port] for c in stack_clients.values() if c.redirect_uri}
    finally:
        for server in by_port.values():
            server.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """Keep each phase's report on the test, for the page fixture's teardown to see a failure."""
    report: pytest.TestReport = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.fixture
def page(request: pytest.FixtureRequest, browser: Browser, issuer: str) -> Iterator[Page]:
    """A page of a fresh browser profile (no session with the provider yet). When the test
    fails, the page is saved as .stackyard/artifacts/oidc/failed-<test>.png."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    try:
        yield opened
        call = request.node.stash.get(REPORTS, {}).get("call")
        if call is not None and call.failed and not opened.is_closed():
            name = re.sub(r"[^a-z0-9._-]+", "-", request.node.name.lower()).strip("-")
            screenshot(opened, f"failed-{name}"[:120])
    finally:
        context.close()


@pytest.fixture(scope="session")
def rp_script() -> Path:
    import shutil

    if shutil.which("node") is None:
        unavailable("node is not on PATH: install Node.js 20 or later (Debian's nodejs)")
    script = installed_script()
    if script is None:
        unavailable("openid-client is not installed: run `make tools` (or `bash hack/tools.sh oidc-rp`)")
    assert script is not None
    return script


@pytest.fixture
def node_rp(rp_script: Path, tmp_path: Path) -> Iterator[NodeRelyingParty]:
    """A fresh openid-client process (its log: rp.log in the test's tmp_path)."""
    rp = NodeRelyingParty(rp_script, tmp_path / "rp.log")
    try:
        yield rp
    finally:
        rp.close()
