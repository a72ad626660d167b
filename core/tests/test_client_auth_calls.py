"""What the SDK's auth calls send, which of them may be sent again, and how the auth
problems map to exceptions: the pure parts (the flows themselves run against the real api in
images/api/tests/test_client_auth.py)."""

from __future__ import annotations

import httpx
import pytest
from stackyard.client import (
    AdminKeyMissing,
    AuthNotConfigured,
    InvalidToken,
    RateLimited,
    RefreshTokenReused,
    RetryPolicy,
    Session,
    Stackyard,
    StackyardError,
    TooManyAttempts,
    Unauthorized,
    WeakPassword,
    admin_calls,
    auth_calls,
)
from stackyard.problems import PROBLEM_BASE

SESSION = Session(access_token="at", refresh_token="rt", expires_in=900, session_id="ses_1")
COOKIE_SESSION = Session(expires_in=900, session_id="ses_1", csrf_token="c")


def problem(status: int, slug: str, headers: dict[str, str] | None = None, **members: object) -> httpx.Response:
    body = {"type": PROBLEM_BASE + slug, "title": slug, "status": status, "detail": "d"} | members
    return httpx.Response(status, json=body, headers=headers)


def test_credential_calls_are_never_retried_on_401_or_429_nor_resent_after_a_broken_connection():
    eager = RetryPolicy(statuses=frozenset({401, 429, 503}))
    for call in (
        auth_calls.login("ana@example.com", "pw"),
        auth_calls.login_mfa("mfa-token", "123456"),
        auth_calls.refresh("rt"),
        auth_calls.verify_magic_link("link-token"),
        auth_calls.change_password("at", "old", "new"),
    ):
        assert not call.repeatable, call.path
        assert not call.retries(401, eager) and not call.retries(429, eager), call.path
        assert call.retries(503, eager), f"{call.path}: a 503 means the api did nothing"
    assert auth_calls.me("at").retries(401, eager), "other calls follow the policy"


def test_bodies_are_camel_case_and_leave_out_what_was_not_given():
    assert auth_calls.login("ana@example.com", "pw").json == {
        "email": "ana@example.com",
        "password": "pw",
        "mode": "bearer",
    }
    assert auth_calls.refresh(SESSION).json == {"refreshToken": "rt", "mode": "bearer"}
    assert auth_calls.login_mfa("t", "1").json == {"mfaToken": "t", "code": "1", "mode": "bearer"}
    change = auth_calls.change_password("at", None, "a new long passphrase")
    assert change.json == {"newPassword": "a new long passphrase"}
    assert change.headers == {"Authorization": "Bearer at"}


def test_update_user_sends_only_the_profile_fields_given_and_null_to_clear_one():
    call = auth_calls.update_user("at", {"givenName": "Ana", "picture": None}, None)
    assert (call.method, call.json) == ("PATCH", {"profile": {"givenName": "Ana", "picture": None}})
    assert auth_calls.update_user("at", None, {"plan": "pro"}).json == {"metadata": {"plan": "pro"}}


def test_a_call_that_needs_a_token_is_refused_before_it_is_sent_without_one():
    with Stackyard("http://127.0.0.1:9") as stackyard:
        with pytest.raises(ValueError, match="access token"):
            stackyard.auth.with_token("")
        with pytest.raises(ValueError, match="cookie"):
            stackyard.auth.with_token(COOKIE_SESSION)
    with pytest.raises(ValueError, match="cookie"):
        auth_calls.refresh(COOKIE_SESSION)


def test_auth_problems_become_their_exceptions():
    reused = StackyardError.from_response(problem(401, "refresh-token-reused"))
    assert type(reused) is RefreshTokenReused and isinstance(reused, InvalidToken | Unauthorized)
    assert type(StackyardError.from_response(problem(422, "weak-password"))) is WeakPassword
    assert type(StackyardError.from_response(problem(503, "auth-not-configured"))) is AuthNotConfigured
    assert type(StackyardError.from_response(problem(401, "something-new"))) is Unauthorized


def test_a_problem_type_is_trusted_only_under_its_own_status():
    odd = StackyardError.from_response(problem(503, "too-many-attempts"))
    assert type(odd) is not TooManyAttempts and odd.status == 503


def test_too_many_attempts_carries_retry_after_from_the_header_or_the_body():
    from_body = StackyardError.from_response(problem(429, "too-many-attempts", retryAfter=42))
    assert isinstance(from_body, TooManyAttempts) and isinstance(from_body, RateLimited)
    assert from_body.retry_after == 42
    from_header = StackyardError.from_response(problem(429, "too-many-attempts", retryAfter=42), retry_after=41.5)
    assert from_header.retry_after == 41.5


def test_the_admin_key_comes_from_the_argument_or_the_environment_and_goes_only_on_admin_calls(
    monkeypatch: pytest.MonkeyPatch,
):
    sent: list[tuple[str, str | None]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append((request.url.path, request.headers.get("authorization")))
        admin = request.url.path.startswith("/v1/auth/admin/")
        return httpx.Response(200, json={"items": [], "nextCursor": None} if admin else {"items": []})

    monkeypatch.setenv("STACKYARD_ADMIN_KEY", "from-the-environment")
    with Stackyard("http://sy.test", transport=httpx.MockTransport(answer)) as stackyard:
        stackyard.auth.admin.users.list()
        stackyard.auth.with_token("an-access-token").sessions()
        shown = repr(stackyard) + repr(stackyard.auth) + repr(stackyard.auth.admin) + repr(stackyard.auth.admin.users)
    assert sent == [
        ("/v1/auth/admin/users", "Bearer from-the-environment"),
        ("/v1/auth/sessions", "Bearer an-access-token"),
    ]
    assert "from-the-environment" not in shown
    with Stackyard("http://sy.test", admin_key="given", transport=httpx.MockTransport(answer)) as stackyard:
        stackyard.auth.admin.events.list()
    assert sent[-1] == ("/v1/auth/admin/events", "Bearer given")


def test_an_admin_call_without_a_key_is_not_sent(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("STACKYARD_ADMIN_KEY", raising=False)
    with pytest.raises(AdminKeyMissing, match="STACKYARD_ADMIN_KEY"):
        admin_calls.get_user(None, "usr_1")
    assert isinstance(AdminKeyMissing(), ValueError)
