"""A real OpenID Provider for the social-login tests: the node package oidc-provider (installed
by `make tools` from hack/harness/oidc), run on a free port with one registered client.

Its built-in development pages log in any login name with any password, then ask for
consent; `sign_in` drives them as a browser would (its own cookie jar) and returns where the
provider sends the browser back to the client: the client's redirect URI with `code` and
`state`, or with `error`. Accounts not given get `<login>@example.com`, verified."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from .process import HarnessError, ManagedProcess
from .tools import TOOLS_SCRIPT, ToolMissing

_FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')
_LISTENING = re.compile(r"^listening (http://\S+)$", re.M)


def provider_script() -> Path:
    """provider.mjs in the installed copy (`hack/tools.sh env`: STACKYARD_OIDC_PROVIDER)."""
    out = subprocess.run(["bash", str(TOOLS_SCRIPT), "env"], capture_output=True, text=True, check=True, timeout=30)
    paths = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    script = Path(paths["STACKYARD_OIDC_PROVIDER"])
    if not (script.parent / ".complete").is_file() and not (script.parent / "node_modules").is_dir():
        raise ToolMissing("oidc-provider", script.parent, "make tools")
    return script


@dataclass
class OidcClient:
    redirect_uris: list[str]
    client_id: str = "stackyard-tests"
    client_secret: str = "oidc-client-secret-0123456789abcdef"
    token_endpoint_auth_method: str = "client_secret_basic"

    def registration(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": self.redirect_uris,
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
        }


@dataclass
class OidcProvider:
    client: OidcClient
    log_dir: Path
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    issuer: str = ""
    process: ManagedProcess | None = None

    def start(self) -> OidcProvider:
        node = shutil.which("node")
        if node is None:
            raise ToolMissing("node", "PATH", "install Node.js 20 or later")
        script = provider_script()
        config = {"port": 0, "clients": [self.client.registration()], "accounts": self.accounts}
        log = self.log_dir / "oidc-provider.log"
        if log.exists():
            log.unlink()
        self.process = ManagedProcess(
            "oidc-provider", [node, script], log, env={"OIDC_PROVIDER_CONFIG": json.dumps(config)}, cwd=script.parent
        ).start()

        def listening() -> bool:
            found = _LISTENING.search(log.read_text(errors="replace"))
            if found:
                self.issuer = found.group(1)
            return bool(found) and httpx.get(self.discovery_url, timeout=2).status_code == 200

        self.process.wait_ready(listening, 30, "serving its discovery document")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def discovery(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(self.discovery_url, timeout=5).json()
        return body

    def set_account(self, login: str, **claims: Any) -> None:
        """Add or replace an account's claims (email, email_verified, name, picture, ...)."""
        answer = httpx.post(f"{self.issuer}/_harness/accounts", json={login: claims}, timeout=5)
        answer.raise_for_status()

    def sign_in(self, authorize_url: str, login: str, *, abort: bool = False, timeout: float = 10.0) -> str:
        """Be the user's browser at the provider: from the authorization request to the redirect
        back to the client. `abort` cancels at the login page (the provider answers
        error=access_denied). Returns that redirect's URL."""
        origin = urlsplit(self.issuer).netloc
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=5, follow_redirects=False) as browser:
            answer = browser.get(authorize_url)
            while time.monotonic() < deadline:
                if answer.is_redirect:
                    target = urljoin(str(answer.url), answer.headers["location"])
                    if urlsplit(target).netloc != origin:
                        return target
                    answer = browser.get(target)
                    continue
                if answer.status_code != 200:
                    raise HarnessError(f"the OpenID provider answered {answer.status_code}: {answer.text[:500]}")
                action = _FORM_ACTION.search(answer.text)
                if action is None:
                    raise HarnessError(f"no form on the provider's page: {answer.text[:500]}")
                submit = urljoin(str(answer.url), action.group(1))
                if 'name="login"' in answer.text:
                    if abort:
                        answer = browser.get(submit.rstrip("/") + "/abort")
                        continue
                    answer = browser.post(submit, data={"prompt": "login", "login": login, "password": "any"})
                else:
                    answer = browser.post(submit, data={"prompt": "consent"})
        raise HarnessError("the OpenID provider did not send the browser back to the client in time")
