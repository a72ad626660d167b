"""Signing keys of access and ID tokens: a key set with a life cycle, and the JWKS published from it.

A key is published (in the JWKS) from the moment it exists, signs from `activates_at`, and is
dropped at `retires_at`, after the last token it signed has expired. So a new key is in every
verifier's cache before the first token it signs, and an old one stays until its tokens are
gone (the operator's rotation sets these times; see `stackyard.auth.rotation`).

The key set travels as JSON in the Stack's credentials Secret (key `stack.auth.signingKeys`),
never in a ConfigMap or a log.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

Algorithm = Literal["EdDSA", "ES256", "RS256"]
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey

RSA_KEY_SIZE = 2048
"""Bits of a new RS256 key: what Auth0, Keycloak and Okta sign with, and NIST's floor until
2030. 3072 would make each signature 128 bytes longer and signing about 3 times slower."""
RSA_PUBLIC_EXPONENT = 65537


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(value: int) -> bytes:
    """Big-endian bytes without leading zeros (RFC 7518 §6.3.1: n and e)."""
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: Algorithm
    private_pem: str = field(repr=False)
    created_at: datetime
    activates_at: datetime
    retires_at: datetime | None = None

    @cached_property
    def private_key(self) -> PrivateKey:
        """The private key, which must be of the kind its `alg` names (Ed25519, P-256, or RSA of
        at least 2048 bits): a key stored under another algorithm's name is refused."""
        key = serialization.load_pem_private_key(self.private_pem.encode(), password=None)
        if self.alg == "EdDSA" and isinstance(key, ed25519.Ed25519PrivateKey):
            return key
        if self.alg == "ES256" and isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
            return key
        if self.alg == "RS256" and isinstance(key, rsa.RSAPrivateKey) and key.key_size >= RSA_KEY_SIZE:
            return key
        raise ValueError(f"key {self.kid}: not a key for {self.alg}")

    @cached_property
    def public_key(self) -> PublicKey:
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, str]:
        """The public half as a JWK (RFC 8037 for Ed25519, RFC 7518 for P-256 and RSA)."""
        public = self.public_key
        if isinstance(public, ed25519.Ed25519PublicKey):
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw), "kid": self.kid, "alg": "EdDSA", "use": "sig"}
        if isinstance(public, rsa.RSAPublicKey):
            rsa_numbers = public.public_numbers()
            return {
                "kty": "RSA",
                "n": _b64url(_unsigned(rsa_numbers.n)),
                "e": _b64url(_unsigned(rsa_numbers.e)),
                "kid": self.kid,
                "alg": "RS256",
                "use": "sig",
            }
        numbers = public.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big")),
            "kid": self.kid,
            "alg": "ES256",
            "use": "sig",
        }

    def published(self, now: datetime) -> bool:
        return self.retires_at is None or now < self.retires_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "alg": self.alg,
            "privateKey": self.private_pem,
            "createdAt": self.created_at.isoformat(),
            "activatesAt": self.activates_at.isoformat(),
            "retiresAt": self.retires_at.isoformat() if self.retires_at else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SigningKey:
        return cls(
            kid=data["kid"],
            alg=data["alg"],
            private_pem=data["privateKey"],
            created_at=datetime.fromisoformat(data["createdAt"]),
            activates_at=datetime.fromisoformat(data["activatesAt"]),
            retires_at=datetime.fromisoformat(data["retiresAt"]) if data.get("retiresAt") else None,
        )

    def retire(self, at: datetime) -> SigningKey:
        return replace(self, retires_at=at)


def generate_key(alg: Algorithm, now: datetime, activates_at: datetime | None = None) -> SigningKey:
    """A fresh key pair; its kid is random (it says nothing about the key). RS256 keys take
    tens of milliseconds to make (see `RSA_KEY_SIZE`), the others microseconds."""
    private: PrivateKey
    if alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif alg == "RS256":
        private = rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=RSA_KEY_SIZE)
    else:
        raise ValueError(f"unknown signing algorithm {alg!r}")
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    kid = now.strftime("%Y%m%d") + "-" + secrets.token_hex(4)
    return SigningKey(kid=kid, alg=alg, private_pem=pem, created_at=now, activates_at=activates_at or now)


class NoSigningKey(Exception):
    """The key set has no key that may sign now (the operator has not created one yet)."""


@dataclass(frozen=True)
class KeySet:
    keys: tuple[SigningKey, ...] = ()

    def signing_key(self, now: datetime) -> SigningKey:
        """The newest key that is active and not retired."""
        candidates = [k for k in self.keys if k.activates_at <= now and k.published(now)]
        if not candidates:
            raise NoSigningKey("no signing key is active; the operator creates one for each Stack")
        return max(candidates, key=lambda k: (k.activates_at, k.created_at))

    def verification_key(self, kid: str, now: datetime) -> SigningKey | None:
        """The key with this kid, if it is published (tokens of a retired key are refused)."""
        return next((k for k in self.keys if k.kid == kid and k.published(now)), None)

    def jwks(self, now: datetime) -> dict[str, list[dict[str, str]]]:
        """Every published key, upcoming ones included, newest first."""
        published = sorted((k for k in self.keys if k.published(now)), key=lambda k: k.created_at, reverse=True)
        return {"keys": [k.public_jwk() for k in published]}

    def to_json(self) -> str:
        return json.dumps({"keys": [k.to_dict() for k in self.keys]}, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> KeySet:
        if not text:
            return cls()
        return cls(tuple(SigningKey.from_dict(k) for k in json.loads(text)["keys"]))
