"""The console's Users pages through HTTP against the real api app, Redis and FerretDB (the
AuthStack): search by address, a user's profile with their sessions, second factors (never a
secret), organisations and audit events; disable and enable, revoke every session, delete;
and no action without the session's CSRF token. Redis database 33."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pyotp
import pytest
from auth_http import PASSWORD, bearer, login, sign_up_and_log_in
from console_http import console_login, post_form
from stackyard_harness.auth_stack import ADMIN_API_KEY, APP_URL, AuthStack
from stackyard_harness.webauthn_authenticator import SoftwareAuthenticator

REDIS_DATABASE = 33
AUTH_SETTINGS = {"requireEmailVerification": False}
USER_AGENT = "console-users-tests/1.0"
ADMIN = {"Authorization": f"Bearer {ADMIN_API_KEY}"}


@pytest.fixture
def console(auth: AuthStack) -> Iterator[httpx.Client]:
    """A second client, logged in to the console (its own cookie jar)."""
    with httpx.Client(base_url=auth.url, timeout=10) as client:
        console_login(client)
        yield client


def create_user(http: httpx.Client, email: str, **extra: Any) -> dict[str, Any]:
    body = {"email": email, "password": PASSWORD, "emailVerified": True} | extra
    answer = http.post("/v1/auth/admin/users", json=body, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    return answer.json()


def admin_view(http: httpx.Client, user_id: str) -> httpx.Response:
    return http.get(f"/v1/auth/admin/users/{user_id}", headers=ADMIN)


def text(answer: httpx.Response) -> str:
    """The page's text without tags, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", answer.text)).split())


def my_id(http: httpx.Client, session: dict[str, Any]) -> str:
    return str(http.get("/v1/auth/me", headers=bearer(session)).json()["id"])


def test_a_stranger_gets_the_login_page_for_every_users_page(http: httpx.Client):
    user = create_user(http, "ana@example.com")
    for page in ("/console/users", f"/console/users/{user['id']}", "/console/users?q=ana"):
        answer = http.get(page)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login?next=")
        assert "ana@example.com" not in answer.text
    for action in ("disable", "sessions/revoke", "delete"):
        answer = http.post(f"/console/users/{user['id']}/{action}", data={"email": "ana@example.com"})
        assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login")
    assert admin_view(http, user["id"]).json()["disabled"] is False


def test_search_finds_a_user_by_part_of_their_address_newest_first_in_pages(http: httpx.Client, console: httpx.Client):
    ana = create_user(http, "ana.search@acme.dev", profile={"name": "Ana <Lima>"})
    create_user(http, "bo@other.org")
    found = console.get("/console/users", params={"q": "SEARCH@acme"})
    assert found.status_code == 200
    assert f'href="/console/users/{ana["id"]}"' in found.text
    assert "Ana &lt;Lima&gt;" in found.text, "the name is shown, escaped"
    assert "bo@other.org" not in found.text
    assert "ana.search" not in console.get("/console/users", params={"q": "search", "match": "prefix"}).text
    assert "ana.search@acme.dev" in console.get("/console/users", params={"q": "ana.s", "match": "prefix"}).text
    assert "No user's address contains “nobody”." in text(console.get("/console/users", params={"q": "nobody"}))

    for n in range(30):
        create_user(http, f"page{n:02d}@pages.dev")
    first = console.get("/console/users", params={"q": "@pages.dev"})
    assert first.text.count("@pages.dev</a>") == 25 and "page29@pages.dev" in first.text
    link = re.search(r'<a rel="next" href="([^"]+)"', first.text)
    assert link, "a next page"
    second = console.get(html.unescape(link.group(1)))
    assert second.text.count("@pages.dev</a>") == 5 and "page00@pages.dev" in second.text


def test_the_profile_shows_sessions_mfa_passkeys_and_events_but_no_secret(http: httpx.Client, console: httpx.Client):
    session = sign_up_and_log_in(http, "mia@example.com")
    headers = bearer(session)
    secret = http.post("/v1/auth/mfa/totp/enroll", headers=headers).json()["secret"]
    confirmed = http.post("/v1/auth/mfa/totp/confirm", headers=headers, json={"code": pyotp.TOTP(secret).now()})
    assert confirmed.status_code == 200, confirmed.text
    recovery_codes = confirmed.json()["recoveryCodes"]
    options = http.post("/v1/auth/passkeys/register/options", headers=headers).json()
    credential = SoftwareAuthenticator(origin=APP_URL).register(options["publicKey"])
    added = http.post(
        "/v1/auth/passkeys/register/verify",
        headers=headers,
        json={"challengeToken": options["challengeToken"], "credential": credential, "name": "Mia's <laptop>"},
    )
    assert added.status_code == 201, added.text

    page = console.get(f"/console/users/{my_id(http, session)}")
    assert page.status_code == 200
    shown = text(page)
    assert "Authenticator app (TOTP) enrolled" in shown
    assert f"Recovery codes left {len(recovery_codes)}" in shown
    assert "Mia's <laptop>" in shown and "&lt;laptop&gt;" in page.text
    assert USER_AGENT in shown, "the session's user agent"
    assert "Sessions (1)" in shown
    assert "user.created" in shown or "signup" in shown
    assert "mfa.enabled" in shown and "passkey.added" in shown
    for secret_value in [secret, session["accessToken"], session["refreshToken"], *recovery_codes]:
        assert secret_value not in page.text
    assert "$argon2" not in page.text and "passwordHash" not in page.text


def test_disable_ends_sessions_and_refuses_login_then_enable_lets_them_in(http: httpx.Client, console: httpx.Client):
    user = create_user(http, "dan@example.com")
    session = login(http, "dan@example.com")
    answer = post_form(console, f"/console/users/{user['id']}/disable")
    assert answer.status_code == 303 and answer.headers["location"] == f"/console/users/{user['id']}"
    after = console.get(answer.headers["location"])
    assert "dan@example.com is disabled" in text(after) and "Enable dan@example.com" in after.text
    assert "user.disabled" in text(after)
    refused = http.post("/v1/auth/login", json={"email": "dan@example.com", "password": PASSWORD})
    assert refused.status_code == 403, refused.text
    assert http.post("/v1/auth/token/refresh", json={"refreshToken": session["refreshToken"]}).status_code == 401

    enabled = post_form(console, f"/console/users/{user['id']}/enable")
    assert "is enabled again" in text(console.get(enabled.headers["location"]))
    login(http, "dan@example.com")


def test_revoke_all_sessions_ends_them(http: httpx.Client, console: httpx.Client):
    user = create_user(http, "eve@example.com")
    sessions = [login(http, "eve@example.com") for _ in range(2)]
    assert "Sessions (2)" in text(console.get(f"/console/users/{user['id']}"))
    answer = post_form(console, f"/console/users/{user['id']}/sessions/revoke")
    page = console.get(answer.headers["location"])
    assert "2 sessions ended." in text(page) and "Sessions (0)" in text(page)
    for session in sessions:
        assert http.get("/v1/auth/me", headers=bearer(session)).status_code == 401
        assert http.post("/v1/auth/token/refresh", json={"refreshToken": session["refreshToken"]}).status_code == 401
    assert admin_view(http, user["id"]).json()["sessions"] == []


def test_delete_needs_the_address_typed_then_removes_the_user(http: httpx.Client, console: httpx.Client):
    user = create_user(http, "fay@example.com")
    wrong = post_form(console, f"/console/users/{user['id']}/delete", {"email": "someone@example.com"})
    assert "nobody was deleted" in text(console.get(wrong.headers["location"]))
    assert admin_view(http, user["id"]).status_code == 200

    answer = post_form(console, f"/console/users/{user['id']}/delete", {"email": "FAY@example.com"})
    assert answer.status_code == 303 and answer.headers["location"] == "/console/users"
    listed = console.get("/console/users")
    assert "fay@example.com was deleted" in text(listed)
    assert f"/console/users/{user['id']}" not in listed.text
    assert admin_view(http, user["id"]).status_code == 404
    gone = console.get(f"/console/users/{user['id']}")
    assert gone.status_code == 404 and user["id"] in gone.text


def test_deleting_the_last_owner_is_refused_unless_ownership_passes_on(http: httpx.Client, console: httpx.Client):
    owner = sign_up_and_log_in(http, "gus@example.com")
    member = sign_up_and_log_in(http, "hal@example.com")
    org = http.post("/v1/auth/orgs", headers=bearer(owner), json={"name": "Gus & Co"})
    assert org.status_code == 201, org.text
    org_id = org.json()["id"]
    gus_id, hal_id = my_id(http, owner), my_id(http, member)
    added = http.post(
        f"/v1/auth/orgs/{org_id}/members", headers=bearer(owner), json={"userId": hal_id, "role": "admin"}
    )
    assert added.status_code == 201, added.text
    profile = console.get(f"/console/users/{gus_id}")
    assert "Gus &amp; Co" in profile.text and org_id in profile.text and "owner" in text(profile)

    refused = post_form(console, f"/console/users/{gus_id}/delete", {"email": "gus@example.com"})
    assert "is the last owner" in text(console.get(refused.headers["location"]))
    assert admin_view(http, gus_id).status_code == 200
    done = post_form(console, f"/console/users/{gus_id}/delete", {"email": "gus@example.com", "transfer": "true"})
    assert done.headers["location"] == "/console/users"
    assert admin_view(http, gus_id).status_code == 404
    assert "owner" in text(console.get(f"/console/users/{hal_id}"))


@pytest.mark.parametrize("action", ["disable", "sessions/revoke", "delete"])
def test_an_action_without_the_csrf_token_is_refused_and_changes_nothing(
    http: httpx.Client, console: httpx.Client, action: str
):
    user = create_user(http, "ivy@example.com")
    session = login(http, "ivy@example.com")
    url = f"/console/users/{user['id']}/{action}"
    origin = {"Origin": str(console.base_url).rstrip("/")}
    for data in ({"email": "ivy@example.com"}, {"email": "ivy@example.com", "csrf_token": "not-the-token"}):
        answer = console.post(url, data=data, headers=origin)
        assert answer.status_code == 403 and "Nothing was changed" in answer.text
    other_site = post_form(console, url, {"email": "ivy@example.com"}, headers={"Origin": "https://evil.example"})
    assert other_site.status_code == 403
    view = admin_view(http, user["id"])
    assert view.status_code == 200 and view.json()["disabled"] is False and len(view.json()["sessions"]) == 1
    assert http.get("/v1/auth/me", headers=bearer(session)).status_code == 200
