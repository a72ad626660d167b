"""The signing keys of each algorithm: the public JWK a relying party imports (PyJWT, and
Authlib's joserfc), the stored form read back, and a stored key that is not of its
algorithm's kind refused."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet as JoseKeySet
from joserfc.jws import JWSRegistry
from stackyard.auth.contract import JsonWebKeySet
from stackyard.auth.keys import KeySet, SigningKey, generate_key

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def unb64(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_an_rs256_key_is_rsa_2048_with_a_jwk_of_n_and_e() -> None:
    key = generate_key("RS256", NOW)
    assert key.private_key.key_size == 2048 and key.kid.startswith("20260301-")
    jwk = key.public_jwk()
    assert set(jwk) == {"kty", "n", "e", "kid", "alg", "use"}, "no private member (d, p, q...)"
    assert (jwk["kty"], jwk["alg"], jwk["use"], jwk["kid"], jwk["e"]) == ("RSA", "RS256", "sig", key.kid, "AQAB")
    n = unb64(jwk["n"])
    assert len(n) == 256 and n[0] != 0, "big-endian, no leading zero (RFC 7518 §6.3.1.1)"
    public = key.public_key
    assert isinstance(public, rsa.RSAPublicKey)
    assert int.from_bytes(n, "big") == public.public_numbers().n


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256"])
def test_a_token_of_each_algorithm_verifies_with_the_jwks_in_pyjwt_and_joserfc(alg: Any) -> None:
    key = generate_key(alg, NOW)
    token = jwt.encode({"sub": "usr_01"}, key.private_key, algorithm=alg, headers={"kid": key.kid})
    jwks = KeySet((key,)).jwks(NOW)
    assert jwt.decode(token, jwt.PyJWKSet.from_dict(jwks)[key.kid], algorithms=[alg])["sub"] == "usr_01"
    decoded = jose_jwt.decode(token, JoseKeySet.import_key_set(jwks), registry=JWSRegistry(algorithms=[alg]))
    assert decoded.claims["sub"] == "usr_01" and decoded.header["kid"] == key.kid


def test_an_rs256_key_survives_the_stored_form() -> None:
    key = generate_key("RS256", NOW)
    back = KeySet.from_json(KeySet((key,)).to_json()).keys[0]
    assert back == key and back.public_jwk() == key.public_jwk()
    token = jwt.encode({"sub": "u"}, back.private_key, algorithm="RS256")
    assert jwt.decode(token, key.public_key, algorithms=["RS256"])["sub"] == "u"


@pytest.mark.parametrize(
    ("alg", "private"),
    [
        ("RS256", lambda: ec.generate_private_key(ec.SECP256R1())),
        ("ES256", lambda: rsa.generate_private_key(65537, 2048)),
        ("EdDSA", lambda: rsa.generate_private_key(65537, 2048)),
        ("ES256", lambda: ec.generate_private_key(ec.SECP384R1())),
        ("RS256", lambda: rsa.generate_private_key(65537, 1024)),
    ],
    ids=["ec-as-rs256", "rsa-as-es256", "rsa-as-eddsa", "p384-as-es256", "rsa1024"],
)
def test_a_stored_key_not_of_its_algorithms_kind_is_refused(alg: Any, private: Any) -> None:
    key = SigningKey("k1", alg, pem(private()), NOW, NOW)
    with pytest.raises(ValueError, match=f"not a key for {alg}"):
        key.public_jwk()


def test_an_unknown_algorithm_makes_no_key() -> None:
    with pytest.raises(ValueError, match="unknown signing algorithm"):
        generate_key("RS512", NOW)  # type: ignore[arg-type]


def test_the_sdks_jwks_model_reads_keys_of_every_algorithm() -> None:
    keys = tuple(generate_key(alg, NOW) for alg in ("EdDSA", "ES256", "RS256"))
    parsed = JsonWebKeySet.model_validate(KeySet(keys).jwks(NOW))
    assert sorted((k.kty, k.alg) for k in parsed.keys) == [("EC", "ES256"), ("OKP", "EdDSA"), ("RSA", "RS256")]
    rsa_key = next(k for k in parsed.keys if k.kty == "RSA")
    assert (rsa_key.e, rsa_key.crv, rsa_key.x) == ("AQAB", None, None) and rsa_key.n
