"""Units of auth: access tokens (issue and verify with a clock of the test's own), password
hashing and policy, and the attempt limits against the real Redis."""

from __future__ import annotations

import base64
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from pymongo import AsyncMongoClient
from stackyard.auth.context import AuthContext
from stackyard.auth.errors import AuthNotConfigured, InvalidToken, TooManyAttempts, WeakPassword
from stackyard.auth.flows import forgot_password
from stackyard.auth.keys import KeySet, generate_key
from stackyard.auth.mail import AuthMailer
from stackyard.auth.passwords import PasswordHasher, check_policy
from stackyard.auth.sessions import ClientInfo
from stackyard.auth.tokens import verify_access_token
from stackyard.auth.users import UserRecord
from stackyard.clients import redis_client
from stackyard.resources.stack import AuthSettings, PasswordPolicy

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ISSUER = "https://auth.acme.dev"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher()


def context(
    keys: KeySet, clock: Clock, hasher: PasswordHasher, redis: Any = None, settings: dict[str, Any] | None = None
) -> AuthContext:
    # MongoDB is never reached by these units: the client connects lazily.
    db = AsyncMongoClient("mongodb://127.0.0.1:9", connect=False)["unused"]
    return AuthContext(
        redis=redis,
        db=db,
        settings=AuthSettings.model_validate({"issuer": ISSUER} | (settings or {})),
        keys=keys,
        issuer=ISSUER,
        audience="https://api.acme.dev",
        scope=f"test/{uuid.uuid4().hex[:8]}",
        hasher=hasher,
        clock=clock,
    )


def user(**fields: Any) -> UserRecord:
    return UserRecord.model_validate(
        {
            "id": "usr_01",
            "email": "ana@example.com",
            "email_verified": True,
            "profile": {"name": "Ana"},
            "created_at": START,
            "updated_at": START,
        }
        | fields
    )


def verify(token: str, ctx: AuthContext, now: datetime | None = None) -> Any:
    return verify_access_token(token, ctx.keys, issuer=ctx.issuer, audience=ctx.audience, now=now or ctx.clock())


# -- access tokens ---------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256"])
def test_an_issued_token_verifies_with_its_claims(alg: Any, hasher: PasswordHasher):
    from stackyard.auth.tokens import issue_access_token

    clock = Clock()
    ctx = context(KeySet((generate_key(alg, START),)), clock, hasher)
    token, lifetime = issue_access_token(ctx, user(), "ses_1", ["pwd", "otp"], {"org_1": "admin"})
    assert lifetime == 15 * 60
    header = jwt.get_unverified_header(token)
    assert header == {"alg": alg, "kid": ctx.keys.keys[0].kid, "typ": "at+jwt"}
    claims = verify(token, ctx)
    assert (claims.sub, claims.sid, claims.email, claims.email_verified, claims.name) == (
        "usr_01",
        "ses_1",
        "ana@example.com",
        True,
        "Ana",
    )
    assert claims.amr == ["pwd", "otp"] and claims.orgs == {"org_1": "admin"}
    assert claims.exp - claims.iat == lifetime and claims.raw["aud"] == "https://api.acme.dev"


def test_expiry_and_not_before_are_checked_with_a_leeway(hasher: PasswordHasher):
    from stackyard.auth.tokens import LEEWAY_SECONDS, issue_access_token

    clock = Clock()
    ctx = context(KeySet((generate_key("EdDSA", START),)), clock, hasher, settings={"accessTokenLifetime": "5m"})
    token, _ = issue_access_token(ctx, user(), "ses_1", ["pwd"])
    verify(token, ctx, START + timedelta(seconds=300 + LEEWAY_SECONDS))
    with pytest.raises(InvalidToken, match="expired"):
        verify(token, ctx, START + timedelta(seconds=300 + LEEWAY_SECONDS + 1))
    verify(token, ctx, START - timedelta(seconds=LEEWAY_SECONDS))
    with pytest.raises(InvalidToken, match="not valid yet"):
        verify(token, ctx, START - timedelta(seconds=LEEWAY_SECONDS + 1))


def test_no_active_key_is_a_configuration_problem(hasher: PasswordHasher):
    from stackyard.auth.tokens import issue_access_token

    ctx = context(KeySet(), Clock(), hasher)
    with pytest.raises(AuthNotConfigured, match="no signing key"):
        issue_access_token(ctx, user(), "ses_1", ["pwd"])


def test_a_published_key_signs_only_from_its_activation(hasher: PasswordHasher):
    from stackyard.auth.tokens import issue_access_token

    clock = Clock()
    current = generate_key("EdDSA", START - timedelta(days=1))
    upcoming = generate_key("ES256", START, activates_at=START + timedelta(minutes=10))
    ctx = context(KeySet((current, upcoming)), clock, hasher)
    before, _ = issue_access_token(ctx, user(), "ses_1", ["pwd"])
    assert jwt.get_unverified_header(before)["kid"] == current.kid
    clock.advance(600)
    after, _ = issue_access_token(ctx, user(), "ses_1", ["pwd"])
    assert jwt.get_unverified_header(after)["kid"] == upcoming.kid
    # The old key's token verifies until the old key retires.
    verify(before, ctx)
    retired = KeySet((current.retire(clock.now), upcoming))
    with pytest.raises(InvalidToken, match="unknown or retired"):
        verify_access_token(before, retired, issuer=ISSUER, audience=ctx.audience, now=clock.now)
    verify_access_token(after, retired, issuer=ISSUER, audience=ctx.audience, now=clock.now)


def test_a_token_naming_another_keys_algorithm_is_refused(hasher: PasswordHasher):
    ed, ec = generate_key("EdDSA", START), generate_key("ES256", START)
    ctx = context(KeySet((ed, ec)), Clock(), hasher)
    claims = {"iss": ISSUER, "aud": ctx.audience, "sub": "u", "sid": "s", "jti": "j"}
    claims |= {"iat": int(START.timestamp()), "exp": int(START.timestamp()) + 60}
    token = jwt.encode(claims, ec.private_key, algorithm="ES256", headers={"kid": ed.kid, "typ": "at+jwt"})
    with pytest.raises(InvalidToken, match="does not sign with ES256"):
        verify(token, ctx)
    for missing in ("sid", "jti", "sub"):
        partial = {k: v for k, v in claims.items() if k != missing}
        token = jwt.encode(partial, ed.private_key, algorithm="EdDSA", headers={"kid": ed.kid, "typ": "at+jwt"})
        with pytest.raises(InvalidToken, match=f"no {missing} claim"):
            verify(token, ctx)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hand_signed(header: dict[str, Any], claims: dict[str, Any], sign: Any) -> str:
    """A JWT built by hand (PyJWT refuses to use a public key as an HMAC secret, which is
    the point of the attack), `sign` making the signature of the signing input."""
    signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    return signing_input + "." + _b64(sign(signing_input.encode()))


def test_an_rs256_key_refuses_hs256_built_from_its_public_key_and_other_rsa_algorithms(hasher: PasswordHasher):
    """Algorithm confusion with an RSA key: HS256 whose HMAC secret is the public key (PEM,
    PKCS#1 PEM, DER, JWK), `none`, RS384/RS512/PS256 signed with the real private key, and
    RS256 under the kid of an EdDSA key are all refused; the genuine token verifies."""
    from stackyard.auth.tokens import issue_access_token

    rsa_key, ed = generate_key("RS256", START), generate_key("EdDSA", START - timedelta(days=1))
    ctx = context(KeySet((ed, rsa_key)), Clock(), hasher)
    genuine, _ = issue_access_token(ctx, user(), "ses_1", ["pwd"])
    assert jwt.get_unverified_header(genuine)["kid"] == rsa_key.kid and verify(genuine, ctx).sub == "usr_01"
    claims = jwt.decode(genuine, options={"verify_signature": False})
    header = {"kid": rsa_key.kid, "typ": "at+jwt"}
    public = rsa_key.public_key
    secrets_tried = [
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        json.dumps(rsa_key.public_jwk()).encode(),
    ]
    for secret in secrets_tried:
        forged = _hand_signed(header | {"alg": "HS256"}, claims, lambda m, s=secret: hmac.new(s, m, "sha256").digest())
        with pytest.raises(InvalidToken, match="'HS256' is not accepted"):
            verify(forged, ctx)
    unsigned = _hand_signed(header | {"alg": "none"}, claims, lambda m: b"")
    with pytest.raises(InvalidToken, match="'none' is not accepted"):
        verify(unsigned, ctx)
    for other in ("RS384", "RS512", "PS256"):
        token = jwt.encode(claims, rsa_key.private_key, algorithm=other, headers=header)
        with pytest.raises(InvalidToken, match=f"'{other}' is not accepted"):
            verify(token, ctx)
    under_ed_kid = jwt.encode(claims, rsa_key.private_key, algorithm="RS256", headers={"kid": ed.kid, "typ": "at+jwt"})
    with pytest.raises(InvalidToken, match="does not sign with RS256"):
        verify(under_ed_kid, ctx)
    other_rsa = generate_key("RS256", START)
    with pytest.raises(InvalidToken, match="signature does not verify"):
        verify(jwt.encode(claims, other_rsa.private_key, algorithm="RS256", headers=header), ctx)


# -- passwords -------------------------------------------------------------------------------


async def test_hashes_verify_and_outdated_parameters_are_rehashed(hasher: PasswordHasher):
    stored = await hasher.hash("a long and quiet river")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert await hasher.verify("a long and quiet river", stored) == (True, None)
    assert await hasher.verify("a long and quiet rivers", stored) == (False, None)
    weaker = await PasswordHasher(memory_kib=8192, time_cost=1).hash("a long and quiet river")
    ok, new_hash = await hasher.verify("a long and quiet river", weaker)
    assert ok and new_hash is not None and new_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert await hasher.verify("a long and quiet river", "$2b$12$not-an-argon2-hash") == (False, None)
    await hasher.dummy_verify("anything")


@pytest.mark.parametrize(
    ("password", "email", "reason"),
    [
        ("short pass", None, "at least 12"),
        ("x" * 257, None, "at most 256"),
        ("password123456", None, "common and breached"),
        ("Football12345!", None, "common and breached"),
        ("iloveyou2024!!", None, "common and breached"),
        ("ana.lopez@acme.dev", "ana.lopez@acme.dev", "variation of the email"),
        ("Ana.Lopez2024", "ana.lopez@acme.dev", "variation of the email"),
        ("aaaaaaaaaaaaaaaa", None, "too easy to guess"),
        ("abcdefghijklmnop", None, "too easy to guess"),
    ],
)
def test_the_policy_refuses_weak_passwords(password: str, email: str | None, reason: str):
    with pytest.raises(WeakPassword, match=reason):
        check_policy(password, PasswordPolicy(), email=email)


def test_the_policy_accepts_passphrases_and_can_skip_the_list():
    check_policy("a long and quiet river", PasswordPolicy(), email="ana@example.com")
    check_policy("correct-horse-battery-staple-7", PasswordPolicy())
    check_policy("password123456", PasswordPolicy(rejectCommon=False))
    with pytest.raises(WeakPassword, match="at least 20"):
        check_policy("a long and quiet river"[:19], PasswordPolicy(minLength=20))


# -- attempt limits --------------------------------------------------------------------------


@pytest.fixture
async def redis(redis_server: Any) -> AsyncIterator[Any]:
    client = redis_client(redis_server.url)
    yield client
    await client.aclose()


async def test_an_account_locks_after_max_failures_with_a_doubling_delay(redis: Any, hasher: PasswordHasher):
    clock = Clock()
    lockout = {"maxFailures": 3, "baseDelay": "10s", "maxDelay": "35s"}
    ctx = context(KeySet(), clock, hasher, redis, {"lockout": lockout})
    email = "ana@example.com"
    assert [await ctx.attempts.failed(email) for _ in range(2)] == [0, 0]
    await ctx.attempts.check_account(email)
    assert await ctx.attempts.failed(email) == 10
    with pytest.raises(TooManyAttempts) as refused:
        await ctx.attempts.check_account(email)
    assert refused.value.headers["Retry-After"] == "10" and refused.value.status == 429
    clock.advance(9.5)
    with pytest.raises(TooManyAttempts) as refused:
        await ctx.attempts.check_account(email)
    assert refused.value.headers["Retry-After"] == "1"
    clock.advance(0.5)
    await ctx.attempts.check_account(email)
    assert [await ctx.attempts.failed(email) for _ in range(3)] == [20, 35, 35]
    await ctx.attempts.check_account("bo@example.com")  # another account is not locked
    await ctx.attempts.succeeded(email)
    await ctx.attempts.check_account(email)
    assert await ctx.attempts.failed(email) == 0


async def test_an_address_has_a_budget_per_window(redis: Any, hasher: PasswordHasher):
    clock = Clock()
    ctx = context(KeySet(), clock, hasher, redis, {"lockout": {"ipMaxAttempts": 3, "ipWindow": "1m"}})
    for _ in range(3):
        await ctx.attempts.check_ip("203.0.113.7")
    with pytest.raises(TooManyAttempts) as refused:
        await ctx.attempts.check_ip("203.0.113.7")
    assert refused.value.headers["Retry-After"] == "60"  # START is on a minute boundary
    await ctx.attempts.check_ip("203.0.113.8")
    await ctx.attempts.check_ip(None)  # no address known: not counted
    clock.advance(45)
    with pytest.raises(TooManyAttempts) as refused:
        await ctx.attempts.check_ip("203.0.113.7")
    assert refused.value.headers["Retry-After"] == "15"
    clock.advance(15)
    await ctx.attempts.check_ip("203.0.113.7")


async def test_a_long_run_of_failures_stays_at_the_longest_delay(redis: Any, hasher: PasswordHasher):
    """A short maxDelay lets failures pile up; past 1,000 of them the doubling once
    overflowed a float and every failed login was a 500."""
    clock = Clock()
    ctx = context(KeySet(), clock, hasher, redis, {"lockout": {"maxFailures": 1, "baseDelay": "1s", "maxDelay": "2s"}})
    pipe = redis.pipeline(transaction=False)
    for _ in range(1100):
        pipe.hincrby(ctx.rkey("fail", "ana@example.com"), "failures", 1)
    await pipe.execute()
    assert await ctx.attempts.failed("ana@example.com") == 2


async def test_an_address_gets_at_most_its_hourly_allowance_of_auth_mails(
    redis: Any, mongo_server: Any, hasher: PasswordHasher
):
    """Forgot-password requests for one address past lockout.mailsPerAddress are answered as
    usual and send nothing, until the next hour: nobody floods an inbox through the api."""
    sent: list[str] = []

    class RecordingSender:
        async def send(self, request: Any, idempotency_key: str | None = None) -> object:
            sent.append(request.to[0])
            return None

    clock = Clock()
    settings = {"lockout": {"mailsPerAddress": 3}, "emailFrom": "auth@acme.dev", "appUrl": "https://app.acme.dev"}
    ctx = context(KeySet(), clock, hasher, redis, settings)
    client = AsyncMongoClient(mongo_server.url)
    ctx = replace(ctx, db=client[f"budget_{uuid.uuid4().hex[:8]}"])
    ctx.mailer = AuthMailer(RecordingSender(), ctx.settings, frozenset(), app_name="demo")
    await ctx.users.create("ana@example.com", password_hash="x", now=clock())
    for _ in range(5):
        await forgot_password(ctx, "Ana@Example.com", ClientInfo(ip=None))
    assert sent == ["ana@example.com"] * 3
    await forgot_password(ctx, "bo@example.com", ClientInfo(ip=None))  # no account: nothing to send anyway
    clock.advance(3600)
    await forgot_password(ctx, "ana@example.com", ClientInfo(ip=None))
    assert len(sent) == 4, "the next hour has a new allowance"
    await client.aclose()
