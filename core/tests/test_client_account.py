"""The signed-in user's calls of the SDK beyond sign-up and login, against the real api on
real Redis and MongoDB: organisations (`account.orgs`), the second factor (TOTP, recovery
codes), passkeys (with the harness's software authenticator), linked identities and the
OAuth calls a program makes, and web push subscriptions (`stackyard.push`); their problems
as typed exceptions.

Redis database 25."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Iterator
from typing import Any

import pyotp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from stackyard.client import (
    Account,
    AsyncStackyard,
    Forbidden,
    InvalidOAuthState,
    LastOwner,
    MfaRequired,
    NotFound,
    Session,
    Stackyard,
    Unauthorized,
    Unprocessable,
)
from stackyard.config.runtime import NOTIFY_VAPID_PRIVATE_KEY, NOTIFY_VAPID_PUBLIC_KEY
from stackyard.notify.push import new_vapid_keys
from stackyard_harness.auth_stack import APP_URL, AuthStack, flushed_redis_url
from stackyard_harness.smtp import SmtpSink
from stackyard_harness.webauthn_authenticator import SoftwareAuthenticator

REDIS_DATABASE = 25
PASSWORD = "a long and quiet river"
PRIVATE_KEY, PUBLIC_KEY = new_vapid_keys()
VAPID = {NOTIFY_VAPID_PRIVATE_KEY: PRIVATE_KEY, NOTIFY_VAPID_PUBLIC_KEY: PUBLIC_KEY}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server: Any, mongo_server: Any) -> Iterator[AuthStack]:
    with SmtpSink() as sink:
        redis_url = flushed_redis_url(redis_server.url, REDIS_DATABASE)
        running = AuthStack(tmp_path_factory.mktemp("sdk-account"), redis_url, mongo_server.url, sink, run_worker=False)
        yield from running.serve()


@pytest.fixture
def client(stack: AuthStack) -> Iterator[Stackyard]:
    """A fresh user database where signing up logs in at once."""
    stack.configure({"requireEmailVerification": False}, extra_credentials=VAPID)
    stack.reset()
    with Stackyard(stack.url) as sdk:
        yield sdk


def signed_up(client: Stackyard, name: str) -> tuple[Account, Session, str]:
    email = f"{name}.{uuid.uuid4().hex[:6]}@example.com"
    session = client.auth.sign_up(email, PASSWORD)
    assert isinstance(session, Session)
    return client.auth.with_token(session), session, email


def test_organisations_members_and_roles(client: Stackyard):
    ana, _, _ = signed_up(client, "ana")
    ben, _, ben_email = signed_up(client, "ben")

    acme = ana.orgs.create("Acme", metadata={"plan": "team"})
    assert acme.role == "owner" and acme.slug == "acme" and acme.metadata == {"plan": "team"}
    assert [o.id for o in ana.orgs.list()] == [acme.id]
    renamed = ana.orgs.update(acme.id, name="Acme Inc")
    assert renamed.name == "Acme Inc" and ana.orgs.get(acme.id).name == "Acme Inc"

    added = ana.orgs.add_member(acme.id, email=ben_email)
    assert added.role == "member" and added.user_id == ben.me().id
    assert {m.role for m in ana.orgs.members(acme.id)} == {"owner", "member"}
    with pytest.raises(Forbidden):
        ben.orgs.update(acme.id, name="Ben's now")
    assert ana.orgs.change_role(acme.id, added.user_id, "admin").role == "admin"
    assert ben.orgs.get(acme.id).role == "admin"

    with pytest.raises(LastOwner) as last:
        ana.orgs.leave(acme.id)
    assert last.value.status == 409
    ben.orgs.leave(acme.id)
    assert ben.orgs.list() == []
    with pytest.raises(NotFound):
        ben.orgs.get(acme.id)
    ana.orgs.delete(acme.id)
    assert ana.orgs.list() == []


def test_totp_second_factor_and_recovery_codes(client: Stackyard):
    ana, _, email = signed_up(client, "ana")
    enrollment = ana.enroll_totp()
    assert enrollment.otpauth_uri.startswith("otpauth://totp/") and enrollment.digits == 6
    totp = pyotp.TOTP(enrollment.secret)
    codes = ana.confirm_totp(totp.now())
    assert len(codes) >= 8

    challenge = client.auth.login(email, PASSWORD)
    assert isinstance(challenge, MfaRequired)
    session = client.auth.login_mfa(challenge, codes[0])  # a recovery code: no TOTP step to straddle
    assert session.access_token

    fresh = ana.new_recovery_codes(password=PASSWORD)
    assert set(fresh).isdisjoint(codes)
    with pytest.raises(Unprocessable) as refused:
        ana.disable_totp(password="not the password")
    assert refused.value.type.endswith("/invalid-mfa-code") and refused.value.title == "Invalid or used code"
    ana.disable_totp(password=PASSWORD)
    assert isinstance(client.auth.login(email, PASSWORD), Session)


def test_passkeys_registered_listed_renamed_used_and_deleted(client: Stackyard):
    ana, _, email = signed_up(client, "ana")
    device = SoftwareAuthenticator(origin=APP_URL)
    options = ana.passkey_register_options()
    credential = device.register(options.public_key)
    passkey = ana.register_passkey(options.challenge_token, credential, name="Laptop")
    assert passkey.name == "Laptop" and [p.id for p in ana.passkeys()] == [passkey.id]
    assert ana.rename_passkey(passkey.id, "Work laptop").name == "Work laptop"

    login = client.auth.passkey_login_options(email)
    session = client.auth.passkey_login(login.challenge_token, device.authenticate(login.public_key))
    assert isinstance(session, Session) and session.access_token

    ana.delete_passkey(passkey.id)
    assert ana.passkeys() == []
    with pytest.raises(NotFound):
        ana.delete_passkey(passkey.id)


def test_identities_and_oauth_without_identity_providers(client: Stackyard):
    ana, _, _ = signed_up(client, "ana")
    assert ana.identities() == [] and client.auth.oauth_providers() == []
    with pytest.raises(InvalidOAuthState) as refused:
        client.auth.oauth_exchange("a-code-that-was-never-issued")
    assert refused.value.status == 400 and refused.value.type.endswith("/invalid-oauth-state")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_push_subscriptions_of_the_clients_user(stack: AuthStack, client: Stackyard):
    _, session, _ = signed_up(client, "ana")
    assert client.push.vapid_public_key() == PUBLIC_KEY, "no credentials needed"
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    browser = {
        "endpoint": "https://updates.push.services.mozilla.com/wpush/v2/sdk",
        "expirationTime": None,
        "keys": {"p256dh": b64url(point), "auth": b64url(b"k" * 16)},
    }
    with pytest.raises(Unauthorized):
        client.push.list()
    with Stackyard(stack.url, token=session.access_token) as user:
        stored = user.push.subscribe(browser)
        assert stored.id.startswith("psub_") and stored.endpoint == browser["endpoint"]
        assert user.push.subscribe(browser).id == stored.id, "the same browser again is the same record"
        assert [s.id for s in user.push.list()] == [stored.id]
        user.push.unsubscribe(stored.id)
        assert user.push.list() == []


def test_the_async_account_calls(client: Stackyard, stack: AuthStack):
    _, session, _ = signed_up(client, "ana")

    async def scenario() -> tuple[str, list[str]]:
        async with AsyncStackyard(stack.url) as sdk:
            ana = sdk.auth.with_token(session)
            org = await ana.orgs.create("Async Org")
            names = [o.name for o in await ana.orgs.list()]
            await ana.orgs.delete(org.id)
            return org.role, names

    assert asyncio.run(scenario()) == ("owner", ["Async Org"])
