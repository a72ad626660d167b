"""EmailProviders on the real API server with a real worker (as the Stack's ServiceAccount):
the worker probes each provider and writes Reachable, the breaker and the last attempt into
its status, next to the operator's Ready and CredentialsResolved, without a secret."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from stackyard_harness.fake_email_providers import RESEND_API_KEY, FakeEmailProviders

from .conftest import stack_manifest, wait_for

pytestmark = pytest.mark.usefixtures("operator")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeEmailProviders]:
    with FakeEmailProviders() as running:
        yield running


def provider(name: str, fake: FakeEmailProviders, key: str) -> dict:
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "EmailProvider",
        "metadata": {"name": name},
        "spec": {
            "stackRef": {"name": "demo"},
            "type": "resend",
            "priority": 10,
            "resend": {"apiKeySecretRef": {"name": "keys", "key": key}, "baseUrl": fake.base_url("resend")},
        },
    }


def conditions(namespace, name: str) -> dict[str, dict]:
    obj = namespace.get("emailprovider", name) or {}
    return {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}


def test_the_worker_writes_reachable_and_the_breaker_next_to_the_operators_conditions(
    namespace, backends, services, fake
):
    wrong_key = "re_wrong_key_4d1c9e"
    namespace.secret("keys", good=RESEND_API_KEY, bad=wrong_key)
    namespace.apply([stack_manifest(), provider("primary", fake, "good"), provider("stale", fake, "bad")])
    wait_for(lambda: conditions(namespace, "stale").get("Ready", {}).get("status") == "True", what="Ready")
    services("worker", namespace)

    def reachable(name: str, status: str):
        condition = conditions(namespace, name).get("Reachable")
        return condition if condition and condition["status"] == status else None

    good = wait_for(lambda: reachable("primary", "True"), timeout=30, what="primary Reachable=True")
    bad = wait_for(lambda: reachable("stale", "False"), timeout=30, what="stale Reachable=False")
    assert good["reason"] == "Answered"
    assert bad["reason"] == "InvalidCredentials" and "invalid_api_key" in bad["message"]
    status = namespace.get("emailprovider", "stale")["status"]
    assert status["breaker"]["state"] == "closed" and status["lastAttempt"]["kind"] == "probe"
    assert {"Ready", "CredentialsResolved", "Reachable"} <= set(conditions(namespace, "stale"))
    assert wrong_key not in str(status) and RESEND_API_KEY not in str(namespace.get("emailprovider", "primary"))
    columns = namespace.kubectl("get", "emailprovider", "stale", "-o", "wide").stdout
    assert "False" in columns.splitlines()[1] and "closed" in columns

    # An edit makes the operator write its conditions again; the worker's Reachable stays.
    namespace.apply(
        provider("stale", fake, "bad") | {"spec": provider("stale", fake, "bad")["spec"] | {"priority": 20}}
    )
    wait_for(
        lambda: conditions(namespace, "stale").get("Ready", {}).get("observedGeneration") == 2,
        what="the operator's write for generation 2",
    )
    assert conditions(namespace, "stale")["Reachable"]["status"] == "False"
