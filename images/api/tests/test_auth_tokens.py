"""Access tokens at the real api: forged and altered JWTs are refused, a valid one verifies
with nothing but the published JWKS (as another service would), and a signing-key rotation
keeps the old key's tokens valid while new ones carry the new kid. Real Redis and FerretDB;
no worker (these flows send no email that a test reads)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from auth_http import EMAIL, PASSWORD, sign_up_and_log_in
from cryptography.hazmat.primitives import serialization
from stackyard.auth.contract import JsonWebKeySet
from stackyard.auth.keys import KeySet, SigningKey, generate_key
from stackyard_harness.auth_stack import AuthStack

ISSUER = "https://auth.acme.dev"
REDIS_DATABASE = 13
AUTH_SETTINGS = {"requireEmailVerification": False}


@pytest.fixture
def auth(auth: AuthStack) -> Iterator[AuthStack]:
    """The shared `auth`, and after the test the signing keys it started with (a test may rotate them)."""
    keys = auth.credentials["stack.auth.signingKeys"]
    yield auth
    if auth.credentials["stack.auth.signingKeys"] != keys:
        auth.set_credentials(**{"stack.auth.signingKeys": keys})


@pytest.fixture
def session(http: httpx.Client) -> dict[str, Any]:
    return sign_up_and_log_in(http)


def key_set(auth: AuthStack) -> KeySet:
    return KeySet.from_json(auth.credentials["stack.auth.signingKeys"])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return json.loads(base64.urlsafe_b64decode(pad(header))), json.loads(base64.urlsafe_b64decode(pad(payload)))


def me(http: httpx.Client, token: str) -> httpx.Response:
    return http.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"})


def refused(answer: httpx.Response) -> str:
    assert answer.status_code == 401, answer.text
    assert answer.json()["type"].endswith("/invalid-token")
    assert answer.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    detail: str = answer.json()["detail"]
    return detail


def resign(
    token: str, key: SigningKey, claims: dict[str, Any] | None = None, header: dict[str, Any] | None = None
) -> str:
    """The token's claims (changed) signed again with `key` (its real private key)."""
    old_header, payload = parts(token)
    headers = {"kid": key.kid, "typ": old_header["typ"]} | (header or {})
    return jwt.encode(payload | (claims or {}), key.private_key, algorithm=key.alg, headers=headers)


def hs256(token: str, secret: bytes) -> str:
    """The token's claims in an HS256 JWT with `secret` as the HMAC key, built by hand (PyJWT
    refuses to use a public key as an HMAC secret, which is the point of the attack)."""
    header, payload = parts(token)
    signing_input = b64(json.dumps(header | {"alg": "HS256"}).encode()) + "." + b64(json.dumps(payload).encode())
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


def test_a_token_resigned_unchanged_is_accepted(auth: AuthStack, http: httpx.Client, session: dict[str, Any]):
    """The control of the attacks below: re-signing itself changes nothing."""
    key = key_set(auth).keys[0]
    assert me(http, session["accessToken"]).status_code == 200
    assert me(http, resign(session["accessToken"], key)).status_code == 200


def test_alg_none_is_refused(auth: AuthStack, http: httpx.Client, session: dict[str, Any]):
    header, payload = parts(session["accessToken"])
    for alg in ("none", "None", "NONE"):
        unsigned = b64(json.dumps(header | {"alg": alg}).encode()) + "." + b64(json.dumps(payload).encode()) + "."
        assert "not accepted" in refused(me(http, unsigned))


def test_hs256_signed_with_the_public_key_is_refused(auth: AuthStack, http: httpx.Client, session: dict[str, Any]):
    public = key_set(auth).keys[0].public_key
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = json.dumps(key_set(auth).keys[0].public_jwk()).encode()
    for secret in (pem, raw, jwk):
        assert "not accepted" in refused(me(http, hs256(session["accessToken"], secret)))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda now: {"exp": now - 120, "iat": now - 1000, "nbf": now - 1000}, "expired"),
        (lambda now: {"nbf": now + 600, "iat": now}, "not valid yet"),
        (lambda now: {"iss": "https://evil.example"}, "another issuer"),
        (lambda now: {"aud": "https://other-app.example"}, "another audience"),
        (lambda now: {"aud": ["https://other-app.example"]}, "another audience"),
        (lambda now: {"exp": None}, "no exp claim"),
        (lambda now: {"sid": None}, "no sid claim"),
    ],
    ids=["expired", "not-yet-valid", "wrong-issuer", "wrong-audience", "wrong-audience-list", "no-exp", "no-sid"],
)
def test_tokens_with_bad_claims_are_refused(
    auth: AuthStack,
    http: httpx.Client,
    session: dict[str, Any],
    change: Callable[[int], dict[str, Any]],
    reason: str,
):
    key = key_set(auth).keys[0]
    claims = change(int(time.time()))
    _, payload = parts(session["accessToken"])
    altered = {k: v for k, v in (payload | claims).items() if v is not None}
    token = jwt.encode(altered, key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": "at+jwt"})
    assert reason in refused(me(http, token))


def test_a_token_inside_the_clock_leeway_is_accepted(auth: AuthStack, http: httpx.Client, session: dict[str, Any]):
    key = key_set(auth).keys[0]
    now = int(time.time())
    token = resign(session["accessToken"], key, {"exp": now - 5, "nbf": now + 5})
    assert me(http, token).status_code == 200


def test_unknown_kid_is_refused(auth: AuthStack, http: httpx.Client, session: dict[str, Any]):
    stranger = generate_key("EdDSA", datetime.now(UTC))
    assert "unknown or retired" in refused(me(http, resign(session["accessToken"], stranger)))
    # A known kid with another key's signature does not verify either.
    known = key_set(auth).keys[0]
    forged = resign(session["accessToken"], stranger, header={"kid": known.kid})
    assert "signature" in refused(me(http, forged))
    nameless = jwt.encode(
        parts(session["accessToken"])[1], known.private_key, algorithm="EdDSA", headers={"typ": "at+jwt"}
    )
    assert "kid" in refused(me(http, nameless))


def test_tampered_payload_is_refused(auth: AuthStack, http: httpx.Client, session: dict[str, Any]):
    header, _, signature = session["accessToken"].split(".")
    _, claims = parts(session["accessToken"])
    for change in ({"sub": "usr_someoneelse"}, {"email": "boss@example.com"}, {"exp": claims["exp"] + 86400}):
        forged = ".".join([header, b64(json.dumps(claims | change).encode()), signature])
        assert "signature" in refused(me(http, forged))


def test_only_access_tokens_are_accepted(auth: AuthStack, http: httpx.Client, session: dict[str, Any]):
    key = key_set(auth).keys[0]
    assert "typ" in refused(me(http, resign(session["accessToken"], key, header={"typ": "JWT"})))
    assert "malformed" in refused(me(http, "not-a-jwt"))
    refused(me(http, session["refreshToken"]))


def test_a_token_of_a_retired_key_is_refused(auth: AuthStack, http: httpx.Client, session: dict[str, Any]):
    now = datetime.now(UTC)
    old = key_set(auth).keys[0]
    successor = generate_key("ES256", now - timedelta(seconds=1))
    auth.set_credentials(
        **{"stack.auth.signingKeys": KeySet((old.retire(now - timedelta(seconds=1)), successor)).to_json()}
    )
    assert "unknown or retired" in refused(me(http, session["accessToken"]))
    kids = [k["kid"] for k in http.get("/.well-known/jwks.json").json()["keys"]]
    assert kids == [successor.kid]
    discovery = http.get("/.well-known/openid-configuration").json()
    assert discovery["id_token_signing_alg_values_supported"] == ["ES256"], "a retired key's algorithm is gone"


def test_a_token_verifies_with_the_public_jwks_alone(auth: AuthStack, http: httpx.Client, session: dict[str, Any]):
    """Another service's view: discovery, then the JWKS, then PyJWT; no call to stackyard per token."""
    discovery = http.get("/.well-known/openid-configuration").json()
    assert discovery["issuer"] == ISSUER and discovery["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    jwks = http.get("/.well-known/jwks.json").json()
    signing = jwt.PyJWKSet.from_dict(jwks)[parts(session["accessToken"])[0]["kid"]]
    claims = jwt.decode(
        session["accessToken"],
        signing.key,
        algorithms=discovery["id_token_signing_alg_values_supported"],
        audience=ISSUER,
        issuer=discovery["issuer"],
        options={"require": ["exp", "iat", "sub", "sid"]},
    )
    assert claims["email"] == EMAIL and claims["sub"].startswith("usr_") and claims["sid"] == session["sessionId"]
    # PyJWT's own JWKS client, fetching from the served URL.
    client = jwt.PyJWKClient(f"{auth.url}/.well-known/jwks.json")
    key = client.get_signing_key_from_jwt(session["accessToken"])
    assert jwt.decode(session["accessToken"], key.key, algorithms=["EdDSA"], audience=ISSUER)["sub"] == claims["sub"]
    tampered = resign(session["accessToken"], generate_key("EdDSA", datetime.now(UTC)), header={"kid": key.key_id})
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(tampered, key.key, algorithms=["EdDSA"], audience=ISSUER)


def test_discovery_and_jwks_documents(auth: AuthStack, http: httpx.Client):
    jwks = http.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    assert jwks.headers["content-type"].startswith("application/jwk-set+json")
    assert jwks.headers["cache-control"] == "public, max-age=300"
    (key,) = jwks.json()["keys"]
    assert key == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": key["x"],
        "kid": key_set(auth).keys[0].kid,
        "alg": "EdDSA",
        "use": "sig",
    }
    assert "d" not in key and len(base64.urlsafe_b64decode(key["x"] + "=")) == 32
    discovery = http.get("/.well-known/openid-configuration")
    assert discovery.status_code == 200 and discovery.headers["cache-control"] == "public, max-age=300"
    document = discovery.json()
    assert document["issuer"] == ISSUER
    assert document["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert document["id_token_signing_alg_values_supported"] == ["EdDSA"]
    assert {"sub", "email", "sid"} <= set(document["claims_supported"])


def test_key_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(
    auth: AuthStack, http: httpx.Client, session: dict[str, Any]
):
    now = datetime.now(UTC)
    old = key_set(auth).keys[0]
    new = generate_key("ES256", now, activates_at=now - timedelta(seconds=1))
    auth.set_credentials(**{"stack.auth.signingKeys": KeySet((old, new)).to_json()})
    jwks = http.get("/.well-known/jwks.json").json()
    assert {k["kid"] for k in jwks["keys"]} == {old.kid, new.kid}
    algorithms = http.get("/.well-known/openid-configuration").json()["id_token_signing_alg_values_supported"]
    assert algorithms == ["ES256", "EdDSA"]
    # The old key's token still works until it expires.
    assert parts(session["accessToken"])[0]["kid"] == old.kid
    assert me(http, session["accessToken"]).status_code == 200
    # New tokens carry the new kid, from a login and from a refresh.
    login = http.post("/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}).json()
    renewed = http.post("/v1/auth/token/refresh", json={"refreshToken": session["refreshToken"]}).json()
    for token in (login["accessToken"], renewed["accessToken"]):
        assert parts(token)[0] == {"alg": "ES256", "kid": new.kid, "typ": "at+jwt"}
        assert me(http, token).status_code == 200
        signing = jwt.PyJWKSet.from_dict(jwks)[new.kid]
        assert jwt.decode(token, signing.key, algorithms=["ES256"], audience=ISSUER)["email"] == EMAIL
    # An ES256 token claiming EdDSA (the old key's algorithm) is refused.
    _, payload, signature = login["accessToken"].split(".")
    relabelled = b64(json.dumps({"alg": "EdDSA", "kid": new.kid, "typ": "at+jwt"}).encode())
    refused(me(http, ".".join([relabelled, payload, signature])))


def test_a_switch_to_rs256_signs_rsa_tokens_the_api_and_the_jwks_verify_and_hs256_with_its_pem_is_refused(
    auth: AuthStack, http: httpx.Client, session: dict[str, Any]
):
    """The Stack's signingAlgorithm changed to RS256 (the operator's successor now signs): the
    JWKS serves the RSA key (n, e) with the EdDSA one, discovery lists both, new tokens are
    RS256 and verify at the api and with PyJWT from the JWKS; an HS256 token keyed with the
    RSA public key (PEM, PKCS#1 PEM, JWK) and an RS512 one from the same key are refused."""
    now = datetime.now(UTC)
    old = key_set(auth).keys[0]
    new = generate_key("RS256", now, activates_at=now - timedelta(seconds=1))
    auth.set_credentials(**{"stack.auth.signingKeys": KeySet((old, new)).to_json()})
    jwks = http.get("/.well-known/jwks.json").json()
    rsa_jwk = next(k for k in jwks["keys"] if k["kid"] == new.kid)
    assert rsa_jwk == {"kty": "RSA", "n": rsa_jwk["n"], "e": "AQAB", "kid": new.kid, "alg": "RS256", "use": "sig"}
    assert JsonWebKeySet.model_validate(jwks).keys[0].kty == "RSA", "the SDK's model reads it"
    algorithms = http.get("/.well-known/openid-configuration").json()["id_token_signing_alg_values_supported"]
    assert algorithms == ["EdDSA", "RS256"]
    assert me(http, session["accessToken"]).status_code == 200, "the EdDSA key's token stays valid"
    login = http.post("/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}).json()
    token = login["accessToken"]
    assert parts(token)[0] == {"alg": "RS256", "kid": new.kid, "typ": "at+jwt"}
    assert me(http, token).status_code == 200
    signing = jwt.PyJWKSet.from_dict(jwks)[new.kid]
    assert jwt.decode(token, signing.key, algorithms=["RS256"], audience=ISSUER)["email"] == EMAIL
    public = new.public_key
    for secret in (
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        json.dumps(rsa_jwk).encode(),
    ):
        assert "not accepted" in refused(me(http, hs256(token, secret)))
    assert "not accepted" in refused(me(http, _rs512(token, new)))


def _rs512(token: str, key: SigningKey) -> str:
    header, payload = parts(token)
    return jwt.encode(payload, key.private_key, algorithm="RS512", headers={"kid": key.kid, "typ": header["typ"]})


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "中文"},
        {"alg": 'x" , error="other'},
        {"alg": ["EdDSA"]},
        {"kid": "ключ\r\nSet-Cookie: x=1"},
        {"kid": 7},
        {"typ": "at+jwt\u2028"},
    ],
    ids=["non-latin-alg", "quoted-alg", "list-alg", "injected-kid", "number-kid", "odd-typ"],
)
def test_hostile_headers_are_refused_cleanly(
    auth: AuthStack, http: httpx.Client, session: dict[str, Any], header: dict[str, Any]
):
    old_header, payload = parts(session["accessToken"])
    forged = ".".join(
        [b64(json.dumps(old_header | header).encode()), b64(json.dumps(payload).encode()), "c2lnbmF0dXJl"]
    )
    answer = me(http, forged)
    refused(answer)
    challenge = answer.headers["WWW-Authenticate"]
    assert challenge.isascii() and challenge.count('"') == 4, challenge
    assert "Set-Cookie" not in answer.headers
