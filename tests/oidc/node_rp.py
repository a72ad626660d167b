"""The Python end of tests/oidc/node/rp.mjs: a node process running openid-client, asked one
JSON request at a time over its stdin, answering on its stdout (see rp.mjs for the operations).

`make tools` installs the copy that runs (hack/tools.sh oidc-rp: node_modules beside rp.mjs
under ~/.cache/stackyard/oidc-rp/<hash>); `hack/tools.sh env` names it (STACKYARD_OIDC_RP)."""

from __future__ import annotations

import itertools
import json
import queue
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stackyard_harness.tools import TOOLS_SCRIPT

from . import sign_in_through_hosted_pages

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from .callbacks import CallbackServer
    from .conftest import Person


class OpenIdClientError(Exception):
    """openid-client refused or the server answered an error: `fields` holds openid-client's
    error fields (name, code, error, error_description, status, message)."""

    def __init__(self, op: str, fields: dict[str, Any]) -> None:
        super().__init__(f"openid-client {op}: {fields}")
        self.fields = fields

    @property
    def error(self) -> str | None:
        return self.fields.get("error")


def installed_script() -> Path | None:
    """rp.mjs in the copy `make tools` installed, or None when there is none."""
    out = subprocess.run(["bash", str(TOOLS_SCRIPT), "env"], capture_output=True, text=True, check=True, timeout=30)
    paths = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    script = Path(paths["STACKYARD_OIDC_RP"])
    if not (script.parent / ".complete").is_file() or not (script.parent / "node_modules" / "openid-client").is_dir():
        return None
    return script


class NodeRelyingParty:
    def __init__(self, script: Path, log: Path) -> None:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not on PATH")
        self._log = log.open("w")
        self._process = subprocess.Popen(
            [node, str(script)],
            cwd=script.parent,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )
        self._answers: queue.Queue[dict[str, Any]] = queue.Queue()
        self._ids = itertools.count(1)
        threading.Thread(target=self._read, daemon=True).start()
        ready = self._answers.get(timeout=30)
        if not ready.get("ready"):
            raise RuntimeError(f"rp.mjs did not start: {ready} (log {log})")
        self.version: str = ready["openidClient"]

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            if line.strip():
                self._answers.put(json.loads(line))
        self._answers.put({"ok": False, "error": {"message": "rp.mjs exited"}})

    def call(self, op: str, timeout: float = 30, **request: Any) -> Any:
        """Run `op` with the request's fields; its result, or OpenIdClientError."""
        assert self._process.stdin is not None
        number = next(self._ids)
        self._process.stdin.write(json.dumps({"id": number, "op": op, **request}) + "\n")
        self._process.stdin.flush()
        answer = self._answers.get(timeout=timeout)
        if not answer.get("ok"):
            raise OpenIdClientError(op, answer.get("error", {}))
        assert answer["id"] == number, answer
        return answer["result"]

    def close(self) -> None:
        if self._process.stdin:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._log.close()


@dataclass(frozen=True)
class SignedIn:
    """A finished code flow in openid-client: its `authorize` answer (url, state, nonce), the URL
    the browser came back to, and its `callback` answer (tokens, claims)."""

    started: dict[str, Any]
    callback: str
    tokens: dict[str, Any]
    claims: dict[str, Any]


def sign_in_with_openid_client(
    page: Page,
    node_rp: NodeRelyingParty,
    client: str,
    redirect_uri: str | None,
    callback: CallbackServer,
    person: Person,
    *,
    shot: str | None = None,
    **authorize: Any,
) -> SignedIn:
    """openid-client's authorization request for its discovered `client` (with `authorize`:
    scope, extra), the person's login on the hosted pages in the browser (saved as
    `<shot>.png`), and the code redeemed by openid-client."""
    started = node_rp.call("authorize", client=client, redirectUri=redirect_uri, **authorize)
    returned = sign_in_through_hosted_pages(
        page, started["url"], callback, email=person.email, password=person.password, shot=shot
    )
    signed_in = node_rp.call("callback", client=client, url=returned)
    return SignedIn(started, returned, signed_in["tokens"], signed_in["claims"])
