"""render() and the Stack's auth keys, with plain data: the auth-keys Secret is made once,
rotated on the Stack's period, copied into the credentials, and never shown anywhere else."""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime, timedelta

from stackyard.auth.keys import KeySet
from stackyard.config import AUTH_ADMIN_API_KEY, AUTH_ENCRYPTION_KEY, AUTH_SIGNING_KEYS
from stackyard_operator.auth_keys import AuthKeysObserved, Fresh, FreshKeys
from stackyard_operator.render import Desired, Observed, render

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STACK = {
    "apiVersion": "stackyard.dev/v1alpha1",
    "kind": "Stack",
    "metadata": {"name": "demo", "namespace": "shop", "uid": "u-1", "generation": 1},
    "spec": {
        "redis": {"urlSecretRef": {"name": "backends", "key": "redis"}},
        "mongodb": {"uriSecretRef": {"name": "backends", "key": "mongodb"}},
        "auth": {"signingKeyRotation": "1h", "accessTokenLifetime": "5m"},
    },
}
SECRETS = {"backends": {"redis": "redis://:pw@redis:6379/0", "mongodb": "mongodb://mongo/"}}
PERIOD, LIFETIME, AHEAD = timedelta(hours=1), timedelta(minutes=5), timedelta(minutes=10)


def fresh(now: datetime, n: int) -> Fresh:
    """Fresh material as the reconciler makes it, one set per observation (signing keys made
    when render looks them up, as `Fresh.make` does)."""
    return Fresh(FreshKeys(now), base64.b64encode(bytes([n]) * 32).decode())


def stack(annotations: dict[str, str] | None = None, **auth: str) -> dict:
    body = copy.deepcopy(STACK)
    body["spec"]["auth"].update(auth)
    if annotations:
        body["metadata"]["annotations"] = annotations
    return body


class Cluster:
    """What the reconciler would keep between reconciles: the auth-keys Secret and the credentials."""

    def __init__(self) -> None:
        self.stored: dict[str, str] | None = None
        self.handled: str | None = None
        self.credentials: dict[str, str] = {}
        self.revision = 0
        self.observations = 0
        self.made: list[tuple[str, ...]] = []
        """The algorithms of the keys each observation's fresh material made."""

    def reconcile(self, now: datetime, body: dict | None = None, secrets: dict | None = None) -> Desired:
        self.observations += 1
        material = fresh(now, self.observations)
        observed = Observed(
            body or stack(),
            [],
            secrets or SECRETS,
            previous_credentials=self.credentials,
            previous_credentials_revision=self.revision,
            auth_keys=AuthKeysObserved(now, self.stored, self.handled, material),
        )
        desired = render(observed)
        assert isinstance(material.keys, FreshKeys)
        self.made.append(material.keys.made)
        secret = auth_keys_secret(desired)
        if secret is not None:
            self.stored = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
            self.handled = secret["metadata"]["annotations"].get("stackyard.dev/rotation-handled")
        self.credentials, self.revision = desired.credentials, desired.credentials_revision
        return desired

    def keyset(self) -> KeySet:
        assert self.stored is not None
        return KeySet.from_json(self.stored["signingKeys"])


def auth_keys_secret(desired: Desired) -> dict | None:
    return next((o for o in desired.objects if o["metadata"]["name"] == "demo-auth-keys"), None)


def auth_ready(desired: Desired):
    return next(c for c in desired.stack_status.conditions if c.type == "AuthReady")


def test_first_reconcile_makes_the_auth_keys_secret_and_copies_it_into_the_credentials():
    cluster = Cluster()
    desired = cluster.reconcile(T0)
    secret = auth_keys_secret(desired)
    assert secret is not None and secret["type"] == "Opaque"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    (key,) = cluster.keyset().keys
    assert (key.alg, key.activates_at, key.retires_at) == ("RS256", T0, None), "RS256 by default"
    assert len(base64.b64decode(cluster.stored["encryptionKey"])) == 32
    assert desired.credentials[AUTH_SIGNING_KEYS] == cluster.stored["signingKeys"]
    assert desired.credentials[AUTH_ENCRYPTION_KEY] == cluster.stored["encryptionKey"]
    assert desired.next_change == T0 + PERIOD - AHEAD
    objects = [o for o in desired.objects if o["kind"] == "Secret"]
    assert [o["metadata"]["name"] for o in objects] == ["demo-auth-keys", "demo-credentials"], "kept, then copied"


def test_key_material_appears_in_no_config_map_and_no_status():
    cluster = Cluster()
    desired = cluster.reconcile(T0)
    (key,) = cluster.keyset().keys
    config_map = json.dumps(next(o for o in desired.objects if o["kind"] == "ConfigMap"))
    status = json.dumps([c.__dict__ for s in desired.statuses.values() for c in s.conditions])
    pem_body = key.private_pem.splitlines()[1]
    for text in (config_map, status):
        assert pem_body not in text and cluster.stored["encryptionKey"] not in text
    assert auth_ready(desired).status == "True" and "2026-03-01T12:50:00Z" in auth_ready(desired).message


def test_reconciles_before_the_successor_is_due_change_nothing():
    cluster = Cluster()
    first = cluster.reconcile(T0)
    again = cluster.reconcile(T0 + timedelta(minutes=49))
    assert again.objects == first.objects, "fresh material is not used when nothing is due"
    assert again.credentials_revision == first.credentials_revision


def test_successor_is_published_ahead_then_the_old_key_is_dropped_after_its_tokens_expire():
    cluster = Cluster()
    cluster.reconcile(T0)
    desired = cluster.reconcile(T0 + PERIOD - AHEAD)
    old, new = cluster.keyset().keys
    assert new.activates_at == T0 + PERIOD and new.created_at == T0 + PERIOD - AHEAD
    assert old.retires_at == T0 + PERIOD + LIFETIME + timedelta(seconds=60)
    assert desired.credentials_revision == 2, "the api and worker get the new set"
    assert desired.next_change == old.retires_at

    cluster.reconcile(old.retires_at)
    assert [k.kid for k in cluster.keyset().keys] == [new.kid]


def test_deleted_credentials_secret_gets_the_same_keys_back():
    cluster = Cluster()
    cluster.reconcile(T0)
    kept = dict(cluster.stored)
    cluster.credentials, cluster.revision = {}, 0
    desired = cluster.reconcile(T0 + timedelta(minutes=1))
    assert desired.credentials[AUTH_SIGNING_KEYS] == kept["signingKeys"]
    assert desired.credentials[AUTH_ENCRYPTION_KEY] == kept["encryptionKey"]


def test_deleted_auth_keys_secret_makes_new_signing_keys_but_keeps_the_encryption_key():
    cluster = Cluster()
    cluster.reconcile(T0)
    before = dict(cluster.stored)
    cluster.stored = None
    cluster.reconcile(T0 + timedelta(minutes=1))
    assert cluster.stored["encryptionKey"] == before["encryptionKey"], "TOTP secrets stay readable"
    (key,) = cluster.keyset().keys
    assert key.kid not in before["signingKeys"] and key.activates_at == T0 + timedelta(minutes=1)


def test_algorithm_change_makes_a_successor_at_once_that_signs_after_publish_ahead():
    cluster = Cluster()
    cluster.reconcile(T0)
    now = T0 + timedelta(minutes=3)
    cluster.reconcile(now, stack(signingAlgorithm="ES256"))
    _, new = cluster.keyset().keys
    assert (new.alg, new.activates_at) == ("ES256", now + AHEAD)
    assert cluster.keyset().signing_key(now + AHEAD).kid == new.kid


def test_an_rs256_stack_gets_an_rsa_key_published_as_an_rsa_jwk():
    cluster = Cluster()
    desired = cluster.reconcile(T0, stack(signingAlgorithm="RS256"))
    (key,) = cluster.keyset().keys
    assert (key.alg, key.activates_at, key.private_key.key_size) == ("RS256", T0, 2048)
    (jwk,) = KeySet.from_json(desired.credentials[AUTH_SIGNING_KEYS]).jwks(T0)["keys"]
    assert jwk == {"kty": "RSA", "n": jwk["n"], "e": "AQAB", "kid": key.kid, "alg": "RS256", "use": "sig"}
    assert len(base64.urlsafe_b64decode(jwk["n"] + "==")) == 256 and "d" not in jwk
    assert auth_ready(desired).status == "True"
    assert cluster.made == [("RS256",)], "only the Stack's algorithm is made"


def test_switch_from_eddsa_to_rs256_publishes_the_rsa_key_ahead_then_drops_the_eddsa_key():
    cluster = Cluster()
    cluster.reconcile(T0, stack(signingAlgorithm="EdDSA"))
    (ed,) = cluster.keyset().keys
    switched = T0 + timedelta(minutes=3)
    desired = cluster.reconcile(switched, stack(signingAlgorithm="RS256"))
    old, new = cluster.keyset().keys
    assert old.kid == ed.kid and (new.alg, new.created_at, new.activates_at) == ("RS256", switched, switched + AHEAD)
    assert old.retires_at == switched + AHEAD + LIFETIME + timedelta(seconds=60)
    published = KeySet.from_json(desired.credentials[AUTH_SIGNING_KEYS])
    assert [k["kty"] for k in published.jwks(switched)["keys"]] == ["RSA", "OKP"], "published before it signs"
    assert published.signing_key(switched + AHEAD - timedelta(seconds=1)).alg == "EdDSA"
    assert published.signing_key(switched + AHEAD).alg == "RS256"
    # Later reconciles before it signs change nothing and make no key.
    rs256 = stack(signingAlgorithm="RS256")
    assert cluster.reconcile(switched + timedelta(minutes=5), rs256).objects == desired.objects
    cluster.reconcile(old.retires_at, rs256)
    assert [k.kid for k in cluster.keyset().keys] == [new.kid]
    assert cluster.made == [("EdDSA",), ("RS256",), (), ()]


def test_reconciles_with_nothing_due_make_no_signing_key_and_render_is_repeatable():
    cluster = Cluster()
    cluster.reconcile(T0, stack(signingAlgorithm="RS256"))
    for minutes in (1, 20, 49):
        cluster.reconcile(T0 + timedelta(minutes=minutes), stack(signingAlgorithm="RS256"))
    assert cluster.made == [("RS256",), (), (), ()]
    # The same observation rendered twice: the same key, made once.
    material = fresh(T0, 1)
    observed = Observed(
        stack(signingAlgorithm="RS256"),
        [],
        SECRETS,
        auth_keys=AuthKeysObserved(T0, None, None, material),
    )
    assert render(observed).credentials == render(observed).credentials
    assert isinstance(material.keys, FreshKeys) and material.keys.made == ("RS256",)
    made = Fresh.make(T0)
    assert isinstance(made.keys, FreshKeys) and made.keys.made == (), "Fresh.make makes no signing key itself"


def test_rotate_annotation_rotates_once_per_value():
    cluster = Cluster()
    cluster.reconcile(T0)
    asked = stack({"stackyard.dev/rotate-signing-key": "2026-03-01"})
    desired = cluster.reconcile(T0 + timedelta(minutes=1), asked)
    _, new = cluster.keyset().keys
    assert new.activates_at == T0 + timedelta(minutes=1) + AHEAD
    assert auth_keys_secret(desired)["metadata"]["annotations"] == {"stackyard.dev/rotation-handled": "2026-03-01"}
    cluster.reconcile(T0 + timedelta(minutes=20), asked)
    assert [k.kid for k in cluster.keyset().keys] == [new.kid], "the same request is not carried out twice"


def test_admin_api_key_resolves_into_the_credentials():
    secrets = {**SECRETS, "admin": {"key": "sy_admin_0123"}}
    desired = Cluster().reconcile(T0, stack(adminApiKeySecretRef={"name": "admin", "key": "key"}), secrets)
    assert desired.credentials[AUTH_ADMIN_API_KEY] == "sy_admin_0123"
    assert auth_ready(desired).status == "True"


def test_unresolved_admin_api_key_is_left_out_with_auth_ready_false_and_the_rest_applies():
    body = stack(adminApiKeySecretRef={"name": "admin", "key": "key"})
    missing = Cluster().reconcile(T0, body)
    assert missing.config is not None and AUTH_ADMIN_API_KEY not in missing.credentials
    assert AUTH_SIGNING_KEYS in missing.credentials
    condition = auth_ready(missing)
    assert (condition.status, condition.reason) == ("False", "SecretNotFound")
    assert condition.message == (
        "spec.auth.adminApiKeySecretRef: Secret admin not found; the admin API is off until it resolves"
    )
    ready = next(c for c in missing.stack_status.conditions if c.type == "Ready")
    assert ready.status == "True"
    wrong_key = Cluster().reconcile(T0, body, {**SECRETS, "admin": {"other": "x"}})
    assert auth_ready(wrong_key).reason == "SecretKeyNotFound"


def test_unreadable_auth_keys_secret_is_left_alone_and_the_keys_in_force_stay():
    cluster = Cluster()
    cluster.reconcile(T0)
    in_force = dict(cluster.credentials)
    cluster.stored = {**cluster.stored, "signingKeys": "{not json"}
    desired = cluster.reconcile(T0 + timedelta(minutes=1))
    assert auth_keys_secret(desired) is None, "a person's edit is not overwritten"
    assert desired.credentials[AUTH_SIGNING_KEYS] == in_force[AUTH_SIGNING_KEYS]
    assert desired.next_change is None
    condition = auth_ready(desired)
    assert (condition.status, condition.reason) == ("False", "InvalidKeys")
    assert "{not json" not in condition.message


def test_without_observed_auth_keys_the_keys_in_force_stay():
    cluster = Cluster()
    cluster.reconcile(T0)
    desired = render(
        Observed(stack(), [], SECRETS, previous_credentials=cluster.credentials, previous_credentials_revision=1)
    )
    assert desired.credentials[AUTH_SIGNING_KEYS] == cluster.credentials[AUTH_SIGNING_KEYS]
    assert desired.credentials_revision == 1 and auth_keys_secret(desired) is None
