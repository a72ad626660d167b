"""The Python SDK's and the `stackyard` command's email and suppression calls against the real
api app (served by uvicorn on a local port) with the real Redis and FerretDB: ids and
idempotent replays, typed problems, filters and pages, cancel, preview, the suppression list.
No worker runs: accepted messages stay queued (or scheduled)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from pydantic import ValidationError
from stackyard.client import (
    AsyncStackyard,
    Conflict,
    EmailAccepted,
    NotFound,
    RecipientSuppressed,
    RetryPolicy,
    Stackyard,
    TemplateRef,
    Unprocessable,
)
from stackyard.config import FileConfigSource, LiveConfig, RuntimeConfig
from stackyard.resources.email import EmailProviderSpec, EmailTemplateSpec
from stackyard.resources.stack import StackSpec
from stackyard.runtime import Runtime
from stackyard_api.app import create_app
from stackyard_harness.process import free_port

STACKYARD = Path(sys.executable).with_name("stackyard")
SENDER = "Acme <hello@acme.dev>"
FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05, total=10)
WELCOME = {
    "subject": "Welcome, {{ name }}",
    "html": "<p>Hello {{ name }}</p>",
    "variables": {"name": {}},
    "locales": {"fr": {"subject": "Bienvenue, {{ name }}", "html": "<p>Bonjour {{ name }}</p>"}},
}


class EmailApi:
    """A config directory as the operator renders it and the api app reading it, served on a
    real port. `reset` applies a config with a database of its own, so each test starts empty."""

    def __init__(self, directory: Path, redis_url: str, mongo_url: str) -> None:
        self.directory = directory
        self.generation = 0
        self.credentials = {"stack.redis.url": redis_url, "stack.mongodb.uri": mongo_url}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        self.generation += 1
        stack = {"stackRef": {"name": "demo"}}
        spec = StackSpec.model_validate(
            {
                "redis": {"urlSecretRef": {"name": "b", "key": "r"}},
                "mongodb": {"uriSecretRef": {"name": "b", "key": "m"}, "database": f"sdk_{uuid.uuid4().hex[:8]}"},
            }
        )
        # No worker runs, so the relay is never called: port 9 (discard) would do as well as any.
        relay = {"type": "smtp", "priority": 10, "smtp": {"host": "127.0.0.1", "port": 9, "security": "none"}}
        config = RuntimeConfig(
            stack="demo",
            namespace="ns",
            generation=self.generation,
            spec=spec,
            email_providers={"relay": EmailProviderSpec.model_validate(stack | relay)},
            email_templates={"welcome": EmailTemplateSpec.model_validate(stack | WELCOME)},
        )
        (self.directory / "credentials.json").write_text(json.dumps(self.credentials))
        (self.directory / "config.json").write_text(config.canonical_json())
        self.wait_applied()

    def wait_applied(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                answer = httpx.get(f"{self.url}/v1/config", timeout=2)
                if answer.status_code == 200 and answer.json()["generation"] == self.generation:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the api did not take the config"
            time.sleep(0.02)

    def serve(self) -> Iterator[EmailApi]:
        live = LiveConfig()
        runtime = Runtime("stackyard-api", FileConfigSource(live, self.directory, interval=0.02), live)
        server = uvicorn.Server(
            uvicorn.Config(create_app(runtime), host="127.0.0.1", port=self.port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            self.reset()
            yield self
        finally:
            server.should_exit = True
            thread.join(10)


@pytest.fixture(scope="module")
def running_api(tmp_path_factory, redis_server, mongo_server) -> Iterator[EmailApi]:  # type: ignore[no-untyped-def]
    directory = tmp_path_factory.mktemp("email-config")
    # A Redis database of its own: the email jobs queued here (no worker runs) must not
    # reach other tests' workers.
    redis_url = redis_server.url.rpartition("/")[0] + "/6"
    with redis.Redis.from_url(redis_url) as flushed:
        flushed.flushdb()
    yield from EmailApi(directory, redis_url, mongo_server.url).serve()


@pytest.fixture
def api(running_api: EmailApi) -> EmailApi:
    running_api.reset()
    return running_api


@pytest.fixture
def stackyard(api: EmailApi) -> Iterator[Stackyard]:
    with Stackyard(api.url, retry=FAST) as client:
        yield client


def send(stackyard: Stackyard, **fields: Any) -> EmailAccepted:
    message: dict[str, Any] = {"sender": SENDER, "to": "ana@example.com", "subject": "Hello", "text": "Hi"} | fields
    return stackyard.emails.send(**message)


class LoseFirstAnswer(httpx.BaseTransport):
    """Sends every request to the api, but breaks the connection instead of handing back the
    first answer: the api has accepted the email, the client has not heard of it."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.keys: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.keys.append(request.headers.get("Idempotency-Key", ""))
        response = self.inner.handle_request(request)
        if len(self.keys) == 1:
            response.read()
            raise httpx.ReadError("connection reset by peer", request=request)
        return response


# The SDK.


def test_send_returns_the_id_and_the_same_key_answers_the_first_message(stackyard: Stackyard):
    first = send(stackyard, idempotency_key="order-7", tags={"category": "receipt"})
    assert first.status == "queued" and first.id
    again = send(stackyard, idempotency_key="order-7", tags={"category": "receipt"})
    assert again == first, "the 200 replay answers the first message"
    assert [e.id for e in stackyard.emails.iter()] == [first.id]
    record = stackyard.emails.get(first.id)
    assert record.status == "queued" and record.idempotency_key == "order-7" and record.tags == {"category": "receipt"}
    assert record.sender == SENDER and record.to == ["ana@example.com"] and record.timeline[0].type == "queued"
    with pytest.raises(Conflict, match="409"):
        send(stackyard, idempotency_key="order-7", text="Another body")


def test_a_send_retried_after_a_lost_answer_sends_once_under_its_own_key(api: EmailApi):
    transport = LoseFirstAnswer()
    with Stackyard(api.url, retry=FAST, transport=transport) as client:
        accepted = send(client)
        assert len(transport.keys) == 2 and transport.keys[0] == transport.keys[1]
        assert uuid.UUID(transport.keys[0]).version == 4, "a key of its own when the caller gives none"
        assert [e.id for e in client.emails.iter()] == [accepted.id]
        assert client.emails.get(accepted.id).idempotency_key == transport.keys[0]


def test_a_suppressed_recipient_raises_recipient_suppressed_with_the_problem_fields(stackyard: Stackyard):
    stackyard.suppressions.add("Ana@Example.com", "complaint", "marked as spam")
    with pytest.raises(RecipientSuppressed) as refused:
        send(stackyard, to=["ana@example.com", "bo@example.com"])
    problem = refused.value
    assert isinstance(problem, Unprocessable) and problem.status == 422
    assert problem.type.endswith("/recipient-suppressed") and problem.title == "Recipient on the suppression list"
    assert "ana@example.com" in problem.detail
    assert problem.suppressed == [{"address": "ana@example.com", "reason": "complaint"}]
    assert problem.email_id is not None and stackyard.emails.get(problem.email_id).status == "suppressed"


def test_a_request_the_contract_refuses_is_not_sent(stackyard: Stackyard):
    with pytest.raises(ValidationError, match="subject is required"):
        stackyard.emails.send(sender=SENDER, to="ana@example.com", text="Hi")
    with pytest.raises(ValidationError, match="not both"):
        stackyard.emails.send(sender=SENDER, to="ana@example.com", subject="Hi", template="welcome")
    with pytest.raises(ValidationError):
        stackyard.emails.list(status="lost")  # type: ignore[arg-type]
    assert stackyard.emails.list().items == []


def test_an_invalid_address_is_a_422_with_the_problem_detail(stackyard: Stackyard):
    with pytest.raises(Unprocessable) as refused:
        send(stackyard, to="not-an-address")
    assert refused.value.status == 422 and not isinstance(refused.value, RecipientSuppressed)
    assert refused.value.detail


def test_list_applies_the_filters_and_iter_reads_every_page(stackyard: Stackyard):
    later = datetime.now(UTC) + timedelta(hours=1)
    receipts = [send(stackyard, to=f"u{i}@example.com", tags={"category": "receipt"}) for i in range(5)]
    welcome = send(stackyard, subject=None, text=None, template="welcome", variables={"name": "Bo"}, locale="fr")
    scheduled = send(stackyard, to="u0@example.com", send_at=later, tags={"category": "digest"})
    assert scheduled.status == "scheduled" and scheduled.send_at == later

    page = stackyard.emails.list(tags={"category": "receipt"}, limit=2)
    assert [e.id for e in page.items] == [r.id for r in reversed(receipts)][:2] and page.next_cursor
    rest = stackyard.emails.list(tags={"category": "receipt"}, limit=2, cursor=page.next_cursor)
    assert [e.id for e in rest.items] == [receipts[2].id, receipts[1].id]
    every = [e.id for e in stackyard.emails.iter(tags={"category": "receipt"}, page_size=2)]
    assert every == [r.id for r in reversed(receipts)], "newest first, across three pages"

    assert [e.id for e in stackyard.emails.list(status="scheduled").items] == [scheduled.id]
    queued = {e.id for e in stackyard.emails.iter(status=["queued", "sent"])}
    assert queued == {r.id for r in receipts} | {welcome.id}
    assert {e.id for e in stackyard.emails.iter(to="U0@example.com")} == {receipts[0].id, scheduled.id}
    (rendered,) = stackyard.emails.list(template="welcome").items
    assert rendered.subject == "Bienvenue, Bo" and rendered.template == "welcome"
    assert stackyard.emails.list(sender="hello@acme.dev", limit=100).items[0].id == scheduled.id
    assert stackyard.emails.list(until=datetime.now(UTC) - timedelta(minutes=1)).items == []
    assert len(stackyard.emails.list(since=datetime.now(UTC) - timedelta(minutes=1)).items) == 7


def test_cancel_a_scheduled_email_and_not_one_already_cancelled(stackyard: Stackyard):
    accepted = send(stackyard, send_at=datetime.now(UTC) + timedelta(hours=2))
    cancelled = stackyard.emails.cancel(accepted.id)
    assert cancelled.id == accepted.id and cancelled.status == "cancelled"
    assert [event.type for event in cancelled.timeline][-1] == "cancelled"
    with pytest.raises(Conflict):
        stackyard.emails.cancel(accepted.id)
    with pytest.raises(NotFound):
        stackyard.emails.cancel("no-such-email")
    with pytest.raises(NotFound):
        stackyard.emails.get("no-such-email")


def test_preview_renders_the_template_in_the_locale_asked(stackyard: Stackyard):
    preview = stackyard.emails.preview("welcome", {"name": "Ana"})
    assert (preview.template, preview.locale, preview.subject) == ("welcome", "en", "Welcome, Ana")
    assert preview.html is not None and "Hello Ana" in preview.html
    assert preview.text is not None and "Hello Ana" in preview.text
    assert stackyard.emails.preview("welcome", {"name": "Zoé"}, "fr-CA").subject == "Bienvenue, Zoé"
    with pytest.raises(NotFound, match="farewell"):
        stackyard.emails.preview("farewell")
    assert stackyard.emails.list().items == [], "a preview sends nothing"


def test_a_template_ref_and_attachments_from_files(stackyard: Stackyard, tmp_path: Path):
    invoice = tmp_path / "invoice.pdf"
    invoice.write_bytes(b"%PDF-1.4 not really")
    ref = TemplateRef(name="welcome", variables={"name": "Ana"})
    accepted = stackyard.emails.send(sender=SENDER, to="ana@example.com", template=ref, attachments=[invoice])
    record = stackyard.emails.get(accepted.id)
    assert record.subject == "Welcome, Ana" and record.template == "welcome"
    assert [(a.filename, a.content_type, a.size) for a in record.attachments] == [
        ("invoice.pdf", "application/pdf", len(b"%PDF-1.4 not really"))
    ]


def test_suppressions_add_list_iter_and_remove(stackyard: Stackyard):
    added = stackyard.suppressions.add("Zed@Example.com")
    assert (added.address, added.reason) == ("zed@example.com", "manual")
    again = stackyard.suppressions.add("zed@example.com", "unsubscribe", "asked by mail")
    assert (again.reason, again.detail) == ("unsubscribe", "asked by mail")
    for address in ("amy@example.com", "bob@example.com", "cat@example.com"):
        stackyard.suppressions.add(address, "bounce")
    page = stackyard.suppressions.list(limit=2)
    assert [s.address for s in page.items] == ["amy@example.com", "bob@example.com"] and page.next_cursor
    everyone = [s.address for s in stackyard.suppressions.iter(page_size=2)]
    assert everyone == ["amy@example.com", "bob@example.com", "cat@example.com", "zed@example.com"]
    assert [s.address for s in stackyard.suppressions.iter(reason="unsubscribe")] == ["zed@example.com"]
    assert stackyard.suppressions.remove("zed@example.com") is None
    with pytest.raises(NotFound, match=r"zed@example\.com"):
        stackyard.suppressions.remove("zed@example.com")
    assert [s.address for s in stackyard.suppressions.list(reason="unsubscribe").items] == []
    with pytest.raises(Unprocessable):
        stackyard.suppressions.add("not an address")


async def test_the_async_client_sends_lists_and_keeps_the_suppression_list(api: EmailApi):
    async with AsyncStackyard(api.url, retry=FAST) as stackyard:
        first = await stackyard.emails.send(sender=SENDER, to="ana@example.com", subject="A", text="a")
        replay = await stackyard.emails.send(
            sender=SENDER, to="ana@example.com", subject="B", text="b", idempotency_key="k-1"
        )
        assert replay == await stackyard.emails.send(
            sender=SENDER, to="ana@example.com", subject="B", text="b", idempotency_key="k-1"
        )
        assert [e.id async for e in stackyard.emails.iter(page_size=1)] == [replay.id, first.id]
        assert (await stackyard.emails.get(first.id)).subject == "A"
        scheduled = await stackyard.emails.send(
            sender=SENDER, to="bo@example.com", subject="C", text="c", send_at=datetime.now(UTC) + timedelta(hours=1)
        )
        assert (await stackyard.emails.cancel(scheduled.id)).status == "cancelled"
        assert (await stackyard.emails.preview("welcome", {"name": "Ana"})).subject == "Welcome, Ana"
        await stackyard.suppressions.add("bo@example.com", "bounce")
        assert [s.address async for s in stackyard.suppressions.iter()] == ["bo@example.com"]
        with pytest.raises(RecipientSuppressed):
            await stackyard.emails.send(sender=SENDER, to="bo@example.com", subject="D", text="d")
        await stackyard.suppressions.remove("bo@example.com")
        assert (await stackyard.suppressions.list()).items == []


# The CLI, run as a process like a person would.

MESSAGE = ["--from", SENDER, "--subject", "s", "--text", "t"]


def run(url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACKYARD_")} | {"STACKYARD_API_URL": url}
    return subprocess.run(
        [str(STACKYARD), *args], input=stdin or "", capture_output=True, text=True, env=env, timeout=60
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_cli_send_with_html_from_stdin_tags_and_an_attachment_then_get_shows_the_timeline(
    api: EmailApi, tmp_path: Path
):
    if not STACKYARD.exists():
        pytest.fail(f"no {STACKYARD.name} console script next to {sys.executable}: install core (make install)")
    notes = tmp_path / "notes.txt"
    notes.write_text("remember the milk")
    args = ["--from", SENDER, "--to", "ana@example.com", "--to", "bo@example.com", "--subject", "Receipt"]
    args += ["--html-file", "-", "--tag", "category=receipt", "--attach", str(notes), "--idempotency-key", "cli-1"]
    accepted = json.loads(ok(run(api.url, "-o", "json", "emails", "send", *args, stdin="<p>Thanks</p>")))
    assert accepted["status"] == "queued"
    again = json.loads(ok(run(api.url, "-o", "json", "emails", "send", *args, stdin="<p>Thanks</p>")))
    assert again["id"] == accepted["id"]

    out = ok(run(api.url, "emails", "get", accepted["id"]))
    assert re.search(r"^STATUS\s+queued$", out, re.M) and re.search(r"^TAGS\s+category=receipt$", out, re.M)
    assert re.search(r"^TO\s+ana@example.com, bo@example.com$", out, re.M)
    assert re.search(r"^ATTACHMENTS\s+notes.txt \(text/plain, 17 B\)$", out, re.M)
    assert "TIMELINE:" in out and re.search(r"^AT\s+EVENT\s+PROVIDER", out, re.M)
    assert re.search(r"^\S+\s+queued\s+-", out, re.M), out
    record = yaml_or_json(run(api.url, "-o", "yaml", "emails", "get", accepted["id"]))
    assert record["html"] == "<p>Thanks</p>" and record["idempotencyKey"] == "cli-1"


def yaml_or_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    import yaml

    loaded: dict[str, Any] = yaml.safe_load(ok(result))
    return loaded


def test_cli_send_a_template_and_list_with_filters_one_page_or_all(api: EmailApi):
    for i in range(3):
        ok(
            run(
                api.url,
                "emails",
                "send",
                "--from",
                SENDER,
                "--to",
                f"u{i}@example.com",
                "--subject",
                "s",
                "--text",
                "t",
            )
        )
    args = ["--from", SENDER, "--to", "ana@example.com", "--template", "welcome", "--var", "name=Zoé"]
    ok(run(api.url, "emails", "send", *args, "--locale", "fr", "--tag", "kind:welcome"))

    first = json.loads(ok(run(api.url, "-o", "json", "emails", "list", "--limit", "2")))
    assert len(first["items"]) == 2 and first["nextCursor"]
    every = json.loads(ok(run(api.url, "-o", "json", "emails", "list", "--limit", "2", "--all")))
    assert len(every["items"]) == 4 and every["nextCursor"] is None
    table = run(api.url, "emails", "list", "--limit", "1", "--tag", "kind=welcome", "--status", "queued")
    assert re.search(r"^ID\s+STATUS\s+CREATED\s+TO\s+SUBJECT", table.stdout, re.M)
    assert "Bienvenue, Zoé" in ok(table) and "u0@example.com" not in table.stdout
    assert table.stderr == "", "one page holds the only match: no next cursor"
    by_to = json.loads(ok(run(api.url, "-o", "json", "emails", "list", "--to", "u1@example.com")))
    assert [e["to"] for e in by_to["items"]] == [["u1@example.com"]]
    none = json.loads(ok(run(api.url, "-o", "json", "emails", "list", "--status", "sent", "--template", "welcome")))
    assert none["items"] == []


def test_cli_cancel_a_scheduled_email_and_an_error_is_one_line_exit_1(api: EmailApi):
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    args = ["--from", SENDER, "--to", "ana@example.com", "--subject", "s", "--text", "t", "--send-at", later]
    accepted = json.loads(ok(run(api.url, "-o", "json", "emails", "send", *args)))
    assert accepted["status"] == "scheduled" and accepted["sendAt"]
    out = ok(run(api.url, "emails", "cancel", accepted["id"]))
    assert re.search(r"^STATUS\s+cancelled$", out, re.M)
    again = run(api.url, "emails", "cancel", accepted["id"])
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr.startswith("error: ") and again.stderr.count("\n") == 1 and "(HTTP 409)" in again.stderr


def test_cli_preview_prints_the_subject_and_the_text(api: EmailApi):
    out = ok(run(api.url, "emails", "preview", "welcome", "--var", "name=Ana"))
    assert re.search(r"^SUBJECT\s+Welcome, Ana$", out, re.M) and re.search(r"^LOCALE\s+en$", out, re.M)
    assert "Hello Ana" in out
    html = ok(run(api.url, "emails", "preview", "welcome", "--var", "name=Ana", "--show", "html", "--locale", "fr"))
    assert "<p>Bonjour Ana</p>" in html
    body = json.loads(ok(run(api.url, "-o", "json", "emails", "preview", "welcome", "--var", "name=Ana")))
    assert body["subject"] == "Welcome, Ana" and set(body) == {"template", "locale", "subject", "html", "text"}
    missing = run(api.url, "emails", "preview", "farewell")
    assert missing.returncode == 1 and "(HTTP 404)" in missing.stderr


def test_cli_suppressions_add_list_remove_and_a_suppressed_send_exits_1(api: EmailApi):
    added = ok(run(api.url, "suppressions", "add", "Ana@Example.com", "--reason", "complaint", "--detail", "spam"))
    assert re.search(r"^ana@example.com\s+complaint\s+\S+\s+-\s+spam$", added, re.M)
    ok(run(api.url, "suppressions", "add", "bo@example.com"))
    listed = json.loads(ok(run(api.url, "-o", "json", "suppressions", "list", "--limit", "1", "--all")))
    assert [(s["address"], s["reason"]) for s in listed["items"]] == [
        ("ana@example.com", "complaint"),
        ("bo@example.com", "manual"),
    ]
    page = run(api.url, "suppressions", "list", "--limit", "1")
    assert "ana@example.com" in ok(page) and page.stderr.startswith("more: --cursor ")
    only = json.loads(ok(run(api.url, "-o", "json", "suppressions", "list", "--reason", "manual")))
    assert [s["address"] for s in only["items"]] == ["bo@example.com"]

    refused = run(
        api.url, "emails", "send", "--from", SENDER, "--to", "ana@example.com", "--subject", "s", "--text", "t"
    )
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert refused.stderr.startswith("error: Recipient on the suppression list: ") and "(HTTP 422)" in refused.stderr

    assert ok(run(api.url, "suppressions", "remove", "ana@example.com")) == (
        "removed ana@example.com from the suppression list\n"
    )
    gone = run(api.url, "suppressions", "remove", "ana@example.com")
    assert gone.returncode == 1 and "(HTTP 404)" in gone.stderr
    ok(run(api.url, "emails", "send", *MESSAGE, "--to", "ana@example.com"))


@pytest.mark.parametrize(
    "args",
    [
        ["emails", "send", "--from", SENDER, "--to", "a@example.com", "--subject", "s", "--text", "t", "--var", "a=1"],
        ["emails", "send", "--from", SENDER, "--to", "a@example.com", "--template", "welcome", "--var", "novalue"],
        ["emails", "send", "--from", SENDER, "--to", "a@example.com", "--text", "no subject"],
        ["emails", "send", "--from", SENDER, "--to", "a@example.com", "--subject", "s", "--attach", "/no/such/file"],
        ["emails", "list", "--status", "lost"],
        ["emails", "list", "--tag", "novalue"],
        ["suppressions", "add", "a@example.com", "--reason", "whim"],
    ],
)
def test_cli_usage_errors_exit_2_without_sending(api: EmailApi, args: list[str]):
    result = run(api.url, *args)
    assert result.returncode == 2, result.stderr
    assert httpx.get(f"{api.url}/v1/emails").json()["items"] == []
