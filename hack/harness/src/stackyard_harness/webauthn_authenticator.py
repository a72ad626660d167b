"""A software WebAuthn authenticator and client, for tests: what a browser and a security key
(or a phone's platform authenticator) would answer to `navigator.credentials.create()` and
`navigator.credentials.get()`, in the JSON shape browsers give (`PublicKeyCredential.toJSON()`).

    authenticator = SoftwareAuthenticator(origin="https://app.example.test")
    registration = authenticator.register(creation_options)      # options as the RP sent them
    assertion = authenticator.authenticate(request_options)

Each credential is a P-256 key (COSE alg -7, ES256). Registration answers attestation "none"
with authenticator data holding the rpIdHash, the flags UP, UV and AT, the sign count and the
attested credential data (AAGUID, credential id, COSE public key in CBOR). An assertion is an
ECDSA signature over authenticatorData || SHA-256(clientDataJSON); every use adds one to the
credential's sign count.

It can also misbehave, one fault at a time, for the relying party to refuse: `origin=` (a
page of another site), `rp_id=` (a credential scoped to another RP id), `sign_count=` (a
cloned authenticator replaying an old count), `challenge=` (an old challenge).

Written from the WebAuthn Level 3 and CTAP2 specifications, independently of py_webauthn (the
verifier stackyard uses), so that a mistake in one is caught by the other.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
import uuid
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

FLAG_UP = 0x01  # user present
FLAG_UV = 0x04  # user verified
FLAG_BE = 0x08  # backup eligible
FLAG_BS = 0x10  # backed up
FLAG_AT = 0x40  # attested credential data included

COSE_KTY_EC2 = 2
COSE_ALG_ES256 = -7
COSE_CRV_P256 = 1

SOFTWARE_AAGUID = uuid.UUID("5c7b7e9a-0d57-4c4e-9b1a-7a11cde5ca4e")
"""The AAGUID this authenticator reports: made up, belongs to no vendor."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cose_public_key(key: ec.EllipticCurvePublicKey) -> bytes:
    """The credential public key as a COSE_Key (RFC 9053 EC2, P-256, ES256) in CBOR."""
    numbers = key.public_numbers()
    return cbor2.dumps(
        {
            1: COSE_KTY_EC2,
            3: COSE_ALG_ES256,
            -1: COSE_CRV_P256,
            -2: numbers.x.to_bytes(32, "big"),
            -3: numbers.y.to_bytes(32, "big"),
        }
    )


@dataclass
class SoftwareCredential:
    """One discoverable credential held by the authenticator."""

    credential_id: bytes
    rp_id: str
    user_handle: bytes
    user_name: str
    private_key: ec.EllipticCurvePrivateKey
    sign_count: int = 0

    @property
    def id(self) -> str:
        return b64url(self.credential_id)


@dataclass
class SoftwareAuthenticator:
    """A platform authenticator with its browser: holds credentials, answers ceremonies.

    `origin` is the page the ceremonies run on; `user_verifying` says whether it verifies the
    user (sets UV); `transports` is what registration reports."""

    origin: str
    user_verifying: bool = True
    transports: list[str] = field(default_factory=lambda: ["internal", "hybrid"])
    aaguid: uuid.UUID = SOFTWARE_AAGUID
    credentials: dict[bytes, SoftwareCredential] = field(default_factory=dict)

    # --- registration: navigator.credentials.create() ------------------------------------

    def register(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        challenge: str | None = None,
    ) -> dict[str, Any]:
        """Make a credential for `options` (PublicKeyCredentialCreationOptions as JSON, the
        `publicKey` member) and answer as `PublicKeyCredential.toJSON()` would.

        Refuses, as a browser does, when a credential in excludeCredentials is held here.
        `rp_id` hashes another RP id than the options name into the authenticator data;
        `origin` and `challenge` change what clientDataJSON says."""
        scope = self._rp_id(options.get("rp", {}).get("id"))
        excluded = {from_b64url(c["id"]) for c in options.get("excludeCredentials") or []}
        if excluded & set(self.credentials):
            raise CredentialExcluded("this authenticator already holds a credential in excludeCredentials")
        if not any(p.get("alg") == COSE_ALG_ES256 for p in options.get("pubKeyCredParams", [])):
            raise NotSupported("the relying party does not accept ES256 (-7)")
        user = options["user"]
        credential = SoftwareCredential(
            credential_id=secrets.token_bytes(32),
            rp_id=scope,
            user_handle=from_b64url(user["id"]),
            user_name=user.get("name", ""),
            private_key=ec.generate_private_key(ec.SECP256R1()),
        )
        self.credentials[credential.credential_id] = credential
        client_data = self.client_data("webauthn.create", challenge or options["challenge"], origin)
        attested = (
            self.aaguid.bytes
            + struct.pack(">H", len(credential.credential_id))
            + credential.credential_id
            + cose_public_key(credential.private_key.public_key())
        )
        auth_data = self._authenticator_data(rp_id or scope, FLAG_AT, credential.sign_count) + attested
        attestation_object = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": credential.id,
            "rawId": credential.id,
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation_object),
                "transports": list(self.transports),
            },
        }

    # --- authentication: navigator.credentials.get() -------------------------------------

    def authenticate(
        self,
        options: dict[str, Any],
        *,
        credential_id: str | None = None,
        origin: str | None = None,
        rp_id: str | None = None,
        challenge: str | None = None,
        sign_count: int | None = None,
    ) -> dict[str, Any]:
        """Answer `options` (PublicKeyCredentialRequestOptions as JSON) with an assertion.

        Picks the credential named by `credential_id`, else the first one in allowCredentials
        held here, else (discoverable login) the newest credential for the RP id. `rp_id`
        hashes another RP id into the authenticator data; `sign_count` reports that count
        instead of the next one, as a cloned authenticator would."""
        scope = self._rp_id(options.get("rpId"))
        credential = self._pick(options, scope, credential_id)
        if sign_count is None:
            credential.sign_count += 1
            sign_count = credential.sign_count
        client_data = self.client_data("webauthn.get", challenge or options["challenge"], origin)
        auth_data = self._authenticator_data(rp_id or credential.rp_id, 0, sign_count)
        signature = credential.private_key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": credential.id,
            "rawId": credential.id,
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(credential.user_handle),
            },
        }

    # --- parts ----------------------------------------------------------------------------

    def client_data(self, kind: str, challenge: str, origin: str | None = None) -> bytes:
        """CollectedClientData as the browser serialises it (type, challenge, origin first)."""
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin or self.origin, "crossOrigin": False},
            separators=(",", ":"),
        ).encode()

    def _authenticator_data(self, rp_id: str, extra_flags: int, sign_count: int) -> bytes:
        flags = FLAG_UP | extra_flags | (FLAG_UV if self.user_verifying else 0)
        return hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", sign_count)

    def _rp_id(self, named: str | None) -> str:
        """The RP id the options name, else (as browsers do) the origin's host."""
        if named:
            return named
        host = self.origin.split("://", 1)[-1].split("/", 1)[0]
        return host.rsplit(":", 1)[0] if not host.startswith("[") else host

    def _pick(self, options: dict[str, Any], rp_id: str, credential_id: str | None) -> SoftwareCredential:
        if credential_id is not None:
            return self.credentials[from_b64url(credential_id)]
        allowed = [from_b64url(c["id"]) for c in options.get("allowCredentials") or []]
        if allowed:
            for raw in allowed:
                if raw in self.credentials:
                    return self.credentials[raw]
            raise NoCredential("none of allowCredentials is held by this authenticator")
        for held in reversed(list(self.credentials.values())):
            if held.rp_id == rp_id:
                return held
        raise NoCredential(f"this authenticator holds no credential for {rp_id}")


class CredentialExcluded(Exception):
    """The browser's InvalidStateError: the authenticator already holds an excluded credential."""


class NotSupported(Exception):
    """The browser's NotSupportedError: no algorithm in pubKeyCredParams is supported."""


class NoCredential(Exception):
    """The browser's NotAllowedError when no credential fits the request."""
