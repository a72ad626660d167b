"""The password and email-link flows through HTTP against the real api app, with the auth
emails sent by a real worker to an SMTP sink, real Redis and FerretDB."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from stackyard_harness.auth_stack import AuthStack, flushed_redis_url
from stackyard_harness.smtp import SmtpSink

PASSWORD = "a long and quiet river"


@pytest.fixture(scope="module")
def running(tmp_path_factory, redis_server, mongo_server) -> Iterator[AuthStack]:  # type: ignore[no-untyped-def]
    with SmtpSink() as sink:
        stack = AuthStack(
            tmp_path_factory.mktemp("auth"), flushed_redis_url(redis_server.url, 8), mongo_server.url, sink
        )
        yield from stack.serve()


@pytest.fixture
def auth(running: AuthStack) -> AuthStack:
    running.smtp.clear()
    running.configure()
    return running


@pytest.fixture
def http(auth: AuthStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=auth.url, timeout=10) as client:
        yield client


def sign_up_and_verify(auth: AuthStack, http: httpx.Client, email: str = "ana@example.com") -> None:
    answer = http.post("/v1/auth/signup", json={"email": email, "password": PASSWORD, "profile": {"name": "Ana"}})
    assert answer.status_code == 202, answer.text
    token = auth.token_from_mail(email, "Confirm your email")
    verified = http.post("/v1/auth/verify-email", json={"token": token})
    assert verified.status_code == 200, verified.text
    assert verified.json()["emailVerified"] is True


def login(http: httpx.Client, email: str = "ana@example.com", password: str = PASSWORD) -> dict:
    answer = http.post("/v1/auth/login", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_sign_up_verify_login_and_me(auth: AuthStack, http: httpx.Client):
    sign_up_and_verify(auth, http)
    session = login(http)
    me = http.get("/v1/auth/me", headers={"Authorization": f"Bearer {session['accessToken']}"})
    assert me.status_code == 200, me.text
    assert me.json()["email"] == "ana@example.com" and me.json()["amr"] == ["pwd"]


def test_reused_refresh_token_revokes_session(auth: AuthStack, http: httpx.Client):
    sign_up_and_verify(auth, http)
    first = login(http)
    second = http.post("/v1/auth/token/refresh", json={"refreshToken": first["refreshToken"]})
    assert second.status_code == 200, second.text
    reused = http.post("/v1/auth/token/refresh", json={"refreshToken": first["refreshToken"]})
    assert reused.status_code == 401 and reused.json()["type"].endswith("/refresh-token-reused")
    after = http.post("/v1/auth/token/refresh", json={"refreshToken": second.json()["refreshToken"]})
    assert after.status_code == 401, "the whole session is revoked, the newest token too"
    me = http.get("/v1/auth/me", headers={"Authorization": f"Bearer {second.json()['accessToken']}"})
    assert me.status_code == 401
