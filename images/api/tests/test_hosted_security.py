"""The hosted pages' protections through HTTP against the real api: every POST of /oauth2/ui
is refused (403, nothing done) without the pre-login CSRF token, with a wrong one, or from
another origin; the security headers (strict CSP, no framing) and no inline script or style on
every page; cookie attributes with secure cookies (__Host- names); the accessible structure of
the forms. Redis database 41."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from auth_http import EMAIL, PASSWORD, sign_up_and_log_in
from fastapi.routing import APIRoute
from hosted_http import (
    FIRST_PARTY,
    ISSUER,
    ORIGIN,
    THIRD_PARTY,
    add_clients,
    csrf_of,
    post_page,
    waiting_logout,
    waiting_request,
)
from stackyard_api import hosted
from stackyard_harness.auth_stack import AuthStack

REDIS_DATABASE = 41
AUTH_SETTINGS: dict[str, Any] = {"requireEmailVerification": False, "cookies": {"secure": False}}


@pytest.fixture
def clients(auth: AuthStack) -> AuthStack:
    add_clients(auth, {"shop": FIRST_PARTY, "buddy": THIRD_PARTY})
    return auth


def hosted_routes(routes: Any = None) -> Iterator[APIRoute]:
    for route in hosted.router.routes if routes is None else routes:
        if isinstance(route, APIRoute):
            yield route
        elif (inner := getattr(route, "original_router", None)) is not None:
            yield from hosted_routes(inner.routes)


def hosted_posts() -> list[str]:
    paths = {"/oauth2/ui" + re.sub(r"\{[^}]+\}", "x1", r.path) for r in hosted_routes() if "POST" in r.methods}
    return sorted(paths)


def test_the_hosted_pages_are_not_in_the_openapi_schema(clients: AuthStack, http: httpx.Client):
    paths = http.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/oauth2/ui")]
    assert {"/oauth2/ui/login", "/oauth2/ui/mfa", "/oauth2/ui/consent", "/oauth2/ui/logout"} <= set(hosted_posts())


REFUSALS = {
    "no token": lambda token: ({}, ORIGIN),
    "a wrong token": lambda token: ({"csrf_token": token[:-2] + "xx"}, ORIGIN),
    "another origin": lambda token: ({"csrf_token": token}, {"Origin": "https://evil.example"}),
    "an opaque origin": lambda token: ({"csrf_token": token}, {"Origin": "null"}),
    "another site's referer": lambda token: ({"csrf_token": token}, {"Referer": "https://evil.example/page"}),
    "neither origin nor referer": lambda token: ({"csrf_token": token}, {}),
    "the issuer's host on http": lambda token: ({"csrf_token": token}, {"Origin": "http://auth.acme.dev"}),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_every_post_is_refused_without_the_token_or_from_another_origin(
    clients: AuthStack, http: httpx.Client, db: Any, case: str
):
    sign_up_and_log_in(http)
    ar = waiting_request(clients)
    token = csrf_of(http.get(f"/oauth2/ui/login?ar={ar}"))
    logout = waiting_logout(clients)
    for path in hosted_posts():
        fields, headers = REFUSALS[case](token)
        data = {"ar": ar, "email": EMAIL, "password": PASSWORD, "decision": "allow", "lr": logout, "code": "1"}
        answer = http.post(f"{path}?ar={ar}", data=fields | data, headers=headers)
        assert answer.status_code == 403, (case, path, answer.status_code, answer.text[:300])
        assert answer.headers["content-type"].startswith("text/html"), path
        assert "Nothing was changed" in answer.text or "sign in again" in answer.text, path
        assert not any(c.startswith("sy_op=") for c in answer.headers.get_list("set-cookie")), path
    # Nothing was done: no login tried, the request still waits, the logout is still to confirm.
    assert db["auth_events"].count_documents({"type": {"$regex": "^login"}}) == 0
    assert http.get(f"/oauth2/ui/login?ar={ar}").status_code == 200
    assert http.get(f"/oauth2/ui/logout?lr={logout}").status_code == 200
    assert db["oidc_consents"].count_documents({}) == 0


def test_a_post_with_the_token_and_the_issuers_referer_is_accepted(clients: AuthStack, http: httpx.Client):
    sign_up_and_log_in(http)
    ar = waiting_request(clients)
    token = csrf_of(http.get(f"/oauth2/ui/login?ar={ar}"))
    answer = http.post(
        f"/oauth2/ui/login?ar={ar}",
        data={"csrf_token": token, "ar": ar, "email": EMAIL, "password": PASSWORD},
        headers={"Referer": f"{ISSUER}/oauth2/ui/login?ar={ar}"},
    )
    assert answer.status_code == 303, answer.text


def test_a_token_from_another_browser_is_refused(clients: AuthStack, http: httpx.Client):
    ar = waiting_request(clients)
    theirs = csrf_of(http.get(f"/oauth2/ui/login?ar={ar}"))
    with httpx.Client(base_url=clients.url) as other:
        other.get(f"/oauth2/ui/login?ar={ar}")
        answer = other.post(
            f"/oauth2/ui/login?ar={ar}",
            data={"csrf_token": theirs, "email": EMAIL, "password": PASSWORD},
            headers=ORIGIN,
        )
    assert answer.status_code == 403


def pages(clients: AuthStack, http: httpx.Client) -> dict[str, httpx.Response]:
    """One of each hosted page (login with an error, sign-up, verify email, consent, logout, errors), the
    theme and a static file."""
    sign_up_and_log_in(http)
    ar = waiting_request(clients)
    shown = {"login": http.get(f"/oauth2/ui/login?ar={ar}")}
    shown["sign-up"] = http.get(f"/oauth2/ui/signup?ar={ar}")
    shown["verify email"] = http.get(f"/oauth2/ui/verify-email?ar={ar}&token=tk_from_the_mail")
    assert shown["sign-up"].status_code == shown["verify email"].status_code == 200
    shown["login with an error"] = post_page(http, f"/oauth2/ui/login?ar={ar}", {"email": EMAIL, "password": "nope"})
    assert post_page(http, f"/oauth2/ui/login?ar={ar}", {"email": EMAIL, "password": PASSWORD}).status_code == 303
    consent = waiting_request(clients, "buddy")
    shown["consent"] = http.get(f"/oauth2/ui/consent?ar={consent}")
    shown["logout"] = http.get(f"/oauth2/ui/logout?lr={waiting_logout(clients)}")
    shown["logged out"] = http.get("/oauth2/ui/logged-out")
    shown["unknown request"] = http.get("/oauth2/ui/login?ar=ar_gone")
    shown["missing file"] = http.get("/oauth2/ui/static/nothing.css")
    shown["theme"] = http.get("/oauth2/ui/theme.css")
    shown["stylesheet"] = http.get("/oauth2/ui/static/hosted.css")
    return shown


def test_every_answer_has_the_security_headers(clients: AuthStack, http: httpx.Client):
    for name, answer in pages(clients, http).items():
        assert answer.status_code in (200, 400, 401, 404), (name, answer.status_code)
        headers = answer.headers
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, name
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "object-src 'none'" in csp, name
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "*" not in csp, name
        assert headers["x-frame-options"] == "DENY", name
        assert headers["x-content-type-options"] == "nosniff", name
        assert headers["referrer-policy"] == "same-origin", name


def test_no_page_has_inline_script_or_style(clients: AuthStack, http: httpx.Client):
    for name, answer in pages(clients, http).items():
        if not answer.headers["content-type"].startswith("text/html"):
            continue
        html = answer.text
        assert answer.headers["cache-control"] == "no-store", name
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), name
        assert "<style" not in html and not re.search(r"\sstyle=", html), name
        assert not re.search(r"\son[a-z]+=", html), name


def test_pages_are_structured_for_assistive_technology(clients: AuthStack, http: httpx.Client):
    shown = pages(clients, http)
    for name, answer in shown.items():
        if not answer.headers["content-type"].startswith("text/html"):
            continue
        html = answer.text
        assert '<html lang="en">' in html, name
        assert html.count("<h1") == 1, name
        assert '<a class="skip-link" href="#main">' in html and 'id="main"' in html, name
        for field in re.findall(r"<input[^>]*>", html):
            if 'type="hidden"' in field:
                continue
            field_id = re.search(r'id="([^"]+)"', field)
            assert field_id and f'<label for="{field_id.group(1)}">' in html, (name, field)
    error = shown["login with an error"].text
    summary = re.search(r'<div class="error-summary"[^>]*>', error)
    assert summary and 'role="alert"' in summary.group(0) and 'tabindex="-1"' in summary.group(0)
    assert "autofocus" in summary.group(0)
    assert 'aria-describedby="error-message"' in error


def test_with_secure_cookies_every_cookie_is_host_only_and_secure(clients: AuthStack):
    clients.configure(AUTH_SETTINGS | {"cookies": {"secure": True}})
    add_clients(clients, {"shop": FIRST_PARTY})
    with httpx.Client(base_url=clients.url) as http:
        sign_up_and_log_in(http)
        ar = waiting_request(clients)
        page = http.get(f"/oauth2/ui/login?ar={ar}")
        csrf_cookie = next(c for c in page.headers.get_list("set-cookie") if c.startswith("__Host-sy_op_csrf="))
        for attribute in ("HttpOnly", "Path=/", "SameSite=lax", "Secure"):
            assert attribute in csrf_cookie
        assert "Domain" not in csrf_cookie
        token = csrf_of(page)
        answer = http.post(
            f"/oauth2/ui/login?ar={ar}",
            data={"csrf_token": token, "email": EMAIL, "password": PASSWORD},
            headers=ORIGIN | {"Cookie": f"__Host-sy_op_csrf={token}"},
        )
    assert answer.status_code == 303, answer.text
    browser = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("__Host-sy_op="))
    for attribute in ("HttpOnly", "Path=/", "SameSite=lax", "Secure"):
        assert attribute in browser
    assert "Domain" not in browser


def test_the_error_page_never_redirects(clients: AuthStack, http: httpx.Client):
    for url in (
        "/oauth2/ui/login?ar=ar_gone&redirect_uri=https://evil.example",
        "/oauth2/ui/consent",
        "/oauth2/ui/logout?lr=nope",
        "/oauth2/ui/mfa?ar=%00",
    ):
        answer = http.get(url)
        assert answer.status_code == 400, url
        assert "location" not in answer.headers and "evil.example" not in answer.text, url


def test_a_failure_inside_a_page_is_a_themed_500_without_details(
    clients: AuthStack, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
):
    from stackyard_api.hosted import consent

    def broken(*args: Any) -> Any:
        raise RuntimeError("secret internals: mongodb://user:pw@db")

    sign_up_and_log_in(http)
    ar = waiting_request(clients, "buddy")
    assert post_page(http, f"/oauth2/ui/login?ar={ar}", {"email": EMAIL, "password": PASSWORD}).status_code == 303
    monkeypatch.setattr(consent, "scope_lines", broken)
    answer = http.get(f"/oauth2/ui/consent?ar={ar}")
    assert answer.status_code == 500
    assert "<h1>Something went wrong</h1>" in answer.text and "secret internals" not in answer.text
    assert (
        answer.headers["x-frame-options"] == "DENY"
        and "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    )


@pytest.mark.parametrize(
    ("uri", "source"),
    [
        ("https://shop.example.com/callback?x=1", "https://shop.example.com"),
        ("http://localhost:8080/cb", "http://localhost:8080"),
        ("http://[::1]:3000/cb", "http://[::1]:3000"),
        ("com.example.app:/oauth2redirect", "com.example.app:"),
        ("https://evil.example;script-src *", None),
        ("https://a.example 'unsafe-inline'", None),
        ("https://user:pw@shop.example.com/cb", None),
        ("javascript:alert(1)", None),
        ("data:text/html,x", None),
        ("", None),
    ],
)
def test_only_plain_origins_are_written_into_the_policy(uri: str, source: str | None):
    from stackyard_api.hosted.render import content_security_policy, origin_source

    assert origin_source(uri) == source
    policy = content_security_policy(form_action=[uri])
    assert ";" not in policy.split("form-action", 1)[1].split(";")[0].replace(source or "", "")
    assert "unsafe" not in policy and "*" not in policy
