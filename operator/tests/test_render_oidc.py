"""render() with OIDCClients: their place in the config, the client Secret made once with a
fresh secret, rotated on a period or by annotation with the previous secret kept for the grace
period, copied into the credentials, a hand-broken Secret refused (SecretInvalid), public
clients without a Secret, and no secret value in a status, a condition or the config."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

from stackyard.config import credential_key
from stackyard_operator.oidc_clients import (
    ORIGIN_ANNOTATION,
    PREVIOUS_EXPIRES_ANNOTATION,
    ROTATED_AT_ANNOTATION,
    ROTATION_HANDLED_ANNOTATION,
    OIDCObserved,
    StoredSecret,
    timestamp,
)
from stackyard_operator.render import Observed, render
from test_render import BACKENDS, STACK, conditions

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
FRESH = "F" * 43
OTHER_FRESH = "G" * 43
SECRET = "S" * 43
CURRENT = credential_key("OIDCClient", "web", "clientSecret")
PREVIOUS = credential_key("OIDCClient", "web", "previousClientSecret")


def client(name: str = "web", annotations: dict | None = None, status: dict | None = None, **spec) -> dict:
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "OIDCClient",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": f"uid-{name}",
            "generation": 1,
            "annotations": annotations or {},
        },
        "spec": {
            "stackRef": {"name": "demo"},
            "type": "confidential",
            "redirectUris": ["https://app.example/callback"],
        }
        | spec,
        "status": status or {},
    }


def stored(data: dict, annotations: dict | None = None, owner: str = "uid-web") -> StoredSecret:
    return StoredSecret(
        {"clientId": "web", **data},
        annotations if annotations is not None else {ROTATED_AT_ANNOTATION: timestamp(NOW - timedelta(hours=1))},
        {"stackyard.dev/oidc-client": "web", "app.kubernetes.io/managed-by": "stackyard-operator"},
        frozenset({owner}),
        "uid-secret",
    )


def observe(members, secrets=None, now=NOW, fresh=FRESH, credentials=None, previous_config=None) -> Observed:
    names = [m["metadata"]["name"] for m in members if m["kind"] == "OIDCClient"]
    return Observed(
        STACK,
        members,
        {"backends": BACKENDS},
        previous_config=previous_config,
        previous_credentials=credentials or {},
        oidc=OIDCObserved(now, secrets or {}, dict.fromkeys(names, fresh)),
    )


def client_secret(desired, name: str = "web-oidc-client") -> dict | None:
    found = [o for o in desired.objects if o["kind"] == "Secret" and o["metadata"]["name"] == name]
    return found[0] if found else None


def decoded(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def secret_ready(desired, name: str = "web"):
    condition = conditions(desired, "OIDCClient", name)["SecretReady"]
    return condition.status, condition.reason


def everything_but_secrets(desired) -> str:
    """What may be shown: the ConfigMap, statuses (conditions, fields) and the Stack's own."""
    config_map = next(o for o in desired.objects if o["kind"] == "ConfigMap")
    statuses = [
        {"conditions": [c.__dict__ for c in s.conditions], "fields": s.fields} for s in desired.statuses.values()
    ]
    return json.dumps([config_map, statuses])


def test_a_confidential_client_gets_its_secret_made_into_the_credentials_and_is_ready():
    desired = render(observe([client(postLogoutRedirectUris=["https://app.example/"])]))
    assert desired.config.oidc_clients["web"].redirect_uris == ["https://app.example/callback"]
    made = client_secret(desired)
    assert decoded(made) == {"clientId": "web", "clientSecret": FRESH}
    (owner,) = made["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("OIDCClient", "web", "uid-web")
    assert made["metadata"]["labels"]["stackyard.dev/oidc-client"] == "web"
    assert made["metadata"]["annotations"][ROTATED_AT_ANNOTATION] == "2026-11-26T12:00:00Z"
    assert desired.credentials[CURRENT] == FRESH and PREVIOUS not in desired.credentials
    assert conditions(desired, "OIDCClient", "web")["Ready"].reason == "InForce"
    assert secret_ready(desired) == ("True", "Created")
    fields = desired.statuses[("OIDCClient", "web")].fields
    assert fields == {
        "clientId": "web",
        "secretName": "web-oidc-client",
        "secretRotatedAt": "2026-11-26T12:00:00Z",
        "nextSecretRotation": None,
    }
    assert desired.next_change is None, "no rotation period, no grace period: nothing to wake up for"
    assert FRESH not in everything_but_secrets(desired)
    assert desired.stack_status.fields["members"]["OIDCClient"] == 1


def test_a_stored_secret_stays_and_a_resync_changes_nothing():
    secrets = {"web-oidc-client": stored({"clientSecret": SECRET})}
    observed = observe([client()], secrets, credentials={CURRENT: SECRET})
    first, second = render(observed), render(observed)
    assert decoded(client_secret(first))["clientSecret"] == SECRET
    assert first.objects == second.objects and first.credentials == second.credentials
    assert first.credentials[CURRENT] == SECRET


def test_a_machine_client_gets_a_secret_under_the_name_it_asks_for():
    machine = client(
        "worker", type="machine", redirectUris=[], scopes=["reports:read"], clientSecret={"secretName": "w-creds"}
    )
    desired = render(observe([machine]))
    assert decoded(client_secret(desired, "w-creds")) == {"clientId": "worker", "clientSecret": FRESH}
    assert desired.credentials[credential_key("OIDCClient", "worker", "clientSecret")] == FRESH
    assert desired.statuses[("OIDCClient", "worker")].fields["secretName"] == "w-creds"


def test_a_public_client_has_no_secret():
    desired = render(observe([client("spa", type="public")]))
    assert not [o for o in desired.objects if o["kind"] == "Secret" and "spa" in o["metadata"]["name"]]
    assert not [k for k in desired.credentials if k.startswith("oidcclient.spa.")]
    assert secret_ready(desired, "spa") == ("True", "NoSecret")
    assert desired.statuses[("OIDCClient", "spa")].fields["secretName"] is None


def test_a_client_turned_public_loses_the_secret_the_operator_made_but_not_a_foreign_one():
    secrets = {"web-oidc-client": stored({"clientSecret": SECRET})}
    desired = render(observe([client(type="public")], secrets, credentials={CURRENT: SECRET}))
    assert [(o.kind, o.name, o.uid) for o in desired.obsolete] == [("Secret", "web-oidc-client", "uid-secret")]
    assert CURRENT not in desired.credentials
    foreign = {"web-oidc-client": StoredSecret({"clientSecret": SECRET}, {}, {}, frozenset(), "uid-foreign")}
    assert render(observe([client(type="public")], foreign)).obsolete == []


def test_rotation_by_annotation_keeps_the_previous_secret_for_the_grace_period():
    secrets = {"web-oidc-client": stored({"clientSecret": SECRET})}
    rotate = client(annotations={"stackyard.dev/rotate-client-secret": "1"}, clientSecret={"gracePeriod": "10m"})
    desired = render(observe([rotate], secrets, credentials={CURRENT: SECRET}))
    made = client_secret(desired)
    assert decoded(made) == {"clientId": "web", "clientSecret": FRESH, "previousClientSecret": SECRET}
    assert made["metadata"]["annotations"][ROTATION_HANDLED_ANNOTATION] == "1"
    assert made["metadata"]["annotations"][PREVIOUS_EXPIRES_ANNOTATION] == "2026-11-26T12:10:00Z"
    assert desired.credentials[CURRENT] == FRESH and desired.credentials[PREVIOUS] == SECRET
    assert secret_ready(desired) == ("True", "Rotated")
    assert desired.next_change == NOW + timedelta(minutes=10), "woken up when the grace period ends"
    assert SECRET not in everything_but_secrets(desired) and FRESH not in everything_but_secrets(desired)

    # The same request again (handled, as the Secret says): no new rotation.
    after = {"web-oidc-client": StoredSecret.of(made)}
    again = render(observe([rotate], after, now=NOW + timedelta(minutes=1), fresh=OTHER_FRESH))
    assert decoded(client_secret(again)) == decoded(made)
    # The grace period over: the previous secret goes.
    later = render(observe([rotate], after, now=NOW + timedelta(minutes=10), fresh=OTHER_FRESH))
    assert decoded(client_secret(later)) == {"clientId": "web", "clientSecret": FRESH}
    assert PREVIOUS not in later.credentials
    assert secret_ready(later) == ("True", "InForce")
    assert later.next_change is None


def test_a_new_annotation_value_rotates_again():
    handled = {ROTATED_AT_ANNOTATION: timestamp(NOW), ROTATION_HANDLED_ANNOTATION: "1"}
    secrets = {"web-oidc-client": stored({"clientSecret": SECRET}, handled)}
    desired = render(observe([client(annotations={"stackyard.dev/rotate-client-secret": "2"})], secrets))
    assert decoded(client_secret(desired))["clientSecret"] == FRESH


def test_rotation_period_rotates_when_due_and_sets_the_timer():
    spec = {"clientSecret": {"rotationPeriod": "1h", "gracePeriod": "5m"}}
    at = {ROTATED_AT_ANNOTATION: timestamp(NOW - timedelta(minutes=30))}
    secrets = {"web-oidc-client": stored({"clientSecret": SECRET}, at)}
    early = render(observe([client(**spec)], secrets))
    assert decoded(client_secret(early))["clientSecret"] == SECRET
    assert early.next_change == NOW + timedelta(minutes=30)
    assert early.statuses[("OIDCClient", "web")].fields["nextSecretRotation"] == "2026-11-26T12:30:00Z"

    due = render(observe([client(**spec)], secrets, now=NOW + timedelta(minutes=30)))
    assert decoded(client_secret(due)) == {"clientId": "web", "clientSecret": FRESH, "previousClientSecret": SECRET}
    assert due.next_change == NOW + timedelta(minutes=35), "the grace period ends before the next rotation"
    fields = due.statuses[("OIDCClient", "web")].fields
    assert (fields["secretRotatedAt"], fields["nextSecretRotation"]) == ("2026-11-26T12:30:00Z", "2026-11-26T13:30:00Z")


def test_a_hand_broken_secret_keeps_the_one_in_force():
    for broken in ("", "too-short"):
        secrets = {"web-oidc-client": stored({"clientSecret": broken})}
        desired = render(observe([client()], secrets, credentials={CURRENT: SECRET}))
        assert client_secret(desired) is None, "what a person wrote is left as it is"
        assert desired.credentials[CURRENT] == SECRET
        status, reason = secret_ready(desired)
        assert (status, reason) == ("False", "SecretInvalid")
        message = conditions(desired, "OIDCClient", "web")["SecretReady"].message
        assert "web-oidc-client" in message and broken not in message.split(": ", 1)[1].split(";")[0].split()
        assert "OIDCClient web: SecretInvalid" in conditions(desired, "Stack", "demo")["MembersReady"].message
        assert SECRET not in everything_but_secrets(desired)


def test_a_rotation_asked_for_repairs_a_broken_secret():
    secrets = {"web-oidc-client": stored({"clientSecret": ""})}
    fix = client(annotations={"stackyard.dev/rotate-client-secret": "fix"})
    desired = render(observe([fix], secrets, credentials={CURRENT: SECRET}))
    assert decoded(client_secret(desired)) == {"clientId": "web", "clientSecret": FRESH, "previousClientSecret": SECRET}
    assert secret_ready(desired) == ("True", "Rotated")


def test_a_longer_hand_edit_is_taken_as_the_new_secret():
    edited = "E" * 40
    secrets = {"web-oidc-client": stored({"clientSecret": edited}, {ORIGIN_ANNOTATION: "created"})}
    desired = render(observe([client()], secrets, credentials={CURRENT: SECRET}))
    assert desired.credentials[CURRENT] == edited
    assert secret_ready(desired) == ("True", "InForce")


def test_a_deleted_secret_comes_back_with_the_secrets_in_force():
    status = {"secretRotatedAt": timestamp(NOW - timedelta(minutes=2))}
    desired = render(
        observe(
            [client(status=status, clientSecret={"gracePeriod": "10m"})],
            {},
            credentials={CURRENT: SECRET, PREVIOUS: "P" * 43},
        )
    )
    assert decoded(client_secret(desired)) == {
        "clientId": "web",
        "clientSecret": SECRET,
        "previousClientSecret": "P" * 43,
    }
    assert desired.next_change == NOW + timedelta(minutes=8)


def test_a_deleted_client_leaves_the_config_and_the_credentials():
    secrets = {"web-oidc-client": stored({"clientSecret": SECRET})}
    before = render(observe([client()], secrets, credentials={CURRENT: SECRET}))
    after = render(observe([], previous_config=before.config, credentials=before.credentials))
    assert "web" not in after.config.oidc_clients
    assert CURRENT not in after.credentials
    assert client_secret(after) is None, "its Secret goes with it (owner reference)"


def test_updated_redirect_uris_reach_the_config():
    secrets = {"web-oidc-client": stored({"clientSecret": SECRET})}
    uris = ["https://app.example/callback", "https://app.example/other"]
    desired = render(observe([client(redirectUris=uris)], secrets, credentials={CURRENT: SECRET}))
    assert desired.config.oidc_clients["web"].redirect_uris == uris


def test_a_disabled_client_is_ready_disabled_and_keeps_its_secret():
    secrets = {"web-oidc-client": stored({"clientSecret": SECRET})}
    desired = render(observe([client(enabled=False)], secrets, credentials={CURRENT: SECRET}))
    assert conditions(desired, "OIDCClient", "web")["Ready"].reason == "Disabled"
    assert desired.credentials[CURRENT] == SECRET


def test_an_invalid_update_keeps_the_last_good_version_and_its_secret():
    secrets = {"web-oidc-client": stored({"clientSecret": SECRET})}
    good = render(observe([client()], secrets, credentials={CURRENT: SECRET}))
    bad = client(type="machine")  # a machine client with redirect URIs
    desired = render(observe([bad], secrets, credentials=good.credentials, previous_config=good.config))
    ready = conditions(desired, "OIDCClient", "web")["Ready"]
    assert (ready.status, ready.reason) == ("False", "Invalid")
    assert desired.config.oidc_clients["web"].type == "confidential"
    assert desired.credentials[CURRENT] == SECRET
    assert client_secret(desired) is None


def test_not_observed_keeps_the_secrets_in_force_and_makes_nothing():
    desired = render(Observed(STACK, [client()], {"backends": BACKENDS}, previous_credentials={CURRENT: SECRET}))
    assert desired.credentials[CURRENT] == SECRET
    assert client_secret(desired) is None
