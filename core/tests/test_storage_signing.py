"""Signed URLs: what was signed verifies, anything changed does not, and the signature
expires; a download signature is no upload signature."""

from __future__ import annotations

import base64
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from stackyard.storage.problems import SignatureExpired, SignatureInvalid
from stackyard.storage.signing import UPLOAD, UrlSigner, canonical, signing_key

ENCRYPTION_KEY = base64.b64encode(bytes(range(32))).decode()
NOW = 1_700_000_000
FILE = "f_0190f3c2a1b27d8e9f0a1b2c3d"
SIGNER = UrlSigner(signing_key(ENCRYPTION_KEY))

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12).filter(
    lambda k: k not in ("exp", "sig")
)
values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)


def signed(params: dict[str, str] | None = None, expires_at: int = NOW + 60) -> dict[str, str]:
    return SIGNER.sign(FILE, params or {"w": "200", "h": "100"}, expires_at)


def test_signing_key_is_derived_and_stable() -> None:
    key = signing_key(ENCRYPTION_KEY)
    assert len(key) == 32
    assert key == signing_key(ENCRYPTION_KEY)
    assert key != base64.b64decode(ENCRYPTION_KEY)
    assert key != signing_key(base64.b64encode(bytes(range(1, 33))).decode())


def test_signing_key_refuses_what_is_not_a_key() -> None:
    with pytest.raises(ValueError, match="base64"):
        signing_key("not base64!")
    with pytest.raises(ValueError, match="16 bytes"):
        signing_key(base64.b64encode(b"short").decode())


def test_signed_query_carries_params_exp_and_an_unpadded_base64url_sig() -> None:
    query = signed()
    assert query["w"] == "200" and query["h"] == "100" and query["exp"] == str(NOW + 60)
    sig = query["sig"]
    assert (
        len(sig) == 43
        and "=" not in sig
        and set(sig) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    )
    assert SIGNER.verify(FILE, query, NOW) == {"w": "200", "h": "100"}


def test_signature_does_not_depend_on_parameter_order() -> None:
    one = SIGNER.sign(FILE, {"a": "1", "b": "2"}, NOW + 60)
    other = SIGNER.sign(FILE, {"b": "2", "a": "1"}, NOW + 60)
    assert one["sig"] == other["sig"]


def test_other_file_is_refused() -> None:
    with pytest.raises(SignatureInvalid):
        SIGNER.verify("f_someoneelse", signed(), NOW)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda q: q | {"w": "201"}, id="param-changed"),
        pytest.param(lambda q: q | {"fit": "fill"}, id="param-added"),
        pytest.param(lambda q: {k: v for k, v in q.items() if k != "h"}, id="param-removed"),
        pytest.param(lambda q: q | {"exp": str(int(q["exp"]) + 3600)}, id="exp-extended"),
        pytest.param(lambda q: q | {"exp": "0" + q["exp"]}, id="exp-respelled"),
        pytest.param(lambda q: q | {"exp": "soon"}, id="exp-not-a-number"),
        pytest.param(lambda q: q | {"sig": q["sig"][:-1] + ("A" if q["sig"][-1] != "A" else "B")}, id="sig-garbled"),
        pytest.param(lambda q: q | {"sig": q["sig"] + "="}, id="sig-padded"),
        pytest.param(lambda q: q | {"sig": "é" * 43}, id="sig-not-ascii"),
        pytest.param(lambda q: q | {"sig": ""}, id="sig-empty"),
        pytest.param(lambda q: {k: v for k, v in q.items() if k != "sig"}, id="sig-missing"),
        pytest.param(lambda q: {k: v for k, v in q.items() if k != "exp"}, id="exp-missing"),
    ],
)
def test_any_change_invalidates_the_signature(change: object) -> None:
    assert callable(change)
    with pytest.raises(SignatureInvalid):
        SIGNER.verify(FILE, change(signed()), NOW)


def test_another_key_does_not_verify() -> None:
    other = UrlSigner(signing_key(base64.b64encode(b"\x01" * 32).decode()))
    with pytest.raises(SignatureInvalid):
        other.verify(FILE, signed(), NOW)


def test_expired_after_exp_but_valid_until_then() -> None:
    query = signed(expires_at=NOW + 60)
    assert SIGNER.verify(FILE, query, NOW + 59.9) == {"w": "200", "h": "100"}
    with pytest.raises(SignatureExpired):
        SIGNER.verify(FILE, query, NOW + 60)
    with pytest.raises(SignatureExpired):
        SIGNER.verify(FILE, query, NOW + 86_400)


def test_tampered_and_expired_is_reported_as_invalid() -> None:
    query = signed(expires_at=NOW - 10) | {"w": "999"}
    with pytest.raises(SignatureInvalid):
        SIGNER.verify(FILE, query, NOW)


def test_download_signature_cannot_upload_and_upload_cannot_download() -> None:
    download = signed()
    with pytest.raises(SignatureInvalid):
        SIGNER.verify(FILE, download, NOW, purpose=UPLOAD)
    upload = SIGNER.sign(FILE, {}, NOW + 60, purpose=UPLOAD)
    assert SIGNER.verify(FILE, upload, NOW, purpose=UPLOAD) == {}
    with pytest.raises(SignatureInvalid):
        SIGNER.verify(FILE, upload, NOW)


def test_signer_refuses_to_sign_its_own_fields() -> None:
    with pytest.raises(ValueError, match="added by the signer"):
        SIGNER.sign(FILE, {"exp": "1"}, NOW)
    with pytest.raises(ValueError, match="added by the signer"):
        SIGNER.sign(FILE, {"sig": "x"}, NOW)


def test_canonical_form_keeps_separators_inside_values_apart() -> None:
    assert canonical({"a": "1&b=2"}) != canonical({"a": "1", "b": "2"})
    one = SIGNER.sign(FILE, {"a": "1&b=2"}, NOW + 60)
    with pytest.raises(SignatureInvalid):
        SIGNER.verify(FILE, {"a": "1", "b": "2", "exp": one["exp"], "sig": one["sig"]}, NOW)


@settings(max_examples=100, deadline=None)
@given(
    params=st.dictionaries(names, values, max_size=6),
    lifetime=st.integers(min_value=1, max_value=7 * 86_400),
    elapsed=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_round_trip_through_a_url_query(params: dict[str, str], lifetime: int, elapsed: float) -> None:
    query = SIGNER.sign(FILE, params, NOW + lifetime)
    received = dict(parse_qsl(urlencode(query), keep_blank_values=True))
    assert SIGNER.verify(FILE, received, NOW + int(elapsed * lifetime)) == params


@settings(max_examples=100, deadline=None)
@given(params=st.dictionaries(names, values, max_size=6), key=names, value=values)
def test_any_added_or_changed_parameter_is_refused(params: dict[str, str], key: str, value: str) -> None:
    assume(params.get(key) != value)
    query = SIGNER.sign(FILE, params, NOW + 60)
    with pytest.raises(SignatureInvalid):
        SIGNER.verify(FILE, query | {key: value}, NOW)
