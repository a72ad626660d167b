"""The console's security from the outside, against the make-up stack: a stranger gets the
login page and never data; every action refuses a POST without the session's CSRF token or
from another site, and changes nothing; no page shows a secret of the Stack; the login form and
the nav work with the keyboard alone; and a screenshot of every page the nav reaches.

The routes are the app's own (create_app(...).routes under /console), so a page or an action
added later is covered without touching this file. Path parameters are filled with real
objects where the name says which (a user, a job, a queue, an email), else with a dummy id."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from playwright.sync_api import BrowserContext, Page, Route, expect
from stackyard.client import Stackyard
from stackyard.config import FileConfigSource, LiveConfig
from stackyard.runtime import Runtime
from stackyard_api.app import create_app
from stackyard_harness.local_stack import LocalStack

from . import screenshot

LOGIN = "/console/login"
REFUSED = "Nothing was changed"
DUMMY_ID = "x1"
PASSWORD = "a long and quiet river"


# -- the console's routes, from the app itself ---------------------------------------------


def api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """The app's routes, those of included routers too (FastAPI keeps those as wrappers)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (inner := getattr(route, "original_router", None)) is not None:
            yield from api_routes(inner.routes)


def _console_routes() -> dict[str, dict[str, list[str]]]:
    """{"GET": {path template: form fields}, "POST": {...}} of /console, the login's own routes
    left out. The app is built and never started: no server is needed to read its routes."""
    with tempfile.TemporaryDirectory() as config_dir:
        live = LiveConfig()
        app = create_app(Runtime("stackyard-api", FileConfigSource(live, Path(config_dir)), live))
        found: dict[str, dict[str, list[str]]] = {"GET": {}, "POST": {}}
        for route in api_routes(app.routes):
            if (route.path == "/console" or route.path.startswith("/console/")) and route.path != LOGIN:
                for method in route.methods & found.keys():
                    found[method][route.path] = sorted(field.alias for field in route.dependant.body_params)
    return {method: dict(sorted(paths.items())) for method, paths in found.items()}


CONSOLE_ROUTES = _console_routes()


def test_the_routes_are_read_from_the_app():
    assert "/console" in CONSOLE_ROUTES["GET"]
    assert "/console/logout" in CONSOLE_ROUTES["POST"]


# -- real objects for the path parameters ----------------------------------------------------


@dataclass
class Objects:
    user_id: str
    user_email: str
    job_id: str
    queue: str
    email_id: str
    victim: str
    """An address no one has suppressed: a refused "suppress" must leave it so."""
    suppressed: str
    """An address on the suppression list: a refused "remove" must leave it there."""
    run_id: str
    """A run of the notification workflow `welcome`, waiting in its 10-minute digest."""
    webhook: str
    delivery_id: str
    """A webhook.test delivery to `webhook`."""

    def fill(self, template: str) -> str:
        """`template` with each {param} replaced by the real object its name points at."""

        def value(match: re.Match[str]) -> str:
            name = match.group(1).split(":")[0].lower()
            if "user" in name:
                return self.user_id
            if "job" in name or (name == "id" and "/jobs" in template):
                return self.job_id
            if "queue" in name or (name == "name" and "/jobs" in template):
                return self.queue
            if "email" in name or "message" in name:
                return self.email_id
            if "run" in name:
                return self.run_id
            if "delivery" in name:
                return self.delivery_id
            if "webhook" in name or (name == "name" and "/webhooks" in template):
                return self.webhook
            return DUMMY_ID

        return re.sub(r"\{([^}]+)\}", value, template)

    def form(self, template: str, fields: Iterable[str]) -> dict[str, str]:
        """A plausible value for each form field of an action, so that a check that let the
        request through would act on real objects."""
        values = {}
        for field in fields:
            name = field.lower()
            if ("address" in name or "email" in name) and "/users" in template:
                values[field] = self.user_email  # e.g. a deletion confirmed by typing the address
            elif "address" in name or "email" in name:
                values[field] = self.suppressed if template.endswith("/remove") else self.victim
            elif "user" in name:
                values[field] = self.user_id
            elif name in ("id", "job", "job_id"):
                values[field] = self.job_id
            elif name == "payload":
                values[field] = '{"userId": "console-security"}'
            elif name == "reason":
                values[field] = "manual"
            else:
                values[field] = "console-security"
        return values

    def marks(self) -> list[str]:
        """What a page about these objects would show: none of it may reach a stranger."""
        return [self.user_id, self.user_email, self.job_id, self.email_id, self.run_id, self.delivery_id]


@pytest.fixture(scope="module")
def sdk(api_url: str, admin_key: str) -> Iterator[Stackyard]:
    with Stackyard(api_url, admin_key=admin_key) as client:
        yield client


@pytest.fixture(scope="module")
def objects(sdk: Stackyard) -> Objects:
    """A user with a live session, a dead job in the default queue and a sent email."""
    tag = uuid.uuid4().hex[:10]
    email = f"console-security-{tag}@example.com"
    user = sdk.auth.admin.users.create(email, password=PASSWORD, email_verified=True)
    sdk.auth.login(email, PASSWORD)
    job = sdk.jobs.enqueue("reports.send", payload={}, idempotency_key=f"console-security-{tag}")
    deadline = time.monotonic() + 60
    while sdk.jobs.get(job.id).state != "dead":
        assert time.monotonic() < deadline, f"job {job.id} did not go dead (reports.send without a userId)"
        time.sleep(0.2)
    sent = sdk.emails.send(
        sender="Demo <hello@demo.example.com>", to=email, subject="console security", text="A message to look at."
    )
    suppressed = f"console-security-kept-{tag}@example.com"
    sdk.suppressions.add(suppressed, detail="kept by the console security tests")
    trigger = sdk.notify.trigger("welcome", {"id": f"console-security-{tag}", "email": email, "name": "Sec"})
    deadline = time.monotonic() + 60
    while not (runs := sdk.notify.runs(trigger=trigger.id).items) or runs[0].status in ("queued", "running"):
        assert time.monotonic() < deadline, f"trigger {trigger.id} made no run"
        time.sleep(0.2)
    delivery = sdk.webhooks.test("crm")
    return Objects(
        user.id,
        email,
        job.id,
        "default",
        sent.id,
        victim=f"console-security-victim-{tag}@example.com",
        suppressed=suppressed,
        run_id=runs[0].id,
        webhook="crm",
        delivery_id=delivery.id,
    )


@dataclass
class Snapshot:
    """What the refused actions could have changed."""

    user_disabled: bool | None
    user_sessions: int
    job_state: str
    dead_in_queue: int
    email_status: str
    victim_suppressed: bool
    kept_suppressed: bool
    run_status: str
    replays_of_delivery: int
    test_deliveries: int
    webhook_enabled: bool

    @classmethod
    def take(cls, sdk: Stackyard, objects: Objects) -> Snapshot:
        user = sdk.auth.admin.users.get(objects.user_id)
        suppressed = {entry.address for entry in sdk.suppressions.iter()}
        deliveries = list(sdk.webhooks.iter_deliveries(objects.webhook))
        return cls(
            user_disabled=user.disabled,
            user_sessions=len(user.sessions),
            job_state=sdk.jobs.get(objects.job_id).state,
            dead_in_queue=sdk.queues.get(objects.queue).counts.dead,
            email_status=sdk.emails.get(objects.email_id).status,
            victim_suppressed=objects.victim in suppressed,
            kept_suppressed=objects.suppressed in suppressed,
            run_status=sdk.notify.run(objects.run_id).status,
            replays_of_delivery=sum(d.replay_of == objects.delivery_id for d in deliveries),
            test_deliveries=sum(d.event_type == "webhook.test" for d in deliveries),
            webhook_enabled=next(w.enabled for w in sdk.webhooks.list() if w.name == objects.webhook),
        )


# -- 1. a stranger gets the login page, never data -------------------------------------------


@pytest.fixture
def stranger(api_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_url, follow_redirects=False, timeout=10) as client:
        yield client


def test_every_console_page_sends_a_stranger_to_the_login_page(stranger: httpx.Client, objects: Objects):
    for template in CONSOLE_ROUTES["GET"]:
        for path in {objects.fill(template), template.replace("{", "").replace("}", "")}:
            for live in ({}, {"X-Console-Live": "1"}):
                answer = stranger.get(path, headers=live)
                assert answer.status_code == 303, (path, live, answer.status_code, answer.text[:200])
                assert answer.headers["location"].startswith(f"{LOGIN}?next="), path
                assert answer.text == "", f"{path} answered data to a stranger"


def test_every_console_page_shows_a_strangers_browser_the_login_form(anonymous_page: Page, objects: Objects):
    for template in CONSOLE_ROUTES["GET"]:
        path = objects.fill(template)
        anonymous_page.goto(path)
        assert anonymous_page.url.split("?")[0].endswith(LOGIN), f"{path} did not lead to the login page"
        expect(anonymous_page.get_by_label("Admin API key")).to_be_visible()
        expect(anonymous_page.get_by_role("navigation", name="Console")).to_have_count(0)
        # the login form carries the path asked for (`next`): the stranger's own words, not data
        html = re.sub(r'name="next" value="[^"]*"', "", anonymous_page.content())
        for mark in objects.marks():
            assert mark not in html, f"{path} showed {mark} to a stranger"


def test_a_strangers_action_does_nothing(stranger: httpx.Client, sdk: Stackyard, objects: Objects):
    before = Snapshot.take(sdk, objects)
    for template, fields in CONSOLE_ROUTES["POST"].items():
        answer = stranger.post(objects.fill(template), data=objects.form(template, fields) | {"csrf_token": "x"})
        assert answer.status_code == 303, (template, answer.status_code)
        assert answer.headers["location"].startswith(f"{LOGIN}?next="), template
    assert Snapshot.take(sdk, objects) == before


# -- 2. CSRF on every action ----------------------------------------------------------------


@contextmanager
def logged_in_client(api_url: str, admin_key: str) -> Iterator[httpx.Client]:
    """A console session over plain HTTP (its cookie), no redirects followed."""
    with httpx.Client(base_url=api_url, follow_redirects=False, timeout=10) as client:
        answer = client.post(LOGIN, data={"api_key": admin_key, "next": "/console"})
        assert answer.status_code == 303 and answer.headers["location"] == "/console", answer.text[:300]
        yield client


def csrf_token(client: httpx.Client) -> str:
    page = client.get("/console")
    assert page.status_code == 200, page.status_code
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, "the console page has no CSRF field"
    return match.group(1)


@pytest.fixture
def admin(api_url: str, admin_key: str) -> Iterator[httpx.Client]:
    with logged_in_client(api_url, admin_key) as client:
        yield client


def assert_refused(answer: httpx.Response, what: str) -> None:
    assert answer.status_code == 403, (what, answer.status_code, answer.text[:300])
    assert REFUSED in answer.text, what
    assert answer.headers["content-type"].startswith("text/html"), what


def test_every_action_refuses_a_missing_or_wrong_csrf_token(
    admin: httpx.Client, api_url: str, admin_key: str, sdk: Stackyard, objects: Objects
):
    token = csrf_token(admin)
    with logged_in_client(api_url, admin_key) as other:
        others_token = csrf_token(other)
    same_site = {"Origin": api_url}
    before = Snapshot.take(sdk, objects)
    for template, fields in CONSOLE_ROUTES["POST"].items():
        path, form = objects.fill(template), objects.form(template, fields)
        wrong = (
            {},
            {"csrf_token": ""},
            {"csrf_token": "wrong"},
            {"csrf_token": token + "x"},
            {"csrf_token": token[:-1]},
        )
        for token_sent in wrong:
            answer = admin.post(path, data=form | token_sent, headers=same_site)
            assert_refused(answer, f"POST {path} {token_sent}")
        # a token of another console session is not this one's
        answer = admin.post(path, data=form | {"csrf_token": others_token}, headers=same_site)
        assert_refused(answer, f"POST {path} with another session's token")
    assert Snapshot.take(sdk, objects) == before
    assert admin.get("/console").status_code == 200, "a refused logout ended the session"


@pytest.mark.parametrize("header", ["Origin", "Referer"])
def test_every_action_refuses_another_origin(
    admin: httpx.Client, header: str, sdk: Stackyard, objects: Objects, api_url: str
):
    token = csrf_token(admin)
    before = Snapshot.take(sdk, objects)
    port = api_url.rsplit(":", 1)[1]
    others = ["https://evil.example", f"http://localhost.evil.example:{port}", "null", f"http://127.0.0.2:{port}"]
    for template, fields in CONSOLE_ROUTES["POST"].items():
        path, form = objects.fill(template), objects.form(template, fields) | {"csrf_token": token}
        for origin in others:
            sent = origin if header == "Origin" else f"{origin}/console"
            if header == "Referer" and origin == "null":
                continue
            answer = admin.post(path, data=form, headers={header: sent})
            assert_refused(answer, f"POST {path} {header}: {sent}")
    assert Snapshot.take(sdk, objects) == before
    assert admin.get("/console").status_code == 200


def test_a_form_on_another_site_cannot_act_in_a_logged_in_browser(
    console: Page, browser_context: BrowserContext, sdk: Stackyard, objects: Objects
):
    """A page of another site posts the console's own form (token and all) in the admin's
    browser: the SameSite=Strict cookie stays home, so the console sees a stranger."""
    token = console.locator('input[name="csrf_token"]').first.input_value()
    console_origin = console.url.split("/console")[0]
    before = Snapshot.take(sdk, objects)
    for template, fields in CONSOLE_ROUTES["POST"].items():
        action = console_origin + objects.fill(template)
        form = objects.form(template, fields) | {"csrf_token": token}
        inputs = "".join(f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in form.items())
        evil = f'<form method="post" action="{action}">{inputs}<button type="submit">Win a prize</button></form>'

        attacker = browser_context.new_page()
        attacker.route("http://evil.example/", partial(serve, evil))
        attacker.goto("http://evil.example/")
        attacker.get_by_role("button", name="Win a prize").click()
        attacker.wait_for_url(re.compile(r"/console/login"))
        attacker.close()
    assert Snapshot.take(sdk, objects) == before
    console.reload()
    expect(console.get_by_role("navigation", name="Console")).to_be_visible()


def serve(body: str, route: Route) -> None:
    route.fulfill(body=body, content_type="text/html")


# -- 3. no secret on any page ---------------------------------------------------------------


@pytest.fixture(scope="module")
def stack_secrets(make_up: LocalStack) -> dict[str, str]:
    """Every value of every Secret of the Stack's namespace, read with kubectl as a user would
    (the admin and search keys, the rendered credentials, backends, signing keys, tokens):
    {"secret/key": value}; a multi-line value (a PEM key) gives each long line."""
    env = os.environ | make_up.client_env()  # HOME too: kubectl keeps its cache there
    listed = subprocess.run(
        ["kubectl", "get", "secrets", "-n", "default", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, str] = {}
    for item in json.loads(listed.stdout)["items"]:
        for key, encoded in (item.get("data") or {}).items():
            value = base64.b64decode(encoded).decode("utf-8", "replace")
            for n, line in enumerate(value.splitlines() or [value]):
                line = line.strip()
                if len(line) >= 12 and not line.startswith("-----"):
                    found[f"{item['metadata']['name']}/{key}#{n}"] = line
    assert env["STACKYARD_ADMIN_KEY"] in found.values() and env["STACKYARD_SEARCH_KEY"] in found.values()
    return found


def logged_in_pages(console: Page, objects: Objects) -> list[str]:
    """Every console GET page, with real objects in its path, and the nav's own links."""
    nav = console.get_by_role("navigation", name="Console").get_by_role("link")
    hrefs = [nav.nth(i).get_attribute("href") or "" for i in range(nav.count())]
    return sorted({objects.fill(t) for t in CONSOLE_ROUTES["GET"]} | set(hrefs) | {LOGIN})


def test_no_logged_in_page_shows_a_secret(
    console: Page, admin_key: str, admin: httpx.Client, objects: Objects, stack_secrets: dict[str, str]
):
    for path in logged_in_pages(console, objects):
        plain = admin.get(path)
        shown = {"http": plain.text, "live": admin.get(path, headers={"X-Console-Live": "1"}).text}
        if plain.headers.get("content-type", "").startswith("text/html"):  # not a download
            console.goto(path)
            assert admin_key not in console.url
            shown |= {"browser": console.content()}
            shown |= {f"frame {frame.url}": frame.content() for frame in console.frames[1:]}
        for how, page in shown.items():
            for name, value in stack_secrets.items():
                assert value not in page, f"{path} ({how}) shows the value of Secret {name}"
            assert not re.search(r"(redis|rediss|mongodb(\+srv)?)://[^/\s\"'<]*:[^@/\s\"'<]*@", page), (
                f"{path} ({how}) shows a connection URL with a password"
            )


def test_a_tampered_form_in_the_browser_gets_the_refusal_page(console: Page):
    console.locator('form.logout input[name="csrf_token"]').evaluate("field => { field.value = 'tampered' }")
    with console.expect_navigation() as navigation:
        console.get_by_role("button", name="Log out").click()
    assert navigation.value is not None and navigation.value.status == 403
    expect(console.get_by_text(REFUSED)).to_be_visible()
    screenshot(console, "error-403-csrf")
    console.goto("/console")
    expect(console.get_by_role("navigation", name="Console")).to_be_visible()


# -- 4. the keyboard alone ------------------------------------------------------------------

FOCUSED = """() => {
  const e = document.activeElement;
  return e ? {tag: e.tagName, id: e.id, text: (e.textContent || "").trim(), href: e.getAttribute("href"),
              outline: getComputedStyle(e).outlineStyle} : null;
}"""


def focused(page: Page) -> dict[str, Any]:
    return page.evaluate(FOCUSED) or {}


def tab_to(page: Page, wanted: Any, what: str, limit: int = 40) -> dict[str, Any]:
    """Press Tab until the focused element satisfies `wanted` (checked before the first Tab)."""
    for _ in range(limit):
        current = focused(page)
        if wanted(current):
            return current
        page.keyboard.press("Tab")
    raise AssertionError(f"{limit} Tabs never reached {what} (last: {focused(page)})")


def test_the_login_form_works_with_the_keyboard_alone(anonymous_page: Page, admin_key: str):
    page = anonymous_page
    page.goto(LOGIN)
    screenshot(page, "login")
    tab_to(page, lambda e: e.get("id") == "api_key", "the admin key field")
    page.keyboard.type(admin_key)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/console$"))
    expect(page.get_by_role("navigation", name="Console")).to_be_visible()


def test_the_skip_link_and_the_nav_work_with_the_keyboard_alone(console: Page):
    console.goto("/console")
    console.keyboard.press("Tab")
    first = focused(console)
    assert first.get("text") == "Skip to content", f"the first Tab stop is {first}"
    assert first.get("outline") != "none", "the focused skip link has no visible focus"
    console.keyboard.press("Enter")
    assert focused(console).get("id") == "main", "the skip link did not move focus to the content"
    nav = console.get_by_role("navigation", name="Console").get_by_role("link")
    links = [(nav.nth(i).get_attribute("href") or "", nav.nth(i).inner_text()) for i in range(nav.count())]
    assert len(links) >= 5, links
    for href, label in links:
        console.goto("/console")
        reached = tab_to(console, lambda e, href=href: e.get("tag") == "A" and e.get("href") == href, label)
        assert reached.get("outline") != "none", f"the focused nav link {label} has no visible focus"
        console.keyboard.press("Enter")
        console.wait_for_url(re.compile(re.escape(href) + r"$"))
        link = console.get_by_role("navigation", name="Console").get_by_role("link", name=label, exact=True)
        expect(link).to_have_attribute("aria-current", "page")


def test_log_out_with_the_keyboard_alone_ends_the_session(console: Page):
    """Also the positive case of the CSRF check: the console's own form, token and origin
    right, does what it says."""
    console.goto("/console")
    tab_to(console, lambda e: e.get("tag") == "BUTTON" and e.get("text") == "Log out", "the Log out button")
    console.keyboard.press("Enter")
    console.wait_for_url(re.compile(r"/console/login\?bye=1$"))
    expect(console.get_by_text("You are logged out.")).to_be_visible()
    console.goto("/console/jobs")
    assert "/console/login?next=" in console.url, "the session outlived its logout"


# -- 5. a screenshot of every page of the nav -----------------------------------------------


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def test_every_page_of_the_nav_opens_without_errors(console: Page):
    """Each page answers 200 with one h1 and no script error or CSP violation. Every page is
    photographed, a failing one too: .stackyard/artifacts/console/nav-<label>.png."""
    errors: list[str] = []
    console.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    console.on("pageerror", lambda error: errors.append(str(error)))
    nav = console.get_by_role("navigation", name="Console").get_by_role("link")
    links = [(nav.nth(i).get_attribute("href") or "", nav.nth(i).inner_text()) for i in range(nav.count())]
    assert len(links) >= 5, links
    failures = []
    for href, label in links:
        console.goto("/console")
        with console.expect_navigation() as navigation:
            nav.filter(has_text=label).first.click()
        answer = navigation.value
        console.wait_for_load_state("networkidle")
        screenshot(console, f"nav-{slug(label)}")
        if answer is None or answer.status != 200:
            failures.append(f"{label} ({href}) answered {answer and answer.status}")
        elif console.locator("h1").count() != 1:
            failures.append(f"{label} ({href}) has {console.locator('h1').count()} h1")
    assert not failures, failures
    assert not errors, f"script errors or CSP violations: {errors}"
