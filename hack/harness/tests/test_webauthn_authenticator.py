"""The software WebAuthn authenticator answers ceremonies that py_webauthn (the verifier
stackyard uses) accepts, and each of its faults is one that py_webauthn refuses."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from stackyard_harness.webauthn_authenticator import (
    SOFTWARE_AAGUID,
    CredentialExcluded,
    NoCredential,
    SoftwareAuthenticator,
    b64url,
    from_b64url,
)
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import parse_attestation_object
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import PublicKeyCredentialDescriptor
from webauthn.registration.verify_registration_response import VerifiedRegistration

RP_ID = "app.example.test"
ORIGIN = "https://app.example.test"


def creation_options(exclude: list[bytes] | None = None) -> tuple[dict[str, Any], bytes]:
    options = generate_registration_options(
        rp_id=RP_ID,
        rp_name="Example",
        user_name="ana@example.test",
        user_id=b"usr_1",
        exclude_credentials=[PublicKeyCredentialDescriptor(id=c) for c in exclude or []],
    )
    return json.loads(options_to_json(options)), options.challenge


def request_options(allow: list[bytes] | None = None) -> tuple[dict[str, Any], bytes]:
    options = generate_authentication_options(
        rp_id=RP_ID, allow_credentials=[PublicKeyCredentialDescriptor(id=c) for c in allow or []]
    )
    return json.loads(options_to_json(options)), options.challenge


def registered(authenticator: SoftwareAuthenticator) -> VerifiedRegistration:
    options, challenge = creation_options()
    return verify_registration_response(
        credential=authenticator.register(options),
        expected_challenge=challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        require_user_verification=True,
    )


def verify_login(answer: dict[str, Any], challenge: bytes, verified: VerifiedRegistration, count: int = 0) -> int:
    return verify_authentication_response(
        credential=answer,
        expected_challenge=challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        credential_public_key=verified.credential_public_key,
        credential_current_sign_count=count,
        require_user_verification=True,
    ).new_sign_count


def test_registration_is_accepted_by_py_webauthn_with_attestation_none() -> None:
    authenticator = SoftwareAuthenticator(origin=ORIGIN)
    verified = registered(authenticator)
    held = next(iter(authenticator.credentials.values()))
    assert verified.credential_id == held.credential_id
    assert verified.fmt == "none"
    assert verified.aaguid == str(SOFTWARE_AAGUID)
    assert verified.user_verified is True
    assert verified.sign_count == 0
    assert held.user_handle == b"usr_1"


def test_registration_authenticator_data_has_up_uv_and_at_flags() -> None:
    options, _ = creation_options()
    answer = SoftwareAuthenticator(origin=ORIGIN).register(options)
    parsed = parse_attestation_object(from_b64url(answer["response"]["attestationObject"]))
    flags = parsed.auth_data.flags
    assert (flags.up, flags.uv, flags.at) == (True, True, True)
    assert parsed.auth_data.rp_id_hash == hashlib.sha256(RP_ID.encode()).digest()
    assert answer["response"]["transports"] == ["internal", "hybrid"]
    client_data = json.loads(from_b64url(answer["response"]["clientDataJSON"]))
    assert client_data == {
        "type": "webauthn.create",
        "challenge": options["challenge"],
        "origin": ORIGIN,
        "crossOrigin": False,
    }


def test_authentication_signature_verifies_and_sign_count_grows() -> None:
    authenticator = SoftwareAuthenticator(origin=ORIGIN)
    verified = registered(authenticator)
    options, challenge = request_options()  # discoverable: no allowCredentials
    first = authenticator.authenticate(options)
    assert from_b64url(first["response"]["userHandle"]) == b"usr_1"
    assert verify_login(first, challenge, verified) == 1
    options, challenge = request_options(allow=[verified.credential_id])
    assert verify_login(authenticator.authenticate(options), challenge, verified, count=1) == 2


def test_a_replayed_sign_count_is_refused() -> None:
    authenticator = SoftwareAuthenticator(origin=ORIGIN)
    verified = registered(authenticator)
    options, challenge = request_options()
    count = verify_login(authenticator.authenticate(options), challenge, verified)
    options, challenge = request_options()
    with pytest.raises(InvalidAuthenticationResponse, match="sign count"):
        verify_login(authenticator.authenticate(options, sign_count=count), challenge, verified, count=count)


def test_a_bad_origin_is_refused_in_both_ceremonies() -> None:
    authenticator = SoftwareAuthenticator(origin=ORIGIN)
    options, challenge = creation_options()
    with pytest.raises(InvalidRegistrationResponse, match="origin"):
        verify_registration_response(
            credential=authenticator.register(options, origin="https://evil.example"),
            expected_challenge=challenge,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
        )
    verified = registered(authenticator)
    options, challenge = request_options(allow=[verified.credential_id])
    with pytest.raises(InvalidAuthenticationResponse, match="origin"):
        verify_login(authenticator.authenticate(options, origin="https://evil.example"), challenge, verified)


def test_a_wrong_rp_id_is_refused_in_both_ceremonies() -> None:
    authenticator = SoftwareAuthenticator(origin=ORIGIN)
    options, challenge = creation_options()
    with pytest.raises(InvalidRegistrationResponse, match="RP ID"):
        verify_registration_response(
            credential=authenticator.register(options, rp_id="evil.example"),
            expected_challenge=challenge,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
        )
    verified = registered(authenticator)
    options, challenge = request_options(allow=[verified.credential_id])
    with pytest.raises(InvalidAuthenticationResponse, match="RP ID"):
        verify_login(authenticator.authenticate(options, rp_id="evil.example"), challenge, verified)


def test_an_old_challenge_is_refused() -> None:
    authenticator = SoftwareAuthenticator(origin=ORIGIN)
    verified = registered(authenticator)
    options, challenge = request_options()
    with pytest.raises(InvalidAuthenticationResponse, match="challenge"):
        verify_login(authenticator.authenticate(options, challenge=b64url(b"old" * 11)), challenge, verified)


def test_a_tampered_signature_is_refused() -> None:
    authenticator = SoftwareAuthenticator(origin=ORIGIN)
    verified = registered(authenticator)
    options, challenge = request_options()
    answer = authenticator.authenticate(options)
    data = bytearray(from_b64url(answer["response"]["authenticatorData"]))
    data[-1] ^= 0x01  # another sign count than the one signed
    answer["response"]["authenticatorData"] = b64url(bytes(data))
    with pytest.raises(InvalidAuthenticationResponse, match="signature"):
        verify_login(answer, challenge, verified)


def test_user_verification_required_fails_without_uv() -> None:
    authenticator = SoftwareAuthenticator(origin=ORIGIN, user_verifying=False)
    options, challenge = creation_options()
    with pytest.raises(InvalidRegistrationResponse, match="verif"):
        verify_registration_response(
            credential=authenticator.register(options),
            expected_challenge=challenge,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
            require_user_verification=True,
        )


def test_excluded_and_missing_credentials_are_refused_like_a_browser() -> None:
    authenticator = SoftwareAuthenticator(origin=ORIGIN)
    verified = registered(authenticator)
    options, _ = creation_options(exclude=[verified.credential_id])
    with pytest.raises(CredentialExcluded):
        authenticator.register(options)
    options, _ = request_options(allow=[b"not-held-here"])
    with pytest.raises(NoCredential):
        authenticator.authenticate(options)
    with pytest.raises(NoCredential):
        SoftwareAuthenticator(origin=ORIGIN).authenticate(request_options()[0])
