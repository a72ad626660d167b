"""stackyard's OpenID Provider used by real client libraries, against the stack of `make up`.

Authlib (Python) and openid-client (node, tests/oidc/node/rp.mjs) act as the example
OIDCClients of examples/oidc-client.yaml: a person signs in on the hosted pages in Debian's
chromium (Playwright), the library redeems the code, checks the ID token, calls userinfo,
refreshes and logs out; a machine client uses client credentials; and what the specs refuse
is refused. No request here is written by hand where a library makes it.

Fixtures are in conftest.py (`browser`, `issuer`, `stack_clients`, `person`, `callbacks`,
`page`, `node_rp`); the screenshots of the hosted pages go to .stackyard/artifacts/oidc/."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from stackyard_harness.local_stack import NAMESPACE, STACK
from stackyard_harness.tools import REPO_ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Page
    from stackyard_harness.local_stack import LocalStack

    from .callbacks import CallbackServer

ARTIFACTS = REPO_ROOT / ".stackyard" / "artifacts" / "oidc"
"""Where the screenshots go, one PNG per name."""
SIGN_IN = re.compile(r"^\s*(sign in|log in|continue)\s*$", re.I)
"""The hosted login page's submit button."""
LOG_OUT = re.compile(r"^\s*(log out|sign out|yes, log out|yes, sign out)\s*$", re.I)
"""The hosted logout page's confirmation button."""


def screenshot(page: Page, name: str) -> Path:
    """The whole page as `.stackyard/artifacts/oidc/<name>.png` (a later one of the same name
    replaces it); returns the path."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):
        raise ValueError(f"screenshot name {name!r}: lower-case letters, digits, '.', '_' and '-' only")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def query(url: str) -> dict[str, str]:
    """The query parameters of `url`, one value each."""
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def sign_in_through_hosted_pages(
    page: Page,
    authorization_url: str,
    callback: CallbackServer,
    *,
    email: str,
    password: str,
    shot: str | None = None,
) -> str:
    """Open the client's authorization URL in the browser; on the hosted login page
    (/oauth2/ui/login) type the email and password and submit, as a person would (saving the
    page as `<shot>.png` first); return the URL the browser is sent back to at the client's
    callback. A browser that still has its session with the provider goes straight back."""
    mark = callback.mark()
    page.goto(authorization_url)
    if urlsplit(page.url).path == "/oauth2/ui/login":
        submit_login(page, email=email, password=password, shot=shot)
    return callback.wait(after=mark)


def submit_login(page: Page, *, email: str, password: str, shot: str | None = None) -> None:
    """On the hosted login page, type the email and password and submit (saving the page as
    `<shot>.png` first)."""
    page.get_by_label(re.compile(r"^\s*email", re.I)).first.fill(email)
    page.get_by_label(re.compile(r"^\s*password", re.I)).first.fill(password)
    if shot:
        screenshot(page, shot)
    page.get_by_role("button", name=SIGN_IN).first.click()


def log_out_in_browser(page: Page, url: str, callback: CallbackServer, return_path: str, shot: str) -> str:
    """Open the end-session URL; confirm on the hosted logout page (/oauth2/ui/logout) when it
    asks (saving it as `<shot>.png`); return the URL the browser is sent back to at the client
    (the post-logout redirect URI, whose path is `return_path`)."""
    mark = callback.mark()
    page.goto(url)
    if urlsplit(page.url).path == "/oauth2/ui/logout":
        screenshot(page, shot)
        page.get_by_role("button", name=LOG_OUT).first.click()
    return callback.wait(after=mark, path=return_path)


def jose_header(token: str) -> dict[str, str]:
    """The protected header of a compact JWS (alg, kid, typ)."""
    encoded = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))  # type: ignore[no-any-return]


def signing_algorithm(stack: LocalStack) -> str:
    """The Stack's spec.auth.signingAlgorithm (the API server fills in the default, RS256)."""
    spec = stack.kube.kubectl_json("get", "stack", STACK, "-n", NAMESPACE)["spec"]
    return str(spec.get("auth", {}).get("signingAlgorithm", "RS256"))
