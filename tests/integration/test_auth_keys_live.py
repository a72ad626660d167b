"""The Stack's signing keys, kept by the operator process in the Secret <stack>-auth-keys on a
real API server: made once, copied into the credentials Secret, rotated on the Stack's period
by the operator's own timer (no event needed), and put back when the credentials are deleted."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from stackyard.auth.keys import KeySet

from .conftest import stack_manifest, wait_for

pytestmark = pytest.mark.usefixtures("operator")


def secret_data(namespace, name: str) -> dict[str, str] | None:
    secret = namespace.get("secret", name)
    if secret is None:
        return None
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def stored_keys(namespace) -> KeySet:
    data = secret_data(namespace, "demo-auth-keys") or {}
    return KeySet.from_json(data.get("signingKeys"))


def credential_keys(namespace) -> KeySet:
    data = secret_data(namespace, "demo-credentials") or {}
    return KeySet.from_json(data.get("stack.auth.signingKeys"))


def stored_keys_when(namespace, count: int) -> KeySet | None:
    keyset = stored_keys(namespace)
    return keyset if len(keyset.keys) == count else None


def kids(keyset: KeySet) -> list[str]:
    return [k.kid for k in keyset.keys]


def test_short_rotation_publishes_a_successor_ahead_switches_on_time_and_drops_the_old_key(namespace, backends):
    # Every 8 s: a successor published 2 s ahead; the old key kept 2 s (token lifetime) + 2 s leeway.
    namespace.apply(stack_manifest(auth={"signingKeyRotation": "8s", "accessTokenLifetime": "2s"}))
    (first,) = wait_for(lambda: stored_keys(namespace).keys, what="the auth-keys Secret")
    assert first.alg == "RS256", "the CRD's default algorithm"
    stack = namespace.get("stack", "demo")
    owner = namespace.get("secret", "demo-auth-keys")["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"]) == ("Stack", stack["metadata"]["uid"])
    wait_for(lambda: kids(credential_keys(namespace)) == [first.kid], what="the keys copied into the credentials")
    encryption_key = secret_data(namespace, "demo-auth-keys")["encryptionKey"]
    assert len(base64.b64decode(encryption_key)) == 32
    assert secret_data(namespace, "demo-credentials")["stack.auth.encryptionKey"] == encryption_key

    # The successor appears about 6 s after the first key, with no event to prompt it.
    keyset = wait_for(lambda: stored_keys_when(namespace, 2), timeout=15, what="a successor")
    old, new = keyset.keys
    assert old.kid == first.kid
    assert new.activates_at - new.created_at >= timedelta(seconds=2), "published before it signs"
    assert timedelta(0) <= new.activates_at - (first.activates_at + timedelta(seconds=8)) < timedelta(seconds=3)
    assert old.retires_at == new.activates_at + timedelta(seconds=4)
    wait_for(lambda: new.kid in kids(credential_keys(namespace)), what="the successor in the credentials")
    assert credential_keys(namespace).signing_key(datetime.now(UTC)).kid == first.kid
    assert encryption_key == secret_data(namespace, "demo-credentials")["stack.auth.encryptionKey"]

    # It signs from its activation; the old key stays published until its tokens have expired.
    time.sleep(max((new.activates_at - datetime.now(UTC)).total_seconds(), 0) + 0.2)
    in_force = credential_keys(namespace)
    assert in_force.signing_key(datetime.now(UTC)).kid == new.kid
    assert in_force.verification_key(old.kid, datetime.now(UTC)) is not None
    wait_for(lambda: old.kid not in kids(stored_keys(namespace)), timeout=10, what="the old key dropped")
    assert datetime.now(UTC) >= old.retires_at
    wait_for(lambda: old.kid not in kids(credential_keys(namespace)), what="the old key gone from the credentials")
    assert secret_data(namespace, "demo-auth-keys")["encryptionKey"] == encryption_key, "made once"

    condition = namespace.condition("stack", "demo", "AuthReady")
    assert (condition["status"], condition["reason"]) == ("True", "KeysReady")


def test_deleting_the_credentials_secret_restores_the_same_keys(namespace, backends, operator):
    namespace.apply(stack_manifest())
    wait_for(lambda: credential_keys(namespace).keys, what="keys in the credentials")
    kept = secret_data(namespace, "demo-auth-keys")
    namespace.kubectl("delete", "secret", "demo-credentials")

    restored = wait_for(lambda: secret_data(namespace, "demo-credentials"), what="the credentials Secret back")
    assert restored["stack.auth.signingKeys"] == kept["signingKeys"]
    assert restored["stack.auth.encryptionKey"] == kept["encryptionKey"]
    assert secret_data(namespace, "demo-auth-keys") == kept

    pem_line = KeySet.from_json(kept["signingKeys"]).keys[0].private_pem.splitlines()[1]
    exposed = (
        json.dumps(namespace.get("stack", "demo"))
        + operator.log()
        + json.dumps(namespace.get("configmap", "demo-config"))
    )
    assert pem_line not in exposed and kept["encryptionKey"] not in exposed, "key material leaked"


def test_rotate_annotation_publishes_a_successor_that_signs_ten_minutes_later(namespace, backends):
    namespace.apply(stack_manifest())
    (first,) = wait_for(lambda: stored_keys(namespace).keys, what="the auth-keys Secret")
    namespace.kubectl("annotate", "stack", "demo", "stackyard.dev/rotate-signing-key=first-request")
    keyset = wait_for(lambda: stored_keys_when(namespace, 2), what="a successor")
    old, new = keyset.keys
    assert old.kid == first.kid
    assert new.activates_at - new.created_at == timedelta(minutes=10)
    assert old.retires_at == new.activates_at + timedelta(minutes=15, seconds=60)
    annotations = namespace.get("secret", "demo-auth-keys")["metadata"]["annotations"]
    assert annotations["stackyard.dev/rotation-handled"] == "first-request"


def test_switching_the_stack_to_rs256_publishes_an_rsa_successor_ten_minutes_ahead(namespace, backends):
    """spec.auth.signingAlgorithm EdDSA -> RS256 on a real API server (the CRD takes RS256):
    the operator adds an RSA 2048 key at once that signs 10 minutes later, copied into the
    credentials with the EdDSA key, which keeps signing until then."""
    namespace.apply(stack_manifest(auth={"signingAlgorithm": "EdDSA"}))
    (first,) = wait_for(lambda: stored_keys(namespace).keys, what="the auth-keys Secret")
    assert first.alg == "EdDSA"
    namespace.apply(stack_manifest(auth={"signingAlgorithm": "RS256"}))
    keyset = wait_for(lambda: stored_keys_when(namespace, 2), what="an RS256 successor")
    old, new = keyset.keys
    assert (old.kid, new.alg, new.private_key.key_size) == (first.kid, "RS256", 2048)
    assert new.activates_at - new.created_at == timedelta(minutes=10)
    assert old.retires_at == new.activates_at + timedelta(minutes=15, seconds=60)
    wait_for(lambda: kids(credential_keys(namespace)) == [old.kid, new.kid], what="both keys in the credentials")
    in_force = credential_keys(namespace)
    assert [j["kty"] for j in in_force.jwks(datetime.now(UTC))["keys"]] == ["RSA", "OKP"]
    assert in_force.signing_key(datetime.now(UTC)).kid == first.kid, "EdDSA signs until the RSA key's time"


def test_unresolved_admin_api_key_is_auth_ready_false_until_its_secret_appears(namespace, backends):
    namespace.apply(stack_manifest(auth={"adminApiKeySecretRef": {"name": "admin", "key": "apiKey"}}))
    condition = wait_for(
        lambda: (c := namespace.condition("stack", "demo", "AuthReady")) and c["status"] == "False" and c,
        what="AuthReady=False",
    )
    assert condition["reason"] == "SecretNotFound"
    assert namespace.condition("stack", "demo")["status"] == "True", "the rest of the config applies"
    assert "stack.auth.adminApiKey" not in secret_data(namespace, "demo-credentials")

    namespace.secret("admin", apiKey="sy_admin_live_42")
    wait_for(
        lambda: (namespace.condition("stack", "demo", "AuthReady") or {}).get("status") == "True",
        what="AuthReady=True",
    )
    assert secret_data(namespace, "demo-credentials")["stack.auth.adminApiKey"] == "sy_admin_live_42"
