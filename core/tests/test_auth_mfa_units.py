"""The pure parts of TOTP MFA and passkeys: the TOTP window and replay rule, the secret's
encryption at rest, recovery codes, and the relying party's defaults."""

from __future__ import annotations

import base64
import os
import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from stackyard.auth.errors import AuthNotConfigured
from stackyard.auth.mfa import (
    TOTP_PERIOD,
    decrypt_secret,
    encrypt_secret,
    looks_like_recovery_code,
    matching_step,
    new_recovery_codes,
    new_totp_secret,
    provisioning_uri,
    recovery_code_hash,
    totp_code,
    totp_issuer,
    totp_step,
)
from stackyard.auth.passkeys import relying_party
from stackyard.resources.stack import AuthSettings

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = datetime(2026, 11, 25, 23, 0, 15, tzinfo=UTC)  # 15 s into its step


def code_at(moment: datetime) -> str:
    """What an authenticator app (pyotp's own TOTP, independent of the step arithmetic here) shows."""
    return pyotp.TOTP(SECRET).at(moment)


def test_codes_are_rfc6238_sha1_six_digits_thirty_seconds() -> None:
    # RFC 6238 appendix B, SHA-1, T = 59 s: 94287082 (8 digits); the 6-digit code is its tail.
    rfc_secret = base64.b32encode(b"12345678901234567890").decode()
    assert totp_code(rfc_secret, 59 // TOTP_PERIOD) == "287082"
    assert totp_code(SECRET, totp_step(NOW)) == code_at(NOW)


def test_current_previous_and_next_step_codes_are_accepted() -> None:
    step = totp_step(NOW)
    assert matching_step(SECRET, code_at(NOW), NOW, None) == step
    assert matching_step(SECRET, code_at(NOW - timedelta(seconds=30)), NOW, None) == step - 1
    assert matching_step(SECRET, code_at(NOW + timedelta(seconds=30)), NOW, None) == step + 1


def test_codes_two_steps_away_are_refused() -> None:
    assert matching_step(SECRET, code_at(NOW - timedelta(seconds=60)), NOW, None) is None
    assert matching_step(SECRET, code_at(NOW + timedelta(seconds=60)), NOW, None) is None


def test_a_code_of_the_last_used_step_or_earlier_is_refused() -> None:
    step = totp_step(NOW)
    assert matching_step(SECRET, code_at(NOW), NOW, last_step=step) is None
    assert matching_step(SECRET, code_at(NOW - timedelta(seconds=30)), NOW, last_step=step) is None
    assert matching_step(SECRET, code_at(NOW + timedelta(seconds=30)), NOW, last_step=step) == step + 1
    assert matching_step(SECRET, code_at(NOW), NOW, last_step=step - 1) == step


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12 34 5x"])
def test_malformed_codes_are_refused(code: str) -> None:
    assert matching_step(SECRET, code, NOW, None) is None


def test_spaces_in_a_typed_code_are_ignored() -> None:
    code = code_at(NOW)
    assert matching_step(SECRET, f" {code[:3]} {code[3:]} ", NOW, None) == totp_step(NOW)


def test_new_secrets_are_160_bit_base32_and_distinct() -> None:
    secrets = {new_totp_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert all(re.fullmatch(r"[A-Z2-7]{32}", s) for s in secrets)


def test_provisioning_uri_names_issuer_account_and_parameters() -> None:
    uri = provisioning_uri(SECRET, "ana@example.com", "Acme")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert parts.path == "/Acme:ana%40example.com"
    query = parse_qs(parts.query)
    assert query["secret"] == [SECRET]
    assert query["issuer"] == ["Acme"]
    assert query.get("digits", ["6"]) == ["6"] and query.get("period", ["30"]) == ["30"]
    assert query.get("algorithm", ["SHA1"]) == ["SHA1"]


def test_secret_round_trips_encrypted_and_is_not_stored_in_clear() -> None:
    key = os.urandom(32)
    sealed = encrypt_secret(key, SECRET, "usr_1")
    assert SECRET not in sealed and sealed.startswith("v1:")
    assert encrypt_secret(key, SECRET, "usr_1") != sealed  # a fresh nonce each time
    assert decrypt_secret(key, sealed, "usr_1") == SECRET


def test_secret_does_not_decrypt_with_another_key_or_for_another_user() -> None:
    key = os.urandom(32)
    sealed = encrypt_secret(key, SECRET, "usr_1")
    with pytest.raises(ValueError, match="does not decrypt"):
        decrypt_secret(os.urandom(32), sealed, "usr_1")
    with pytest.raises(ValueError, match="does not decrypt"):
        decrypt_secret(key, sealed, "usr_2")
    with pytest.raises(ValueError, match="encoding"):
        decrypt_secret(key, "v0:" + sealed[3:], "usr_1")


def test_recovery_codes_are_ten_distinct_80_bit_codes() -> None:
    codes = new_recovery_codes()
    assert len(codes) == len(set(codes)) == 10
    for code in codes:
        assert re.fullmatch(r"[a-z2-7]{4}(-[a-z2-7]{4}){3}", code)
        assert looks_like_recovery_code(code)


@given(st.sampled_from(new_recovery_codes(20)), st.sampled_from(["upper", "spaces", "joined"]))
def test_recovery_code_hash_ignores_case_and_separators(code: str, variant: str) -> None:
    typed = {
        "upper": code.upper(),
        "spaces": code.replace("-", " "),
        "joined": code.replace("-", ""),
    }[variant]
    assert recovery_code_hash("usr_1", typed) == recovery_code_hash("usr_1", code)


def test_recovery_code_hash_is_salted_by_user_and_hides_the_code() -> None:
    code = new_recovery_codes(1)[0]
    hashed = recovery_code_hash("usr_1", code)
    assert re.fullmatch(r"[0-9a-f]{64}", hashed)
    assert code.replace("-", "") not in hashed
    assert recovery_code_hash("usr_2", code) != hashed


def test_a_totp_code_does_not_look_like_a_recovery_code() -> None:
    assert not looks_like_recovery_code("123456")
    assert not looks_like_recovery_code("abcd-efgh-ijkl-mno1")  # 1 is not base32


def context(**auth: Any) -> Any:
    return SimpleNamespace(settings=AuthSettings.model_validate(auth), issuer="https://auth.acme.dev")


def test_totp_issuer_is_rp_name_else_the_issuer_host() -> None:
    assert totp_issuer(context(passkeys={"rpName": "Acme"})) == "Acme"
    assert totp_issuer(context()) == "auth.acme.dev"


def test_relying_party_defaults_come_from_app_url() -> None:
    rp = relying_party(context(appUrl="https://app.acme.dev:8443/home"))
    assert (rp.id, rp.origins, rp.name) == ("app.acme.dev", ["https://app.acme.dev:8443"], "stackyard")


def test_relying_party_settings_override_app_url() -> None:
    rp = relying_party(
        context(
            appUrl="https://app.acme.dev",
            passkeys={"rpId": "acme.dev", "rpName": "Acme", "origins": ["https://acme.dev", "https://app.acme.dev/"]},
        )
    )
    assert (rp.id, rp.name, rp.origins) == ("acme.dev", "Acme", ["https://acme.dev", "https://app.acme.dev"])


def test_relying_party_without_app_url_or_rp_id_is_not_configured() -> None:
    with pytest.raises(AuthNotConfigured, match="rpId"):
        relying_party(context())
    assert relying_party(context(passkeys={"rpId": "acme.dev"})).origins == ["https://acme.dev"]
