"""The Python SDK's auth calls (`.auth`, `.auth.with_token(...)`, `.auth.admin`) and the
`stackyard users` command against the real api app with a real worker mailing the auth
emails to an SMTP sink, real Redis (database 15 of its own) and FerretDB: the flows of a
user, the typed problems, the calls that must never be sent twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pyotp
import pytest
import yaml
from auth_http import PASSWORD
from stackyard.auth.contract import Accepted, MfaRequired, Session, User
from stackyard.client import (
    AccountDisabled,
    AdminKeyMissing,
    AdminKeyRefused,
    AsyncStackyard,
    EmailNotVerified,
    EmailTaken,
    InvalidCredentials,
    InvalidToken,
    NotFound,
    RefreshTokenReused,
    RetryPolicy,
    Stackyard,
    TooManyAttempts,
    WeakPassword,
)
from stackyard_harness.auth_stack import ADMIN_API_KEY, AuthStack

FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05, total=10)
ROOMY = {"lockout": {"ipMaxAttempts": 100000}}
"""Every request of this module comes from 127.0.0.1: no per-IP limit in the way."""
REDIS_DATABASE = 15
RUN_WORKER = True
AUTH_SETTINGS = ROOMY


@pytest.fixture
def stackyard(auth: AuthStack) -> Iterator[Stackyard]:
    with Stackyard(auth.url, retry=FAST) as client:
        yield client


def address() -> str:
    """An address of its own per test: lockouts live in Redis, across the tests' databases."""
    return f"ana-{uuid.uuid4().hex[:8]}@example.com"


def signed_up(stackyard: Stackyard, auth: AuthStack, email: str | None = None) -> str:
    email = email or address()
    assert isinstance(stackyard.auth.sign_up(email, PASSWORD, profile={"name": "Ana"}), Accepted)
    user = stackyard.auth.verify_email(auth.token_from_mail(email, "Confirm your email"))
    assert user.email == email and user.email_verified
    return email


def logged_in(stackyard: Stackyard, email: str, password: str = PASSWORD) -> Session:
    session = stackyard.auth.login(email, password)
    assert isinstance(session, Session), session
    return session


class CountingTransport(httpx.BaseTransport):
    """Sends every request to the api and counts them by path."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request.url.path)
        return self.inner.handle_request(request)


# The flows of a user.


def test_sign_up_verify_login_me_and_logout(stackyard: Stackyard, auth: AuthStack):
    email = address()
    accepted = stackyard.auth.sign_up(email, PASSWORD, profile={"name": "Ana"}, metadata={"plan": "free"})
    assert isinstance(accepted, Accepted) and accepted.status == "accepted"
    with pytest.raises(EmailNotVerified):
        stackyard.auth.login(email, PASSWORD)
    verified = stackyard.auth.verify_email(auth.token_from_mail(email, "Confirm your email"))
    assert isinstance(verified, User) and verified.email_verified and verified.profile["name"] == "Ana"
    session = logged_in(stackyard, email)
    assert session.access_token and session.refresh_token and session.expires_in > 0
    account = stackyard.auth.with_token(session)
    me = account.me()
    assert (me.email, me.session_id, me.amr) == (email, session.session_id, ["pwd"])
    assert account.user().metadata == {"plan": "free"}
    account.logout()
    with pytest.raises(InvalidToken):
        account.me()
    with pytest.raises(InvalidToken):
        stackyard.auth.refresh(session)


def test_refresh_rotates_and_a_reused_refresh_token_ends_the_session(stackyard: Stackyard, auth: AuthStack):
    first = logged_in(stackyard, signed_up(stackyard, auth))
    second = stackyard.auth.refresh(first)
    assert second.refresh_token != first.refresh_token and second.session_id == first.session_id
    assert stackyard.auth.with_token(second).me().session_id == first.session_id
    with pytest.raises(RefreshTokenReused) as reused:
        stackyard.auth.refresh(first.refresh_token or "")
    assert isinstance(reused.value, InvalidToken) and reused.value.status == 401
    with pytest.raises(InvalidToken):
        stackyard.auth.refresh(second)
    with pytest.raises(InvalidToken):
        stackyard.auth.with_token(second).me()


def test_wrong_password_weak_password_and_taken_address_are_typed_problems(stackyard: Stackyard, auth: AuthStack):
    email = signed_up(stackyard, auth)
    with pytest.raises(InvalidCredentials) as wrong:
        stackyard.auth.login(email, "not the password at all")
    assert wrong.value.status == 401 and wrong.value.detail
    with pytest.raises(InvalidCredentials):
        stackyard.auth.login(address(), PASSWORD)
    with pytest.raises(WeakPassword) as weak:
        stackyard.auth.sign_up(address(), "password1234")
    assert weak.value.status == 422
    auth.configure(ROOMY | {"requireEmailVerification": False})
    email = address()
    session = stackyard.auth.sign_up(email, PASSWORD)
    assert isinstance(session, Session), "without verification, sign-up logs in"
    with pytest.raises(EmailTaken):
        stackyard.auth.sign_up(email, PASSWORD)


def test_a_locked_account_raises_too_many_attempts_with_retry_after(auth: AuthStack):
    auth.configure(ROOMY | {"lockout": {"maxFailures": 2, "baseDelay": "30s", "ipMaxAttempts": 100000}})
    transport = CountingTransport()
    with Stackyard(auth.url, retry=FAST, transport=transport) as stackyard:
        email = signed_up(stackyard, auth)
        for _ in range(2):
            with pytest.raises(InvalidCredentials):
                stackyard.auth.login(email, "not the password at all")
        with pytest.raises(TooManyAttempts) as locked:
            stackyard.auth.login(email, PASSWORD)
    assert locked.value.status == 429 and locked.value.retry_after is not None
    assert 0 < locked.value.retry_after <= 30
    assert transport.sent.count("/v1/auth/login") == 3, "a refused login is never sent again"


def test_logins_and_refreshes_are_not_retried_on_401_or_429_whatever_the_policy(auth: AuthStack):
    eager = RetryPolicy(attempts=5, backoff=0.01, max_backoff=0.05, total=10, statuses=frozenset({401, 429, 503}))
    transport = CountingTransport()
    with Stackyard(auth.url, retry=eager, transport=transport) as stackyard:
        email = signed_up(stackyard, auth)
        with pytest.raises(InvalidCredentials):
            stackyard.auth.login(email, "not the password at all")
        session = logged_in(stackyard, email)
        stackyard.auth.refresh(session)
        with pytest.raises(RefreshTokenReused):
            stackyard.auth.refresh(session)
        with pytest.raises(InvalidToken):
            stackyard.auth.with_token(session).me()
    assert transport.sent.count("/v1/auth/login") == 2
    assert transport.sent.count("/v1/auth/token/refresh") == 2
    assert transport.sent.count("/v1/auth/me") == 5, "other calls follow the policy"


def test_profile_metadata_password_change_and_sessions(stackyard: Stackyard, auth: AuthStack):
    email = signed_up(stackyard, auth)
    here, there = logged_in(stackyard, email), logged_in(stackyard, email)
    account = stackyard.auth.with_token(here)
    user = account.update_user(profile={"givenName": "Ana", "name": None}, metadata={"plan": "pro"})
    assert user.profile.get("givenName") == "Ana" and user.profile.get("name") is None
    assert user.metadata == {"plan": "pro"}
    assert account.update_user(profile={"locale": "fr-CA"}).metadata == {"plan": "pro"}, "metadata untouched"
    sessions = account.sessions()
    assert {s.id for s in sessions} == {here.session_id, there.session_id}
    assert [s.id for s in sessions if s.current] == [here.session_id]
    account.revoke_session(there.session_id)
    with pytest.raises(NotFound):
        account.revoke_session(there.session_id)
    third = logged_in(stackyard, email)
    account.revoke_other_sessions()
    assert [s.id for s in account.sessions()] == [here.session_id]
    with pytest.raises(InvalidToken):
        stackyard.auth.with_token(third).me()
    with pytest.raises(InvalidCredentials):
        account.change_password("not the password at all", "another long and quiet river")
    account.change_password(PASSWORD, "another long and quiet river")
    with pytest.raises(InvalidCredentials):
        stackyard.auth.login(email, PASSWORD)
    logged_in(stackyard, email, "another long and quiet river")
    assert account.me().session_id == here.session_id, "the session that changed it lives on"


def test_forgot_and_reset_password_ends_every_session(stackyard: Stackyard, auth: AuthStack):
    email = signed_up(stackyard, auth)
    session = logged_in(stackyard, email)
    assert isinstance(stackyard.auth.forgot_password(email), Accepted)
    assert isinstance(stackyard.auth.forgot_password(address()), Accepted), "the same for an unknown address"
    token = auth.token_from_mail(email, "Reset your password")
    with pytest.raises(WeakPassword):
        stackyard.auth.reset_password(token, "short")
    stackyard.auth.reset_password(token, "a brand new long passphrase")
    with pytest.raises(InvalidToken):
        stackyard.auth.with_token(session).me()
    with pytest.raises(InvalidToken):
        stackyard.auth.reset_password(token, "yet another long passphrase")
    logged_in(stackyard, email, "a brand new long passphrase")


def test_change_email_then_confirm_it(stackyard: Stackyard, auth: AuthStack):
    email, new = signed_up(stackyard, auth), address()
    account = stackyard.auth.with_token(logged_in(stackyard, email))
    with pytest.raises(InvalidCredentials):
        account.change_email(new, "not the password at all")
    assert isinstance(account.change_email(new, PASSWORD), Accepted)
    user = stackyard.auth.confirm_email_change(auth.token_from_mail(new, "Confirm your new email"))
    assert user.email == new and user.email_verified
    logged_in(stackyard, new)


def test_magic_link_logs_in(stackyard: Stackyard, auth: AuthStack):
    email = signed_up(stackyard, auth)
    assert isinstance(stackyard.auth.magic_link(email), Accepted)
    session = stackyard.auth.verify_magic_link(auth.token_from_mail(email, "sign-in link"))
    assert isinstance(session, Session)
    assert stackyard.auth.with_token(session).me().amr != ["pwd"]
    with pytest.raises(InvalidToken):
        stackyard.auth.verify_magic_link("not-a-token")


def test_a_second_factor_makes_login_answer_mfa_required_then_login_mfa_a_session(
    stackyard: Stackyard, auth: AuthStack
):
    email = signed_up(stackyard, auth)
    session = logged_in(stackyard, email)
    bearer = {"Authorization": f"Bearer {session.access_token}"}
    enrolled = httpx.post(f"{auth.url}/v1/auth/mfa/totp/enroll", headers=bearer, timeout=10)
    assert enrolled.status_code == 200, enrolled.text
    totp = pyotp.TOTP(enrolled.json()["secret"])
    confirmed = httpx.post(f"{auth.url}/v1/auth/mfa/totp/confirm", json={"code": totp.now()}, headers=bearer)
    assert confirmed.status_code == 200, confirmed.text
    challenge = stackyard.auth.login(email, PASSWORD)
    assert isinstance(challenge, MfaRequired) and "totp" in challenge.methods
    with pytest.raises(InvalidCredentials):
        stackyard.auth.login_mfa(challenge, "000000" if totp.now() != "000000" else "111111")
    second = stackyard.auth.login_mfa(challenge, confirmed.json()["recoveryCodes"][0])
    assert isinstance(second, Session)
    assert "rcode" in stackyard.auth.with_token(second).me().amr


def test_jwks_verifies_an_access_token_without_calling_the_api(stackyard: Stackyard, auth: AuthStack):
    session = logged_in(stackyard, signed_up(stackyard, auth))
    discovery = stackyard.auth.openid_configuration()
    assert discovery.jwks_uri.endswith("/.well-known/jwks.json")
    keys = {key.kid: key for key in stackyard.auth.jwks().keys}
    header = jwt.get_unverified_header(session.access_token or "")
    key = jwt.PyJWK(keys[header["kid"]].model_dump(exclude_none=True))
    claims = jwt.decode(session.access_token or "", key, algorithms=[header["alg"]], audience=discovery.issuer)
    assert claims["sid"] == session.session_id


async def test_the_async_client_signs_up_logs_in_refreshes_and_logs_out(auth: AuthStack):
    email = address()
    async with AsyncStackyard(auth.url, retry=FAST) as stackyard:
        assert isinstance(await stackyard.auth.sign_up(email, PASSWORD), Accepted)
        await stackyard.auth.verify_email(auth.token_from_mail(email, "Confirm your email"))
        session = await stackyard.auth.login(email, PASSWORD)
        assert isinstance(session, Session)
        assert (await stackyard.auth.with_token(session).me()).email == email
        renewed = await stackyard.auth.refresh(session)
        with pytest.raises(RefreshTokenReused):
            await stackyard.auth.refresh(session)
        with pytest.raises(InvalidToken):
            await stackyard.auth.with_token(renewed).user()
        with pytest.raises(InvalidCredentials):
            await stackyard.auth.login(email, "not the password at all")


# The admin API.


@pytest.fixture
def admin(auth: AuthStack) -> Iterator[Stackyard]:
    with Stackyard(auth.url, admin_key=ADMIN_API_KEY, retry=FAST) as client:
        yield client


def test_admin_creates_searches_and_pages_through_users(admin: Stackyard):
    domain = f"acme-{uuid.uuid4().hex[:6]}.dev"
    team = [f"{name}@{domain}" for name in ("ana", "bo", "cy", "di", "ed")]
    created = [admin.auth.admin.users.create(e, email_verified=True, app_metadata={"tier": "gold"}) for e in team]
    assert created[0].app_metadata == {"tier": "gold"} and created[0].disabled is False
    assert not created[0].has_password
    page = admin.auth.admin.users.list(search=domain, limit=2)
    assert len(page.items) == 2 and page.next_cursor
    everyone = [u.email for u in admin.auth.admin.users.iter(search=domain, page_size=2)]
    assert sorted(everyone) == team, "every page, each user once"
    assert [u.email for u in admin.auth.admin.users.iter(search=f"bo@{domain}", match="prefix")] == [team[1]]
    assert list(admin.auth.admin.users.iter(search=f"o@{domain}", match="prefix")) == []
    with pytest.raises(EmailTaken):
        admin.auth.admin.users.create(team[0])
    with pytest.raises(WeakPassword):
        admin.auth.admin.users.create(f"x@{domain}", password="password1234")


def test_admin_disables_enables_ends_sessions_and_deletes_a_user(admin: Stackyard):
    email = address()
    user = admin.auth.admin.users.create(email, password=PASSWORD, email_verified=True, profile={"name": "Ana"})
    session = logged_in(admin, email)
    detail = admin.auth.admin.users.get(user.id)
    assert [s.id for s in detail.sessions] == [session.session_id] and detail.mfa.totp is False
    disabled = admin.auth.admin.users.disable(user.id)
    assert disabled.disabled is True
    with pytest.raises(AccountDisabled):
        admin.auth.login(email, PASSWORD)
    with pytest.raises(InvalidToken):
        admin.auth.with_token(session).me()
    assert admin.auth.admin.users.enable(user.id).disabled is False
    logged_in(admin, email), logged_in(admin, email)
    assert admin.auth.admin.users.revoke_sessions(user.id) == 2
    assert admin.auth.admin.users.get(user.id).sessions == []
    types = [e.type for e in admin.auth.admin.events.iter(user_id=user.id, page_size=3)]
    assert {"user.created", "user.disabled", "user.enabled", "login.succeeded"} <= set(types)
    assert [e.user_id for e in admin.auth.admin.events.list(type="user.disabled").items] == [user.id]
    deleted = admin.auth.admin.users.delete(user.id)
    assert deleted.id == user.id
    with pytest.raises(NotFound):
        admin.auth.admin.users.get(user.id)
    assert list(admin.auth.admin.events.iter(user_id=user.id, type="login.succeeded")) == []


def test_the_admin_key_is_needed_and_checked(auth: AuthStack, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("STACKYARD_ADMIN_KEY", raising=False)
    transport = CountingTransport()
    with Stackyard(auth.url, retry=FAST, transport=transport) as keyless, pytest.raises(AdminKeyMissing):
        keyless.auth.admin.users.list()
    assert transport.sent == [], "nothing is sent without a key"
    with Stackyard(auth.url, admin_key="not-the-key", retry=FAST) as wrong, pytest.raises(AdminKeyRefused) as refused:
        wrong.auth.admin.users.list()
    assert refused.value.status == 401 and "not-the-key" not in str(refused.value)


async def test_the_async_admin_iterates_users_and_events(auth: AuthStack):
    async with AsyncStackyard(auth.url, admin_key=ADMIN_API_KEY, retry=FAST) as stackyard:
        email = address()
        user = await stackyard.auth.admin.users.create(email, password=PASSWORD, email_verified=True)
        assert [u.id async for u in stackyard.auth.admin.users.iter(search=email)] == [user.id]
        assert isinstance(await stackyard.auth.login(email, PASSWORD), Session)
        events = [e.type async for e in stackyard.auth.admin.events.iter(user_id=user.id)]
        assert {"login.succeeded", "session.created", "user.created"} <= set(events)
        assert (await stackyard.auth.admin.users.disable(user.id)).disabled is True


# The `stackyard users` command.

STACKYARD = Path(sys.executable).with_name("stackyard")


def run(url: str, *args: str, key: str | None = ADMIN_API_KEY, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`stackyard ARGS` against `url` with the admin key in the environment; stdin is not a terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACKYARD_")} | {"STACKYARD_API_URL": url}
    if key is not None:
        env["STACKYARD_ADMIN_KEY"] = key
    return subprocess.run([str(STACKYARD), *args], input=stdin, capture_output=True, text=True, env=env, timeout=60)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def failed(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The one line on stderr of a command that exited with `code`."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_cli_creates_lists_shows_disables_and_enables_a_user(auth: AuthStack):
    if not STACKYARD.exists():
        pytest.fail(f"no {STACKYARD.name} console script next to {sys.executable}: install core (make install)")
    email = address()
    created = json.loads(
        ok(
            run(
                auth.url,
                "-o",
                "json",
                "users",
                "create",
                email,
                "--verified",
                "--name",
                "Ana",
                "--app-metadata",
                '{"tier": "gold"}',
                "--password-stdin",
                stdin=PASSWORD + "\n",
            )
        )
    )
    assert created["email"] == email and created["hasPassword"] and created["appMetadata"] == {"tier": "gold"}
    user_id = created["id"]
    listed = json.loads(ok(run(auth.url, "-o", "json", "users", "list", "--search", email)))
    assert [u["id"] for u in listed["items"]] == [user_id] and listed["nextCursor"] is None
    table = ok(run(auth.url, "users", "list", "--search", email.split("@")[0], "--prefix"))
    assert table.splitlines()[0].split()[:3] == ["ID", "EMAIL", "VERIFIED"] and user_id in table
    with Stackyard(auth.url, retry=FAST) as stackyard:
        session = logged_in(stackyard, email)
    shown = ok(run(auth.url, "users", "show", user_id))
    assert email in shown and "SESSIONS:" in shown and session.session_id in shown
    sessions = yaml.safe_load(ok(run(auth.url, "-o", "yaml", "users", "sessions", user_id)))
    assert [s["id"] for s in sessions["items"]] == [session.session_id]
    assert "disabled " + email in ok(run(auth.url, "users", "disable", user_id))
    assert json.loads(ok(run(auth.url, "-o", "json", "users", "show", user_id)))["disabled"] is True
    assert "enabled " + email in ok(run(auth.url, "users", "enable", user_id))
    events = json.loads(ok(run(auth.url, "-o", "json", "users", "events", "--user", user_id, "--all", "--limit", "2")))
    assert {"user.created", "user.disabled", "user.enabled"} <= {e["type"] for e in events["items"]}


def test_cli_revokes_sessions_and_deletes_only_with_yes_when_nobody_can_confirm(auth: AuthStack):
    email = address()
    with Stackyard(auth.url, admin_key=ADMIN_API_KEY, retry=FAST) as stackyard:
        user = stackyard.auth.admin.users.create(email, password=PASSWORD, email_verified=True)
        logged_in(stackyard, email)
    assert f"ended 1 session of {user.id}" in ok(run(auth.url, "users", "revoke-sessions", user.id))
    refused = failed(run(auth.url, "users", "delete", user.id), 2)
    assert "--yes" in refused
    assert json.loads(ok(run(auth.url, "-o", "json", "users", "show", user.id)))["id"] == user.id, "still there"
    deleted = json.loads(ok(run(auth.url, "-o", "json", "users", "delete", user.id, "--yes")))
    assert deleted["id"] == user.id
    gone = failed(run(auth.url, "users", "show", user.id), 1)
    assert "Not found" in gone and "(HTTP 404)" in gone


def test_cli_without_or_with_a_wrong_admin_key_fails_in_one_line_that_never_shows_it(auth: AuthStack):
    missing = failed(run(auth.url, "users", "list", key=None), 2)
    assert "STACKYARD_ADMIN_KEY" in missing
    wrong = run(auth.url, "users", "list", key="a-wrong-key-0123")
    assert "(HTTP 401)" in failed(wrong, 1)
    assert "a-wrong-key-0123" not in wrong.stdout + wrong.stderr
    given = run(auth.url, "users", "--admin-key", ADMIN_API_KEY, "list", key=None)
    assert ok(given).startswith("ID")
    assert ADMIN_API_KEY not in given.stdout + given.stderr
    bad_json = run(auth.url, "users", "create", address(), "--metadata", "[1]")
    assert bad_json.returncode == 2 and "JSON object" in bad_json.stderr
