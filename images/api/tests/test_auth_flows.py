"""The password and email-link flows through HTTP against the real api app, with the auth
emails sent by a real worker to an SMTP sink, real Redis and FerretDB."""

from __future__ import annotations

import re
import statistics
import time
from typing import Any

import httpx
import pytest
from auth_http import EMAIL, PASSWORD, bearer, login, problem, sign_up_and_verify, without_trace_id
from stackyard_api.routers.auth import after_answer_tasks
from stackyard_harness.auth_stack import AuthStack

NEW_PASSWORD = "another calm lake shore"
CHROME_ON_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
)
OPEN_LIMITS = {"lockout": {"ipMaxAttempts": 100000}}
"""Every test but the per-IP one: all requests come from 127.0.0.1."""
REDIS_DATABASE = 8
RUN_WORKER = True
AUTH_SETTINGS = OPEN_LIMITS


def configure(auth: AuthStack, settings: dict[str, Any] | None = None, **options: Any) -> None:
    """Stack auth settings on top of OPEN_LIMITS (lockout merged key by key)."""
    merged = OPEN_LIMITS | (settings or {})
    merged["lockout"] = OPEN_LIMITS["lockout"] | (settings or {}).get("lockout", {})
    auth.configure(merged, **options)


def refresh(http: httpx.Client, session: dict[str, Any]) -> httpx.Response:
    return http.post("/v1/auth/token/refresh", json={"refreshToken": session["refreshToken"]})


def me(http: httpx.Client, session: dict[str, Any]) -> httpx.Response:
    return http.get("/v1/auth/me", headers=bearer(session))


def wait_for_mails(auth: AuthStack, address: str, count: int, timeout: float = 15.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while len(auth.mails_to(address)) < count:
        assert time.monotonic() < deadline, f"{len(auth.mails_to(address))} mails to {address}, wanted {count}"
        time.sleep(0.05)
    return auth.mails_to(address)


def text_of(message: Any) -> str:
    body = message.get_body(("plain",))
    return str(body.get_content() if body is not None else message)


# -- sign-up and verification ---------------------------------------------------------------


def test_sign_up_verify_login_and_me(auth: AuthStack, http: httpx.Client):
    sign_up_and_verify(auth, http)
    session = login(http)
    answer = me(http, session)
    assert answer.status_code == 200, answer.text
    assert answer.json()["email"] == EMAIL and answer.json()["amr"] == ["pwd"]
    assert answer.json()["emailVerified"] is True and answer.json()["name"] == "Ana"


def test_verification_link_works_once(auth: AuthStack, http: httpx.Client):
    assert http.post("/v1/auth/signup", json={"email": EMAIL, "password": PASSWORD}).status_code == 202
    token = auth.token_from_mail(EMAIL, "Confirm your email")
    assert http.post("/v1/auth/verify-email", json={"token": token}).status_code == 200
    again = http.post("/v1/auth/verify-email", json={"token": token})
    assert "already used" in problem(again, 401, "invalid-token")["detail"]


def test_expired_verification_link_is_refused(auth: AuthStack, http: httpx.Client):
    configure(auth, {"verificationTokenLifetime": "1s"})
    assert http.post("/v1/auth/signup", json={"email": EMAIL, "password": PASSWORD}).status_code == 202
    token = auth.token_from_mail(EMAIL, "Confirm your email")
    assert "expires in 1 minute" in text_of(auth.mail_to(EMAIL, "Confirm your email"))
    time.sleep(1.2)
    problem(http.post("/v1/auth/verify-email", json={"token": token}), 401, "invalid-token")
    problem(http.post("/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}), 403, "email-not-verified")


def test_login_before_verification_is_refused_only_with_the_right_password(auth: AuthStack, http: httpx.Client):
    assert http.post("/v1/auth/signup", json={"email": EMAIL, "password": PASSWORD}).status_code == 202
    wrong = http.post("/v1/auth/login", json={"email": EMAIL, "password": NEW_PASSWORD})
    problem(wrong, 401, "invalid-credentials")
    right = http.post("/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert "verify-email/resend" in problem(right, 403, "email-not-verified")["detail"]


def test_resend_sends_a_new_link_that_verifies(auth: AuthStack, http: httpx.Client):
    assert http.post("/v1/auth/signup", json={"email": EMAIL, "password": PASSWORD}).status_code == 202
    wait_for_mails(auth, EMAIL, 1)
    resent = http.post("/v1/auth/verify-email/resend", json={"email": EMAIL})
    assert resent.status_code == 202 and resent.json()["status"] == "accepted"
    mails = wait_for_mails(auth, EMAIL, 2)
    token = auth.token_from_mail(EMAIL, "Confirm your email")
    assert token not in text_of(mails[0]), "the resent mail has a new link"
    assert http.post("/v1/auth/verify-email", json={"token": token}).status_code == 200
    login(http)
    # A verified address gets no more links.
    assert http.post("/v1/auth/verify-email/resend", json={"email": EMAIL}).status_code == 202
    time.sleep(1.0)
    assert len(auth.mails_to(EMAIL)) == 2


def test_sign_up_of_a_registered_address_answers_the_same_and_notifies_the_owner(auth: AuthStack, http: httpx.Client):
    sign_up_and_verify(auth, http)
    first = http.post("/v1/auth/signup", json={"email": "someone@example.com", "password": PASSWORD})
    again = http.post("/v1/auth/signup", json={"email": " ANA@Example.com ", "password": NEW_PASSWORD})
    assert again.status_code == first.status_code == 202
    assert again.json() == first.json()
    notice = auth.mail_to(EMAIL, "You already have an account")
    assert "already has an account" in text_of(notice)
    login(http)  # the password is the owner's still
    problem(http.post("/v1/auth/login", json={"email": EMAIL, "password": NEW_PASSWORD}), 401, "invalid-credentials")


def test_without_email_verification_sign_up_logs_in_and_a_taken_address_is_409(auth: AuthStack, http: httpx.Client):
    configure(auth, {"requireEmailVerification": False})
    answer = http.post("/v1/auth/signup", json={"email": EMAIL, "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    session = answer.json()
    assert session["tokenType"] == "Bearer" and session["refreshToken"].startswith("rt_")
    assert me(http, session).json()["emailVerified"] is False
    taken = http.post("/v1/auth/signup", json={"email": EMAIL.upper(), "password": NEW_PASSWORD})
    problem(taken, 409, "email-taken")
    login(http)  # no verification needed


def test_closed_sign_up_is_refused(auth: AuthStack, http: httpx.Client):
    configure(auth, {"allowSignup": False})
    problem(http.post("/v1/auth/signup", json={"email": EMAIL, "password": PASSWORD}), 403, "signup-disabled")


@pytest.mark.parametrize(
    ("email", "password", "reason"),
    [
        (EMAIL, "short1!", "at least 12 characters"),
        (EMAIL, "password123456", "common and breached"),
        ("anabelle.r@example.com", "Anabelle.R2024", "variation of the email"),
        ("anabelle.r@example.com", "anabelle.r@example.com", "variation of the email"),
    ],
)
def test_weak_passwords_are_refused(auth: AuthStack, http: httpx.Client, email: str, password: str, reason: str):
    answer = http.post("/v1/auth/signup", json={"email": email, "password": password})
    assert reason in problem(answer, 422, "weak-password")["detail"]
    assert auth.mails_to(email) == []


# -- login protection ----------------------------------------------------------------------


def test_failed_logins_lock_the_account_with_a_growing_delay(auth: AuthStack, http: httpx.Client):
    configure(auth, {"lockout": {"maxFailures": 3, "baseDelay": "2s", "maxDelay": "1m"}})
    sign_up_and_verify(auth, http)
    for _ in range(3):
        problem(
            http.post("/v1/auth/login", json={"email": EMAIL, "password": "wrong " + PASSWORD}),
            401,
            "invalid-credentials",
        )
    locked = http.post("/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
    body = problem(locked, 429, "too-many-attempts")
    assert 1 <= int(locked.headers["Retry-After"]) <= 2 and body["retryAfter"] == int(locked.headers["Retry-After"])
    time.sleep(2.1)
    # Unlocked; one more failure locks it again for twice as long.
    problem(
        http.post("/v1/auth/login", json={"email": EMAIL, "password": "wrong " + PASSWORD}), 401, "invalid-credentials"
    )
    again = http.post("/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
    problem(again, 429, "too-many-attempts")
    assert 3 <= int(again.headers["Retry-After"]) <= 4
    time.sleep(int(again.headers["Retry-After"]) + 0.1)
    login(http)
    # A success clears the count: the next failure does not lock.
    problem(
        http.post("/v1/auth/login", json={"email": EMAIL, "password": "wrong " + PASSWORD}), 401, "invalid-credentials"
    )
    login(http)


def test_unknown_addresses_lock_the_same_way(auth: AuthStack, http: httpx.Client):
    configure(auth, {"lockout": {"maxFailures": 3, "baseDelay": "30s"}})
    sign_up_and_verify(auth, http)
    answers = {}
    for email in (EMAIL, "nobody@example.com"):
        for _ in range(3):
            http.post("/v1/auth/login", json={"email": email, "password": "wrong " + PASSWORD})
        answers[email] = http.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    known, unknown = answers[EMAIL], answers["nobody@example.com"]
    bodies = [without_trace_id(problem(a, 429, "too-many-attempts")) for a in (known, unknown)]
    for body in bodies:
        body["detail"] = re.sub(r"\d+", "N", body["detail"])
        assert body.pop("retryAfter") > 1
    assert bodies[0] == bodies[1]
    assert abs(int(known.headers["Retry-After"]) - int(unknown.headers["Retry-After"])) <= 1


def test_one_address_may_make_only_so_many_attempts(auth: AuthStack, http: httpx.Client):
    configure(auth, {"lockout": {"ipMaxAttempts": 4, "ipWindow": "1m"}})
    for index in range(4):
        answer = http.post("/v1/auth/login", json={"email": f"u{index}@example.com", "password": PASSWORD})
        problem(answer, 401, "invalid-credentials")
    refused = http.post("/v1/auth/login", json={"email": "u9@example.com", "password": PASSWORD})
    problem(refused, 429, "too-many-attempts")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Sign-up and the link requests count against the same budget.
    problem(http.post("/v1/auth/password/forgot", json={"email": EMAIL}), 429, "too-many-attempts")
    problem(http.post("/v1/auth/signup", json={"email": EMAIL, "password": PASSWORD}), 429, "too-many-attempts")


# -- passwords -------------------------------------------------------------------------------


def test_password_reset_ends_every_session_and_the_link_works_once(auth: AuthStack, http: httpx.Client):
    sign_up_and_verify(auth, http)
    sessions = [login(http), login(http)]
    assert http.post("/v1/auth/password/forgot", json={"email": EMAIL}).status_code == 202
    token = auth.token_from_mail(EMAIL, "Reset your password")
    weak = http.post("/v1/auth/password/reset", json={"token": token, "password": "password123456"})
    problem(weak, 422, "weak-password")  # the link still works after a refused password
    reset = http.post("/v1/auth/password/reset", json={"token": token, "password": NEW_PASSWORD})
    assert reset.status_code == 204, reset.text
    for session in sessions:
        problem(refresh(http, session), 401, "invalid-token")
        problem(me(http, session), 401, "invalid-token")
    again = http.post("/v1/auth/password/reset", json={"token": token, "password": PASSWORD + " again"})
    problem(again, 401, "invalid-token")
    problem(http.post("/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}), 401, "invalid-credentials")
    assert me(http, login(http, password=NEW_PASSWORD)).status_code == 200


def test_reset_link_dies_when_the_password_changed_meanwhile(auth: AuthStack, http: httpx.Client):
    sign_up_and_verify(auth, http)
    session = login(http)
    assert http.post("/v1/auth/password/forgot", json={"email": EMAIL}).status_code == 202
    token = auth.token_from_mail(EMAIL, "Reset your password")
    changed = http.post(
        "/v1/auth/password/change",
        json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
        headers=bearer(session),
    )
    assert changed.status_code == 204, changed.text
    stale = http.post("/v1/auth/password/reset", json={"token": token, "password": "a third quiet password"})
    problem(stale, 401, "invalid-token")
    login(http, password=NEW_PASSWORD)


def test_change_password_needs_the_current_one_and_ends_other_sessions(auth: AuthStack, http: httpx.Client):
    sign_up_and_verify(auth, http)
    this, other = login(http), login(http)
    for current in (None, "not the password at all"):
        refused = http.post(
            "/v1/auth/password/change",
            json={"currentPassword": current, "newPassword": NEW_PASSWORD},
            headers=bearer(this),
        )
        problem(refused, 401, "invalid-credentials")
    weak = http.post(
        "/v1/auth/password/change",
        json={"currentPassword": PASSWORD, "newPassword": "qwertyuiop123"},
        headers=bearer(this),
    )
    problem(weak, 422, "weak-password")
    changed = http.post(
        "/v1/auth/password/change",
        json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
        headers=bearer(this),
    )
    assert changed.status_code == 204, changed.text
    assert me(http, this).status_code == 200
    assert refresh(http, this).status_code == 200, "this session stays"
    problem(me(http, other), 401, "invalid-token")
    problem(refresh(http, other), 401, "invalid-token")
    auth.mail_to(EMAIL, "Your password was changed")
    problem(http.post("/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}), 401, "invalid-credentials")
    login(http, password=NEW_PASSWORD)


# -- email address ---------------------------------------------------------------------------


def test_change_email_with_reverification(auth: AuthStack, http: httpx.Client):
    sign_up_and_verify(auth, http)
    session = login(http)
    new = "ana.new@example.com"
    wrong = http.post(
        "/v1/auth/email/change", json={"newEmail": new, "password": NEW_PASSWORD}, headers=bearer(session)
    )
    problem(wrong, 401, "invalid-credentials")
    asked = http.post("/v1/auth/email/change", json={"newEmail": new, "password": PASSWORD}, headers=bearer(session))
    assert asked.status_code == 202, asked.text
    token = auth.token_from_mail(new, "Confirm your new email address")
    # Nothing changes until the link is opened.
    assert http.get("/v1/auth/user", headers=bearer(session)).json()["email"] == EMAIL
    confirmed = http.post("/v1/auth/email/change/confirm", json={"token": token})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["email"] == new and confirmed.json()["emailVerified"] is True
    notice = auth.mail_to(EMAIL, "Your email address was changed")
    assert new in text_of(notice)
    problem(http.post("/v1/auth/email/change/confirm", json={"token": token}), 401, "invalid-token")
    login(http, email=new)
    problem(http.post("/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}), 401, "invalid-credentials")


def test_change_email_to_a_taken_address_is_refused(auth: AuthStack, http: httpx.Client):
    sign_up_and_verify(auth, http)
    sign_up_and_verify(auth, http, email="bo@example.com")
    session = login(http)
    taken = http.post(
        "/v1/auth/email/change", json={"newEmail": "BO@example.com", "password": PASSWORD}, headers=bearer(session)
    )
    problem(taken, 409, "email-taken")


# -- magic links -----------------------------------------------------------------------------


def test_magic_link_signs_in_an_existing_user_once(auth: AuthStack, http: httpx.Client):
    sign_up_and_verify(auth, http)
    asked = http.post("/v1/auth/magic-link", json={"email": EMAIL})
    assert asked.status_code == 202, asked.text
    token = auth.token_from_mail(EMAIL, "Your sign-in link")
    answer = http.post("/v1/auth/magic-link/verify", json={"token": token})
    assert answer.status_code == 200, answer.text
    assert me(http, answer.json()).json()["amr"] == ["email"]
    problem(http.post("/v1/auth/magic-link/verify", json={"token": token}), 401, "invalid-token")


def test_magic_link_makes_an_account_when_sign_up_is_open(auth: AuthStack, http: httpx.Client):
    assert http.post("/v1/auth/magic-link", json={"email": "new@example.com"}).status_code == 202
    token = auth.token_from_mail("new@example.com", "Your sign-in link")
    answer = http.post("/v1/auth/magic-link/verify", json={"token": token})
    assert answer.status_code == 200, answer.text
    user = http.get("/v1/auth/user", headers=bearer(answer.json())).json()
    assert user["email"] == "new@example.com" and user["emailVerified"] is True and user["hasPassword"] is False


def test_magic_link_sends_nothing_to_an_unknown_address_when_sign_up_is_closed(auth: AuthStack, http: httpx.Client):
    sign_up_and_verify(auth, http)
    configure(auth, {"allowSignup": False}, fresh_database=False)
    assert http.post("/v1/auth/magic-link", json={"email": "new@example.com"}).status_code == 202
    assert http.post("/v1/auth/magic-link", json={"email": EMAIL}).status_code == 202
    auth.mail_to(EMAIL, "Your sign-in link")  # sent after the other one would have been
    time.sleep(0.5)
    assert auth.mails_to("new@example.com") == []


# -- sessions --------------------------------------------------------------------------------


def test_sessions_list_shows_devices_and_can_be_revoked(auth: AuthStack, http: httpx.Client):
    sign_up_and_verify(auth, http)
    browser = login(http, headers={"User-Agent": CHROME_ON_MAC})
    script = login(http, headers={"User-Agent": "acme-sync/2.1 (linux)"})
    third = login(http)
    listed = http.get("/v1/auth/sessions", headers=bearer(browser))
    assert listed.status_code == 200, listed.text
    items = {s["id"]: s for s in listed.json()["items"]}
    assert set(items) == {browser["sessionId"], script["sessionId"], third["sessionId"]}
    mine = items[browser["sessionId"]]
    assert mine["current"] is True and mine["device"] == "Chrome on macOS" and mine["userAgent"] == CHROME_ON_MAC
    assert mine["ip"] == "127.0.0.1" and mine["amr"] == ["pwd"]
    assert items[script["sessionId"]]["device"] == "acme-sync/2.1" and items[script["sessionId"]]["current"] is False
    # Revoke one.
    gone = http.delete(f"/v1/auth/sessions/{script['sessionId']}", headers=bearer(browser))
    assert gone.status_code == 204, gone.text
    problem(me(http, script), 401, "invalid-token")
    problem(refresh(http, script), 401, "invalid-token")
    problem(http.delete(f"/v1/auth/sessions/{script['sessionId']}", headers=bearer(browser)), 404, "not-found")
    # Someone else's session is not yours to end.
    sign_up_and_verify(auth, http, email="bo@example.com")
    bo = login(http, email="bo@example.com")
    problem(http.delete(f"/v1/auth/sessions/{bo['sessionId']}", headers=bearer(browser)), 404, "not-found")
    assert me(http, bo).status_code == 200
    # Revoke the others.
    assert http.delete("/v1/auth/sessions", headers=bearer(browser)).status_code == 204
    problem(me(http, third), 401, "invalid-token")
    remaining = http.get("/v1/auth/sessions", headers=bearer(browser)).json()["items"]
    assert [s["id"] for s in remaining] == [browser["sessionId"]]
    assert me(http, bo).status_code == 200


def test_logout_ends_the_session(auth: AuthStack, http: httpx.Client):
    sign_up_and_verify(auth, http)
    session, other = login(http), login(http)
    assert http.post("/v1/auth/logout", headers=bearer(session)).status_code == 204
    problem(me(http, session), 401, "invalid-token")
    problem(refresh(http, session), 401, "invalid-token")
    problem(http.post("/v1/auth/logout", headers=bearer(session)), 401, "invalid-token")
    assert me(http, other).status_code == 200


def test_idle_session_ends(auth: AuthStack, http: httpx.Client):
    configure(auth, {"sessionIdleTimeout": "2s"})
    sign_up_and_verify(auth, http)
    session = login(http)
    time.sleep(1.0)
    renewed = refresh(http, session)
    assert renewed.status_code == 200, "a refresh inside the idle timeout keeps the session"
    time.sleep(1.5)
    assert me(http, renewed.json()).status_code == 200, "the refresh restarted the idle clock"
    time.sleep(1.0)
    problem(refresh(http, renewed.json()), 401, "invalid-token")
    problem(me(http, renewed.json()), 401, "invalid-token")


def test_session_ends_at_its_absolute_lifetime(auth: AuthStack, http: httpx.Client):
    configure(auth, {"refreshTokenLifetime": "3s"})
    sign_up_and_verify(auth, http)
    session = login(http)
    time.sleep(1.0)
    renewed = refresh(http, session)
    assert renewed.status_code == 200, renewed.text
    time.sleep(1.2)
    renewed = refresh(http, renewed.json())
    assert renewed.status_code == 200, "still inside the lifetime"
    time.sleep(1.2)
    problem(refresh(http, renewed.json()), 401, "invalid-token")


# -- cookie mode ----------------------------------------------------------------------------


def set_cookies(answer: httpx.Response) -> dict[str, str]:
    """Set-Cookie headers by cookie name."""
    return {header.split("=", 1)[0]: header for header in answer.headers.get_list("set-cookie")}


def test_cookie_mode_session_with_csrf_protection(auth: AuthStack, http: httpx.Client):
    configure(auth, {"cookies": {"secure": False}})
    sign_up_and_verify(auth, http)
    answer = http.post("/v1/auth/login", json={"email": EMAIL, "password": PASSWORD, "mode": "cookie"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "accessToken" not in body and "refreshToken" not in body and body["csrfToken"]
    cookies = set_cookies(answer)
    assert set(cookies) == {"sy_at", "sy_rt", "sy_csrf"}
    for name in ("sy_at", "sy_rt"):
        assert "HttpOnly" in cookies[name] and "SameSite=lax" in cookies[name] and "Secure" not in cookies[name]
    assert "Path=/v1/auth" in cookies["sy_rt"] and "HttpOnly" not in cookies["sy_csrf"]
    assert http.cookies["sy_csrf"] == body["csrfToken"]
    # Safe requests need no CSRF token.
    who = http.get("/v1/auth/me")
    assert who.status_code == 200 and who.json()["sessionId"] == body["sessionId"]
    # Unsafe ones do.
    problem(http.post("/v1/auth/token/refresh", json={}), 403, "csrf")
    problem(http.post("/v1/auth/logout"), 403, "csrf")
    problem(http.post("/v1/auth/logout", headers={"X-CSRF-Token": "guess"}), 403, "csrf")
    csrf = {"X-CSRF-Token": body["csrfToken"]}
    renewed = http.post("/v1/auth/token/refresh", json={}, headers=csrf)
    assert renewed.status_code == 200, renewed.text
    assert "accessToken" not in renewed.json() and set(set_cookies(renewed)) == {"sy_at", "sy_rt", "sy_csrf"}
    csrf = {"X-CSRF-Token": renewed.json()["csrfToken"]}
    assert http.get("/v1/auth/me").status_code == 200
    out = http.post("/v1/auth/logout", headers=csrf)
    assert out.status_code == 204, out.text
    assert all("Max-Age=0" in c or "expires=" in c.lower() for c in set_cookies(out).values())
    assert set(set_cookies(out)) == {"sy_at", "sy_rt", "sy_csrf"}
    problem(http.get("/v1/auth/me"), 401, "invalid-token")


def test_secure_cookies_use_the_host_prefix(auth: AuthStack, http: httpx.Client):
    sign_up_and_verify(auth, http)  # cookies.secure is on by default
    answer = http.post("/v1/auth/login", json={"email": EMAIL, "password": PASSWORD, "mode": "cookie"})
    assert answer.status_code == 200, answer.text
    cookies = set_cookies(answer)
    assert set(cookies) == {"__Host-sy_at", "__Secure-sy_rt", "__Host-sy_csrf"}
    for name, header in cookies.items():
        attributes = [a.strip().lower() for a in header.split(";")[1:]]
        assert "secure" in attributes, header
        if name.startswith("__Host-"):
            assert "path=/" in attributes and not any(a.startswith("domain=") for a in attributes), header
    assert "httponly" in cookies["__Host-sy_at"].lower() and "httponly" in cookies["__Secure-sy_rt"].lower()
    # The browser would send them back over HTTPS; here by hand.
    access = cookies["__Host-sy_at"].split(";", 1)[0].split("=", 1)[1]
    who = httpx.get(f"{auth.url}/v1/auth/me", cookies={"__Host-sy_at": access})
    assert who.status_code == 200, who.text


# -- capabilities ---------------------------------------------------------------------------


def test_without_email_the_email_flows_say_so_and_login_works(auth: AuthStack, http: httpx.Client):
    configure(auth, {"requireEmailVerification": False}, capabilities={"email": False})
    assert http.post("/v1/auth/signup", json={"email": EMAIL, "password": PASSWORD}).status_code == 201
    session = login(http)
    for path, body in [
        ("/v1/auth/password/forgot", {"email": EMAIL}),
        ("/v1/auth/magic-link", {"email": EMAIL}),
        ("/v1/auth/verify-email/resend", {"email": EMAIL}),
        ("/v1/auth/verify-email/resend", {"email": "nobody@example.com"}),
    ]:
        detail = problem(http.post(path, json=body), 503, "auth-not-configured")["detail"]
        assert "turn on the email capability" in detail, detail
    changed = http.post(
        "/v1/auth/email/change", json={"newEmail": "ana2@example.com", "password": PASSWORD}, headers=bearer(session)
    )
    problem(changed, 503, "auth-not-configured")
    configure(auth, capabilities={"email": False})  # verification on, but no way to send the link
    signup = http.post("/v1/auth/signup", json={"email": "bo@example.com", "password": PASSWORD})
    assert "emailFrom" in problem(signup, 503, "auth-not-configured")["detail"]
    time.sleep(0.5)
    assert auth.smtp.messages == []


def test_auth_capability_off(auth: AuthStack, http: httpx.Client):
    configure(auth, capabilities={"auth": False})
    for answer in (
        http.post("/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}),
        http.get("/v1/auth/me", headers={"Authorization": "Bearer x.y.z"}),
        http.get("/.well-known/jwks.json"),
    ):
        assert "spec.capabilities.auth" in problem(answer, 503, "capability-off")["detail"]


# -- enumeration -----------------------------------------------------------------------------

VARYING_HEADERS = {"date", "server", "traceparent", "x-request-id"}
TRACE_ID = re.compile(rb'"traceId":"[0-9a-f]{32}"')
"""Every request's own trace id (random, the same length), in problems once telemetry is on."""


def comparable(answer: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    headers = {k: v for k, v in answer.headers.items() if k.lower() not in VARYING_HEADERS}
    return answer.status_code, TRACE_ID.sub(b'"traceId":"<32 hex>"', answer.content), headers


def test_answers_do_not_tell_whether_an_address_has_an_account(auth: AuthStack, http: httpx.Client):
    sign_up_and_verify(auth, http)
    assert http.post("/v1/auth/signup", json={"email": "pending@example.com", "password": PASSWORD}).status_code == 202
    unknown = "nobody@example.com"
    for path, body in [
        ("/v1/auth/signup", {"password": PASSWORD}),
        ("/v1/auth/verify-email/resend", {}),
        ("/v1/auth/password/forgot", {}),
        ("/v1/auth/magic-link", {}),
    ]:
        answers = [http.post(path, json=body | {"email": email}) for email in (EMAIL, "pending@example.com", unknown)]
        assert answers[0].status_code == 202, answers[0].text
        assert comparable(answers[0]) == comparable(answers[1]) == comparable(answers[2]), path
    wrong = http.post("/v1/auth/login", json={"email": EMAIL, "password": NEW_PASSWORD})
    # (the sign-up above made an account for `unknown`)
    missing = http.post("/v1/auth/login", json={"email": "stranger@example.com", "password": PASSWORD})
    assert comparable(wrong) == comparable(missing)


def test_failed_logins_take_as_long_for_unknown_addresses(auth: AuthStack, http: httpx.Client):
    configure(auth, {"lockout": {"maxFailures": 100}})
    sign_up_and_verify(auth, http)
    timings: dict[str, list[float]] = {"known": [], "unknown": []}
    for attempt in range(17):
        for kind, email in (("known", EMAIL), ("unknown", f"nobody{attempt}@example.com")):
            started = time.perf_counter()
            answer = http.post("/v1/auth/login", json={"email": email, "password": NEW_PASSWORD})
            elapsed = time.perf_counter() - started
            assert answer.status_code == 401, answer.text
            if attempt >= 2:  # the first ones warm up connections and caches
                timings[kind].append(elapsed)
    ratio = statistics.median(timings["unknown"]) / statistics.median(timings["known"])
    assert 0.67 <= ratio <= 1.5, f"unknown/known median login time {ratio:.2f}: {timings}"


def wait_until_idle(timeout: float = 5.0) -> None:
    """Until the work the answers before left running has finished (the api runs in this
    process), as a patient attacker would wait between tries."""
    deadline = time.monotonic() + timeout
    while after_answer_tasks and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.1)  # and the worker's sending of the mail it queued


def median_times(http: httpx.Client, path: str, bodies: dict[str, Any], tries: int = 17) -> dict[str, float]:
    """Median answer time of each kind of request, alternating, each after the work the one
    before left running has finished."""
    timings: dict[str, list[float]] = {kind: [] for kind in bodies}
    for attempt in range(tries):
        for kind, body in bodies.items():
            wait_until_idle()
            started = time.perf_counter()
            answer = http.post(path, json=body(attempt) if callable(body) else body)
            elapsed = time.perf_counter() - started
            assert answer.status_code == 202, answer.text
            if attempt >= 2:
                timings[kind].append(elapsed)
    return {kind: statistics.median(values) for kind, values in timings.items()}


@pytest.mark.parametrize(
    ("path", "known"),
    [
        ("/v1/auth/password/forgot", EMAIL),
        ("/v1/auth/verify-email/resend", "pending@example.com"),
        ("/v1/auth/signup", EMAIL),
    ],
)
def test_link_requests_take_as_long_for_unknown_addresses(auth: AuthStack, http: httpx.Client, path: str, known: str):
    """The mail (or the account) is made after the answer: queueing a reset mail used to add
    15 ms that an unknown address did not cost."""
    configure(auth, {"lockout": {"maxFailures": 100}})
    sign_up_and_verify(auth, http)
    assert http.post("/v1/auth/signup", json={"email": "pending@example.com", "password": PASSWORD}).status_code == 202
    password = {"password": PASSWORD} if path.endswith("signup") else {}
    medians = median_times(
        http,
        path,
        {
            "known": {"email": known} | password,
            "unknown": lambda attempt: {"email": f"nobody{attempt}@example.com"} | password,
        },
    )
    ratio = medians["unknown"] / medians["known"]
    assert 0.67 <= ratio <= 1.5, f"unknown/known median answer time {ratio:.2f}: {medians}"
    auth.mail_to(known, "")  # the known address got its mail all the same


def test_reset_ends_sessions_started_under_a_longer_lifetime(auth: AuthStack, http: httpx.Client):
    sign_up_and_verify(auth, http)
    old = login(http)  # refreshTokenLifetime 720h
    configure(auth, {"refreshTokenLifetime": "2s"}, fresh_database=False)
    login(http)
    time.sleep(2.5)  # the short session has ended; the old one lives on
    assert me(http, old).status_code == 200
    assert http.post("/v1/auth/password/forgot", json={"email": EMAIL}).status_code == 202
    token = auth.token_from_mail(EMAIL, "Reset your password")
    assert http.post("/v1/auth/password/reset", json={"token": token, "password": NEW_PASSWORD}).status_code == 204
    problem(me(http, old), 401, "invalid-token")
    problem(refresh(http, old), 401, "invalid-token")


def test_change_email_counts_wrong_passwords_towards_the_lockout(auth: AuthStack, http: httpx.Client):
    configure(auth, {"lockout": {"maxFailures": 2, "baseDelay": "1m"}})
    sign_up_and_verify(auth, http)
    session = login(http)
    for _ in range(2):
        wrong = http.post(
            "/v1/auth/email/change",
            json={"newEmail": "x@example.com", "password": "guess " + PASSWORD},
            headers=bearer(session),
        )
        problem(wrong, 401, "invalid-credentials")
    right = http.post(
        "/v1/auth/email/change", json={"newEmail": "x@example.com", "password": PASSWORD}, headers=bearer(session)
    )
    problem(right, 429, "too-many-attempts")


def test_an_email_template_named_auth_kind_replaces_the_built_in_mail(auth: AuthStack, http: httpx.Client):
    optional = {"required": False}
    template = {
        "subject": "Welcome to {{ appName }}: one more step",
        "text": "Hi {{ name or email }}, confirm here: {{ link }} (valid {{ expiresIn }})",
        "variables": {"link": {}, "email": {}, "name": optional, "expiresIn": optional, "appName": optional},
    }
    configure(auth, email_templates={"auth-verify-email": template})
    answer = http.post("/v1/auth/signup", json={"email": EMAIL, "password": PASSWORD, "profile": {"name": "Ana"}})
    assert answer.status_code == 202, answer.text
    message = auth.mail_to(EMAIL, "Welcome to demo: one more step")
    assert text_of(message).startswith("Hi Ana, confirm here: https://app.acme.dev/auth/verify-email?token=")
    assert "(valid 24 hours)" in text_of(message)
    token = auth.token_from_mail(EMAIL, "Welcome to demo")
    assert http.post("/v1/auth/verify-email", json={"token": token}).status_code == 200


def test_a_magic_link_to_an_unverified_account_drops_what_someone_else_may_have_set(
    auth: AuthStack, http: httpx.Client
):
    """Pre-hijacking: someone signs up with another's address (verification off, so they
    get a session); when the owner signs in by a link, the intruder's password and session
    no longer work."""
    configure(auth, {"requireEmailVerification": False})
    intruder = http.post("/v1/auth/signup", json={"email": EMAIL, "password": PASSWORD})
    assert intruder.status_code == 201, intruder.text
    auth.mail_to(EMAIL, "Confirm your email")
    assert http.post("/v1/auth/magic-link", json={"email": EMAIL}).status_code == 202
    owner = http.post("/v1/auth/magic-link/verify", json={"token": auth.token_from_mail(EMAIL, "Your sign-in link")})
    assert owner.status_code == 200, owner.text
    problem(me(http, intruder.json()), 401, "invalid-token")
    problem(http.post("/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}), 401, "invalid-credentials")
    user = http.get("/v1/auth/user", headers=bearer(owner.json())).json()
    assert user["emailVerified"] is True and user["hasPassword"] is False
    # A verified account keeps its password and sessions.
    first = http.post("/v1/auth/magic-link", json={"email": EMAIL})
    assert first.status_code == 202
    wait_for_mails(auth, EMAIL, 3)
    again = http.post("/v1/auth/magic-link/verify", json={"token": auth.token_from_mail(EMAIL, "Your sign-in link")})
    assert again.status_code == 200 and me(http, owner.json()).status_code == 200


def test_a_magic_link_dies_when_the_address_changes(auth: AuthStack, http: httpx.Client):
    sign_up_and_verify(auth, http)
    session = login(http)
    assert http.post("/v1/auth/magic-link", json={"email": EMAIL}).status_code == 202
    link = auth.token_from_mail(EMAIL, "Your sign-in link")
    new = "ana.new@example.com"
    asked = http.post("/v1/auth/email/change", json={"newEmail": new, "password": PASSWORD}, headers=bearer(session))
    assert asked.status_code == 202, asked.text
    confirm = http.post("/v1/auth/email/change/confirm", json={"token": auth.token_from_mail(new, "Confirm your new")})
    assert confirm.status_code == 200, confirm.text
    stale = http.post("/v1/auth/magic-link/verify", json={"token": link})
    assert "former email address" in problem(stale, 401, "invalid-token")["detail"]


def test_a_reset_link_dies_when_the_address_changes(auth: AuthStack, http: httpx.Client):
    sign_up_and_verify(auth, http)
    session = login(http)
    assert http.post("/v1/auth/password/forgot", json={"email": EMAIL}).status_code == 202
    link = auth.token_from_mail(EMAIL, "Reset your password")
    new = "ana.new@example.com"
    asked = http.post("/v1/auth/email/change", json={"newEmail": new, "password": PASSWORD}, headers=bearer(session))
    assert asked.status_code == 202, asked.text
    confirm = http.post("/v1/auth/email/change/confirm", json={"token": auth.token_from_mail(new, "Confirm your new")})
    assert confirm.status_code == 200, confirm.text
    stale = http.post("/v1/auth/password/reset", json={"token": link, "password": NEW_PASSWORD})
    problem(stale, 401, "invalid-token")
    login(http, email=new)
