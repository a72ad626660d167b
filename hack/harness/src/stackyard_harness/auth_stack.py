"""The auth capability as the tests meet it: the real api app on a local port, a real worker
process sending the auth emails to an SMTP sink, real Redis and FerretDB, and a config
directory written as the operator would render it (signing keys and encryption key
included).

`configure(auth=...)` applies Stack auth settings (camelCase, as in a Stack's spec.auth)
with a database of its own, so each test starts with no users.

With `run_search=True` the search component (`stackyard-search`, search_process) runs beside
them on the same config, its data under the directory, and the api proxies to it;
`configure(search_indexes={"products": {"source": {"api": {}}}})` declares SearchIndexes."""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import redis
import uvicorn

from .process import ManagedProcess, free_port
from .search_process import SearchProcess
from .smtp import Received, SmtpSink

ADMIN_API_KEY = "admin-key-for-tests-0123456789"
SENDER = "Acme <auth@acme.dev>"
APP_URL = "https://app.acme.dev"
_TOKEN = re.compile(r"[?&]token=([A-Za-z0-9_\-]+)")


def signing_keys(alg: str = "EdDSA") -> str:
    """A key set with one key active now, as the operator first makes it; EdDSA unless `alg`
    says otherwise, since it is made in microseconds (the operator makes the Stack's
    algorithm, RS256 by default, and tests of RS256 ask for it)."""
    from stackyard.auth.keys import KeySet, generate_key

    now = datetime.now(UTC)
    return KeySet((generate_key(alg, now),)).to_json()  # type: ignore[arg-type]


class AuthStack:
    def __init__(
        self,
        directory: Path,
        redis_url: str,
        mongo_url: str,
        smtp: SmtpSink,
        run_worker: bool = True,
        run_search: bool = False,
    ):
        self.directory = directory
        self.redis_url, self.mongo_url = redis_url, mongo_url
        self.smtp = smtp
        self.run_worker = run_worker
        self.run_search = run_search
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.generation = 0
        self.database = ""
        self.credentials: dict[str, str] = {
            "stack.redis.url": redis_url,
            "stack.mongodb.uri": mongo_url,
            "stack.auth.signingKeys": signing_keys(),
            "stack.auth.encryptionKey": base64.b64encode(os.urandom(32)).decode(),
            "stack.auth.adminApiKey": ADMIN_API_KEY,
        }
        self.worker: ManagedProcess | None = None
        self.worker_url: str | None = None
        self.search: SearchProcess | None = None
        self.search_indexes: set[str] = set()
        self.app: Any = None

    # -- config -----------------------------------------------------------------------

    def configure(
        self,
        auth: dict[str, Any] | None = None,
        *,
        capabilities: dict[str, bool] | None = None,
        identity_providers: dict[str, dict[str, Any]] | None = None,
        email_templates: dict[str, dict[str, Any]] | None = None,
        extra_credentials: dict[str, str] | None = None,
        rate_limit_policies: dict[str, dict[str, Any]] | None = None,
        notification_workflows: dict[str, dict[str, Any]] | None = None,
        webhooks: dict[str, dict[str, Any]] | None = None,
        search_indexes: dict[str, dict[str, Any]] | None = None,
        fresh_database: bool = True,
    ) -> None:
        """A new config (generation) for the api and worker; resources are given by name as
        their spec without stackRef, e.g. `webhooks={"crm": {"url": ..., "events": ["user.*"]}}`."""
        from stackyard.config import RuntimeConfig
        from stackyard.resources.email import EmailProviderSpec, EmailTemplateSpec
        from stackyard.resources.notify import NotificationWorkflowSpec, WebhookSpec
        from stackyard.resources.ratelimit import RateLimitPolicySpec
        from stackyard.resources.stack import StackSpec

        self.generation += 1
        if fresh_database or not self.database:
            self.database = f"auth_{uuid.uuid4().hex[:10]}"
        settings = {"issuer": "https://auth.acme.dev", "appUrl": APP_URL, "emailFrom": SENDER} | (auth or {})
        spec = StackSpec.model_validate(
            {
                "redis": {"urlSecretRef": {"name": "b", "key": "r"}},
                "mongodb": {"uriSecretRef": {"name": "b", "key": "m"}, "database": self.database},
                "auth": settings,
                "capabilities": capabilities or {},
            }
        )
        stack = {"stackRef": {"name": "demo"}}
        relay = {
            "type": "smtp",
            "priority": 10,
            "smtp": {"host": "127.0.0.1", "port": self.smtp.port, "security": "none"},
        }
        fields: dict[str, Any] = {
            "email_providers": {"relay": EmailProviderSpec.model_validate(stack | relay)},
            "email_templates": {
                n: EmailTemplateSpec.model_validate(stack | t) for n, t in (email_templates or {}).items()
            },
            "rate_limit_policies": {
                n: RateLimitPolicySpec.model_validate(stack | p) for n, p in (rate_limit_policies or {}).items()
            },
            "notification_workflows": {
                n: NotificationWorkflowSpec.model_validate(stack | w) for n, w in (notification_workflows or {}).items()
            },
            "webhooks": {n: WebhookSpec.model_validate(stack | w) for n, w in (webhooks or {}).items()},
        }
        self.search_indexes = set(search_indexes or {})
        if search_indexes:
            from stackyard.resources.search import SearchIndexSpec

            fields["search_indexes"] = {n: SearchIndexSpec.model_validate(stack | i) for n, i in search_indexes.items()}
        if identity_providers is not None:
            from stackyard.resources.auth import IdentityProviderSpec

            fields["identity_providers"] = {
                n: IdentityProviderSpec.model_validate(stack | p) for n, p in identity_providers.items()
            }
        config = RuntimeConfig(stack="demo", namespace="ns", generation=self.generation, spec=spec, **fields)
        self.credentials |= extra_credentials or {}
        (self.directory / "credentials.json").write_text(json.dumps(self.credentials))
        (self.directory / "config.json").write_text(config.canonical_json())
        self.wait_applied()

    def set_credentials(self, **changes: str) -> None:
        """Change credentials (e.g. rotate the signing keys) without touching the config."""
        self.credentials |= changes
        (self.directory / "credentials.json").write_text(json.dumps(self.credentials))
        time.sleep(0.3)

    def reset(self) -> None:
        """Forget what the test before left behind: its mails and its Redis keys (lockouts,
        per-IP counts, sessions, links). Without a worker the whole database goes; with one,
        only the auth keys, since the worker's queues live in the same database. (Each
        `configure` already gives a MongoDB database of its own.)"""
        self.smtp.clear()
        with redis.Redis.from_url(self.redis_url) as client:
            if not self.run_worker:
                client.flushdb()
                return
            keys = list(client.scan_iter("sy:auth:*", count=1000))
            if keys:
                client.delete(*keys)

    def wait_applied(self) -> None:
        """Until the api, and the worker when one runs, have taken the config just written (a
        job must not meet the previous test's config in the worker)."""
        worker_up = self.worker is not None and self.worker.running and self.worker_url is not None
        urls = [self.url] + ([self.worker_url] if worker_up and self.worker_url else [])
        if self.search is not None and self.search.running:
            urls.append(self.search.url)
        deadline = time.monotonic() + 20
        for url in urls:
            while not self._has_generation(url):
                assert time.monotonic() < deadline, f"{url} did not take config generation {self.generation}"
                time.sleep(0.02)
        if self.search is not None and self.search.running:
            self.search.wait_indexes(self.search_indexes, self.credentials["stack.auth.adminApiKey"])

    def _has_generation(self, url: str) -> bool:
        try:
            answer = httpx.get(f"{url}/v1/config", timeout=2)
        except httpx.TransportError:
            return False
        return answer.status_code == 200 and answer.json()["generation"] == self.generation

    # -- processes ----------------------------------------------------------------------

    def serve(self) -> Iterator[AuthStack]:
        from stackyard.config import FileConfigSource, LiveConfig
        from stackyard.runtime import Runtime
        from stackyard_api.app import create_app

        live = LiveConfig()
        runtime = Runtime("stackyard-api", FileConfigSource(live, self.directory, interval=0.02), live)
        self.app = create_app(runtime)
        server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            self.configure()
            if self.run_worker:
                self.start_worker()
            if self.run_search:
                self.start_search()
            yield self
        finally:
            if self.search is not None:
                self.search.stop()
                os.environ.pop("STACKYARD_SEARCH_URL", None)
            if self.worker is not None:
                self.worker.stop()
            server.should_exit = True
            thread.join(10)

    def start_worker(self) -> None:
        port = free_port()
        env = {
            **os.environ,
            "STACKYARD_CONFIG_DIR": str(self.directory),
            "STACKYARD_PORT": str(port),
            "STACKYARD_HOST": "127.0.0.1",
            "STACKYARD_STACK": "",
        }
        worker = Path(os.sys.executable).with_name("stackyard-worker")  # type: ignore[attr-defined]
        self.worker = ManagedProcess("auth-worker", [worker], self.directory / "worker.log", env=env).start()
        self.worker.wait_ready(
            lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200, 60, "ready"
        )
        self.worker_url = f"http://127.0.0.1:{port}"

    def start_search(self) -> None:
        """The search component on this config, its data in <directory>/search; the api (in this
        process) proxies the search routes to it."""
        self.search = SearchProcess(self.directory, self.directory / "search", self.directory / "search.log")
        self.search.start()
        self.search.wait_indexes(self.search_indexes, self.credentials["stack.auth.adminApiKey"])
        os.environ["STACKYARD_SEARCH_URL"] = self.search.url

    # -- mail ---------------------------------------------------------------------------

    def mail_to(self, address: str, subject_contains: str = "", timeout: float = 15.0) -> EmailMessage:
        """The newest message to `address` (whose subject contains the text), waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in self.smtp.messages if _is_for(m, address, subject_contains)]
            if found:
                return found[-1].message
            time.sleep(0.05)
        seen = [(m.recipients, m.message["Subject"]) for m in self.smtp.messages]
        raise AssertionError(f"no mail to {address} with {subject_contains!r} in {timeout:.0f}s; got {seen}")

    def token_from_mail(self, address: str, subject_contains: str = "", timeout: float = 15.0) -> str:
        message = self.mail_to(address, subject_contains, timeout)
        body = message.get_body(("plain",))
        text = body.get_content() if body is not None else str(message)
        match = _TOKEN.search(text)
        assert match, f"no link with a token in the mail to {address}: {text[:300]}"
        return match.group(1)

    def mails_to(self, address: str) -> list[EmailMessage]:
        return [m.message for m in self.smtp.messages if _is_for(m, address, "")]


def _is_for(received: Received, address: str, subject_contains: str) -> bool:
    return address.lower() in (r.lower() for r in received.recipients) and subject_contains in str(
        received.message["Subject"] or ""
    )


def flushed_redis_url(base_url: str, database: int) -> str:
    """`base_url` on Redis database `database`, emptied: a test module's own queues and keys."""
    url = base_url.rpartition("/")[0] + f"/{database}"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url
