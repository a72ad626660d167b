"""The console's login, sessions and protections through HTTP against the real api (AuthStack):
every page needs a session, the admin key opens one, logout and expiry end it, and a POST
without the session's CSRF token or from another origin does nothing. Redis database 31."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import pytest
import redis
from console_http import COOKIE, console_login, csrf_token, post_form
from fastapi import APIRouter, Request
from fastapi.routing import APIRoute
from stackyard.problems import NotFound
from stackyard_api.console.session import ConsoleDep, CsrfDep, flash, redirect
from stackyard_harness.auth_stack import ADMIN_API_KEY, AuthStack

REDIS_DATABASE = 31


@pytest.fixture
def rdb(auth: AuthStack) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(auth.redis_url, decode_responses=True) as client:
        yield client


def api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """The app's routes, those of included routers too (FastAPI keeps those as wrappers; the
    console's routers carry their own prefix)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (inner := getattr(route, "original_router", None)) is not None:
            yield from api_routes(inner.routes)


def console_paths(auth: AuthStack, method: str) -> list[str]:
    """Every console route of `method` but the login, path parameters filled with a dummy."""
    paths = {
        re.sub(r"\{[^}]+\}", "x1", route.path)
        for route in api_routes(auth.app.routes)
        if route.path.startswith("/console") and method in route.methods and route.path != "/console/login"
    }
    return sorted(paths)


def test_every_console_page_sends_a_stranger_to_the_login_page(auth: AuthStack, http: httpx.Client):
    paths = console_paths(auth, "GET")
    assert "/console" in paths
    for path in paths:
        answer = http.get(path)
        assert answer.status_code == 303, (path, answer.status_code, answer.text[:200])
        assert answer.headers["location"].startswith("/console/login?next="), path
        assert answer.text == "", f"{path} answered data to a stranger"


def test_a_stranger_post_acts_on_nothing_and_goes_to_login(auth: AuthStack, http: httpx.Client):
    paths = console_paths(auth, "POST")
    assert "/console/logout" in paths
    for path in paths:
        answer = http.post(path, data={"csrf_token": "x"})
        assert answer.status_code == 303, (path, answer.status_code)
        assert answer.headers["location"] == "/console/login?next=/console"


def test_the_login_page_is_served_with_strict_security_headers(http: httpx.Client):
    answer = http.get("/console/login?next=/console/jobs")
    assert answer.status_code == 200
    assert 'name="api_key"' in answer.text and 'value="/console/jobs"' in answer.text
    csp = answer.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"
    assert "<script>" not in answer.text and " on" + "click=" not in answer.text


def test_a_wrong_key_is_refused_with_a_generic_message(http: httpx.Client):
    for key in ("", "not-the-key", ADMIN_API_KEY + "x", ADMIN_API_KEY[:-1]):
        answer = http.post("/console/login", data={"api_key": key, "next": "/console"})
        assert answer.status_code == 401, key
        assert "That key was not accepted." in answer.text
        assert COOKIE not in answer.cookies
    assert http.get("/console").status_code == 303


def test_repeated_wrong_keys_are_slowed_down(http: httpx.Client):
    for _ in range(10):
        assert http.post("/console/login", data={"api_key": "guess"}).status_code == 401
    answer = http.post("/console/login", data={"api_key": ADMIN_API_KEY})
    assert answer.status_code == 429 and "Too many" in answer.text


def test_the_admin_key_opens_a_session_with_a_strict_cookie(http: httpx.Client):
    answer = http.post("/console/login", data={"api_key": ADMIN_API_KEY, "next": "/console/jobs?queue=a"})
    assert answer.status_code == 303 and answer.headers["location"] == "/console/jobs?queue=a"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for flag in ("HttpOnly", "SameSite=strict", "Path=/console"):
        assert flag.lower() in cookie.lower(), cookie
    assert "secure" not in cookie.lower(), "plain http: no Secure flag"
    page = http.get("/console")
    assert page.status_code == 200 and "<h1>Overview</h1>" in page.text
    assert page.headers["cache-control"] == "no-store"


def test_the_session_cookie_is_secure_behind_https(http: httpx.Client):
    answer = http.post("/console/login", data={"api_key": ADMIN_API_KEY}, headers={"X-Forwarded-Proto": "https"})
    assert "secure" in answer.headers["set-cookie"].lower()


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/console",
        "//evil.example/console",
        "/\\evil.example",
        "/console\\..\\x",
        "/console/../v1/auth/admin/users",
        "/console/%2e%2e/v1/config",
        "/console/./x",
        "/console//evil.example",
        "/console\r\nSet-Cookie: x=1",
        "/v1/auth/admin/users",
        "javascript:x",
    ],
)
def test_next_only_goes_to_a_console_page(http: httpx.Client, next_url: str):
    answer = http.post("/console/login", data={"api_key": ADMIN_API_KEY, "next": next_url})
    assert answer.headers["location"] == "/console"


@pytest.mark.parametrize("next_url", ["/console", "/console/jobs", "/console/users/u_1?tab=audit&page=2"])
def test_next_leads_to_the_console_page_asked_for(http: httpx.Client, next_url: str):
    answer = http.post("/console/login", data={"api_key": ADMIN_API_KEY, "next": next_url})
    assert answer.headers["location"] == next_url


def test_logout_ends_the_session_in_redis(http: httpx.Client, rdb: redis.Redis):
    console_login(http)
    assert list(rdb.scan_iter("sy:console:session:*"))
    session_cookie = http.cookies[COOKIE]
    answer = post_form(http, "/console/logout")
    assert answer.status_code == 303 and answer.headers["location"] == "/console/login?bye=1"
    assert not list(rdb.scan_iter("sy:console:session:*"))
    http.cookies.set(COOKIE, session_cookie, path="/console")
    assert http.get("/console").status_code == 303, "the old cookie opens nothing"


def _age_session(rdb: redis.Redis, field: str, seconds: float) -> None:
    (key,) = [k for k in rdb.scan_iter("sy:console:session:*") if not k.endswith(":flash")]
    record = json.loads(rdb.get(key))
    record[field] = time.time() - seconds
    rdb.set(key, json.dumps(record), keepttl=True)


@pytest.mark.parametrize(("field", "age"), [("seen", 31 * 60), ("created", 12 * 3600 + 60)])
def test_an_idle_or_old_session_goes_back_to_login(http: httpx.Client, rdb: redis.Redis, field: str, age: int):
    console_login(http)
    assert http.get("/console").status_code == 200
    _age_session(rdb, field, age)
    answer = http.get("/console")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login")


def test_live_refreshes_do_not_keep_a_session_alive(http: httpx.Client, rdb: redis.Redis):
    console_login(http)
    _age_session(rdb, "seen", 20 * 60)
    assert http.get("/console", headers={"X-Console-Live": "1"}).status_code == 200
    _age_session(rdb, "seen", 31 * 60)
    assert http.get("/console", headers={"X-Console-Live": "1"}).status_code == 303


def test_a_rotated_admin_key_ends_console_sessions(running: AuthStack, http: httpx.Client):
    console_login(http)
    try:
        running.set_credentials(**{"stack.auth.adminApiKey": "a-new-admin-key-0123456789"})
        assert http.get("/console").status_code == 303
    finally:
        running.set_credentials(**{"stack.auth.adminApiKey": ADMIN_API_KEY})


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused(http: httpx.Client, rdb: redis.Redis):
    console_login(http)
    origin = {"Origin": str(http.base_url).rstrip("/")}
    for data in ({}, {"csrf_token": ""}, {"csrf_token": "wrong"}, {"csrf_token": csrf_token(http) + "x"}):
        answer = http.post("/console/logout", data=data, headers=origin)
        assert answer.status_code == 403, data
        assert "Nothing was changed" in answer.text
        assert answer.headers["content-security-policy"].startswith("default-src 'self'")
    assert http.get("/console").status_code == 200, "the refused logout did not end the session"


@pytest.mark.parametrize("header", ["Origin", "Referer"])
def test_a_post_from_another_origin_is_refused(http: httpx.Client, header: str):
    console_login(http)
    token = csrf_token(http)
    answer = http.post("/console/logout", data={"csrf_token": token}, headers={header: "https://evil.example/x"})
    assert answer.status_code == 403
    assert http.get("/console").status_code == 200, "nothing was done"


def test_the_admin_key_is_never_rendered(http: httpx.Client):
    failed = http.post("/console/login", data={"api_key": ADMIN_API_KEY + "-typo"})
    assert ADMIN_API_KEY not in failed.text
    console_login(http)
    for path in ("/console", "/console/login"):
        assert ADMIN_API_KEY not in http.get(path).text


def test_the_static_files_are_served_without_a_session(http: httpx.Client):
    script = http.get("/console/static/console.js")
    assert script.status_code == 200 and "X-Console-Live" in script.text
    assert http.get("/console/static/console.css").status_code == 200


MACROS = '{% import "console/_macros.html" as ui with context %}'


def test_the_macros_make_accessible_forms_pagers_badges_and_times():
    from datetime import UTC, datetime

    from stackyard_api.console.session import templates
    from starlette.datastructures import URL, QueryParams

    class Page:
        url = URL("http://api/console/jobs?queue=a&cursor=old")
        query_params = QueryParams(url.query)

    class FirstPage:
        url = URL("http://api/console/jobs?queue=a")
        query_params = QueryParams(url.query)

    def render(body: str, request: object = None, **context: object) -> str:
        page = request or Page()
        return templates.env.from_string(MACROS + body).render(csrf_token="tok", request=page, **context)

    form = render(
        '{{ ui.action_form("/console/jobs/x/replay", "Replay", confirm="Replay it?", danger=True, fields=f) }}',
        f={"id": "j<1>"},
    )
    assert 'method="post" action="/console/jobs/x/replay"' in form and 'data-confirm="Replay it?"' in form
    assert '<input type="hidden" name="csrf_token" value="tok">' in form
    assert 'name="id" value="j&lt;1&gt;"' in form and '<button type="submit" class="danger">Replay</button>' in form
    pager = render('{{ ui.pager("n2", first="← Newest", next="Older →") }}')
    assert '<a href="http://api/console/jobs?queue=a">← Newest</a>' in pager
    assert '<a rel="next" href="http://api/console/jobs?queue=a&amp;cursor=n2">Older →</a>' in pager
    assert 'aria-label="Pagination"' in pager
    assert "← First" in render("{{ ui.pager(None) }}")  # a later page links back to the first
    assert render("{{ ui.pager(None) }}", request=FirstPage()).strip() == ""
    assert "← First" not in render('{{ ui.pager("n2") }}', request=FirstPage())
    assert 'class="badge badge-half-open"' in render('{{ ui.status_badge("half_open") }}')
    when = render("{{ ui.timestamp(at) }}", at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert '<time datetime="2026-01-02T03:04:05+00:00">2026-01-02 03:04:05 UTC</time>' in when
    assert '<time datetime="1970-01-01T00:01:40Z">' in render("{{ ui.timestamp(100) }}")
    assert "—" in render("{{ ui.timestamp(None) }}")
    assert '<p class="empty">No jobs.</p>' in render('{{ ui.empty("No jobs.") }}')


def test_no_console_page_renders_a_credential(auth: AuthStack, http: httpx.Client):
    """Every console GET page without path parameters, new ones included, as the logged-in admin."""
    console_login(http)
    pages = [p for p in console_paths(auth, "GET") if "x1" not in p] + ["/console/login"]
    secrets = {name: value for name, value in auth.credentials.items() if len(value) >= 8}
    for path in pages:
        for live in ({}, {"X-Console-Live": "1"}):
            html = http.get(path, headers=live).text
            for name, value in secrets.items():
                assert value not in html, f"{path} shows the credential {name}"
            assert "redis://" not in html and "mongodb://" not in html, path


def test_console_errors_are_pages_and_the_apis_stay_problem_json(http: httpx.Client):
    missing = http.get("/console/no-such-page")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "Not found" in missing.text and missing.headers["x-frame-options"] == "DENY"
    invalid = http.get("/console/login?bye=maybe")
    assert invalid.status_code == 422 and "Nothing was changed" in invalid.text
    api = http.get("/v1/no-such-route")
    assert api.status_code == 404 and api.headers["content-type"].startswith("application/problem+json")
    assert "x-frame-options" not in api.headers


def test_a_login_posted_from_another_site_is_refused(http: httpx.Client):
    answer = http.post("/console/login", data={"api_key": ADMIN_API_KEY}, headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403 and COOKIE not in answer.cookies
    origin = {"Origin": str(http.base_url).rstrip("/")}
    same = http.post("/console/login", data={"api_key": ADMIN_API_KEY}, headers=origin)
    assert same.status_code == 303


@pytest.fixture
def flashing_action(auth: AuthStack) -> Iterator[list[str]]:
    """A POST action added to the running console for this test: it flashes and redirects."""
    done: list[str] = []
    router = APIRouter(prefix="/console/test-flash")

    @router.post("")
    async def act(request: Request, session: CsrfDep) -> Any:
        done.append(session.id)
        flash(request, "Replayed 3 <jobs>.")
        flash(request, "One could not be replayed.", kind="error")
        return redirect("/console")

    @router.get("/missing")
    async def missing(session: ConsoleDep) -> Any:
        raise NotFound("no dead job j_1 in queue emails")

    before = list(auth.app.router.routes)
    auth.app.include_router(router)
    try:
        yield done
    finally:
        auth.app.router.routes[:] = before


def test_an_action_flashes_its_outcome_on_the_next_page_once(http: httpx.Client, flashing_action: list[str]):
    console_login(http)
    refused = http.post("/console/test-flash", data={"csrf_token": "wrong"})
    assert refused.status_code == 403 and flashing_action == []
    answer = post_form(http, "/console/test-flash")
    assert answer.status_code == 303 and answer.headers["location"] == "/console" and len(flashing_action) == 1
    live = http.get("/console", headers={"X-Console-Live": "1"}).text
    assert "Replayed 3" not in live, "a live refresh leaves the messages for the page"
    page = http.get("/console").text
    assert '<p class="flash flash-ok">Replayed 3 &lt;jobs&gt;.</p>' in page
    assert '<p class="flash flash-error">One could not be replayed.</p>' in page
    assert "Replayed 3" not in http.get("/console").text, "shown once"


def test_a_problem_in_a_console_page_is_shown_as_the_error_page(http: httpx.Client, flashing_action: list[str]):
    console_login(http)
    answer = http.get("/console/test-flash/missing")
    assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html")
    assert "no dead job j_1 in queue emails" in answer.text and 'aria-label="Console"' in answer.text
