"""OIDCClients reconciled by the operator process on a real API server (kube-apiserver, etcd and
the garbage collector of the harness): the client Secret made and copied into the Stack's
credentials, rotation by annotation with the previous secret accepted for the grace period and
then gone, rotation on a period by the operator's own timer, a hand-broken Secret refused, a
public client without a Secret, updates and deletion reaching the config, and no secret value
in a status, an Event or the ConfigMap.

The operator here watches only this module's namespace, so it does not meet the shared one of
tests/integration (which watches every namespace but is never given this namespace's Stack)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from stackyard_harness.harness import Harness
from stackyard_harness.kube import KubeCluster
from stackyard_harness.programs import create_backends_secret, install_crds, start_operator

STACK = "demo"
CREDENTIALS = f"{STACK}-credentials"


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # a read racing a write: try again
            last = exc
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}" + (f" (last error: {last})" if last else ""))


class Space:
    def __init__(self, kube: KubeCluster, name: str) -> None:
        self.kube, self.name = kube, name

    def kubectl(self, *args: str, check: bool = True, input: str | None = None):  # type: ignore[no-untyped-def]
        return self.kube.kubectl("-n", self.name, *args, check=check, input=input)

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        result = self.kubectl("get", kind, name, "-o", "json", check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr:
                return None
            raise AssertionError(result.stderr)
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    def secret(self, name: str) -> dict[str, str] | None:
        found = self.get("secret", name)
        if found is None:
            return None
        return {k: base64.b64decode(v).decode() for k, v in (found.get("data") or {}).items()}

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        client = self.get("oidcclient", name) or {}
        return next((c for c in client.get("status", {}).get("conditions", []) if c["type"] == type_), None)

    def reason(self, name: str, type_: str) -> tuple[str, str] | None:
        found = self.condition(name, type_)
        return (found["status"], found["reason"]) if found else None

    def config(self) -> dict[str, Any]:
        config_map = self.get("configmap", f"{STACK}-config") or {}
        return json.loads((config_map.get("data") or {}).get("config.json", "{}"))  # type: ignore[no-any-return]

    def shown(self) -> str:
        """Everything a person may read without Secret access: the ConfigMap, the statuses of
        the OIDCClients and the Stack, and the Events of the namespace."""
        parts = [
            self.kubectl("get", "configmap", f"{STACK}-config", "-o", "json").stdout,
            self.kubectl("get", "oidcclients,stacks", "-o", "json").stdout,
            self.kubectl("get", "events", "-o", "json").stdout,
        ]
        return "\n".join(parts)


def client(name: str, type_: str = "confidential", annotations: dict[str, str] | None = None, **spec: Any):
    body: dict[str, Any] = {"stackRef": {"name": STACK}, "type": type_}
    if type_ != "machine":
        body["redirectUris"] = [f"http://127.0.0.1:8400/{name}/callback"]
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "OIDCClient",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": body | spec,
    }


@pytest.fixture(scope="module")
def space(kube: KubeCluster, harness: Harness) -> Iterator[Space]:
    install_crds(kube)
    name = f"oidc-{uuid.uuid4().hex[:8]}"
    kube.kubectl("create", "namespace", name)
    # The operator reads only the references; nothing here connects to Redis or MongoDB.
    create_backends_secret(kube, name, "redis://127.0.0.1:1/0", "mongodb://127.0.0.1:1/")
    space = Space(kube, name)
    space.apply(
        {
            "apiVersion": "stackyard.dev/v1alpha1",
            "kind": "Stack",
            "metadata": {"name": STACK},
            "spec": {
                "redis": {"urlSecretRef": {"name": "backends", "key": "redis"}},
                "mongodb": {"uriSecretRef": {"name": "backends", "key": "mongodb"}},
            },
        }
    )
    operator = start_operator(kube, harness.run_dir, "--namespace", name, name=f"operator-{name}")
    try:
        wait_for(lambda: space.get("configmap", f"{STACK}-config"), what="the Stack's config")
        yield space
    finally:
        operator.stop()
        kube.kubectl("delete", "namespace", name, "--wait=false")


def made_secret(space: Space, name: str) -> dict[str, str]:
    return wait_for(
        lambda: (data := space.secret(f"{name}-oidc-client")) and "clientSecret" in data and data,
        what=f"the Secret {name}-oidc-client",
    )


def credential(space: Space, name: str, key: str = "clientSecret") -> str | None:
    return (space.secret(CREDENTIALS) or {}).get(f"oidcclient.{name}.{key}")


def test_a_confidential_client_gets_its_secret_credentials_status_and_ready(space):
    space.apply(client("web", postLogoutRedirectUris=["http://127.0.0.1:8400/"]))
    data = made_secret(space, "web")
    assert data["clientId"] == "web" and len(data["clientSecret"]) >= 43
    assert "previousClientSecret" not in data
    stored = space.get("secret", "web-oidc-client")
    (owner,) = stored["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == ("OIDCClient", space.get("oidcclient", "web")["metadata"]["uid"])
    wait_for(lambda: credential(space, "web") == data["clientSecret"], what="the secret in the credentials")
    wait_for(lambda: space.reason("web", "Ready") == ("True", "InForce"), what="Ready")
    assert space.reason("web", "SecretReady") == ("True", "Created")
    status = space.get("oidcclient", "web")["status"]
    assert (status["clientId"], status["secretName"]) == ("web", "web-oidc-client")
    assert status["secretRotatedAt"].endswith("Z") and "nextSecretRotation" not in status
    wait_for(lambda: "web" in space.config().get("oidcClients", {}), what="the client in the config")
    assert space.config()["oidcClients"]["web"]["postLogoutRedirectUris"] == ["http://127.0.0.1:8400/"]
    assert data["clientSecret"] not in space.shown()


def test_rotation_by_annotation_keeps_the_previous_secret_for_the_grace_period(space):
    space.apply(client("rotating", clientSecret={"gracePeriod": "4s"}))
    first = made_secret(space, "rotating")["clientSecret"]
    space.kubectl("annotate", "oidcclient", "rotating", "stackyard.dev/rotate-client-secret=1")
    rotated = wait_for(
        lambda: (d := space.secret("rotating-oidc-client")) and d["clientSecret"] != first and d, what="a rotation"
    )
    assert rotated["previousClientSecret"] == first and len(rotated["clientSecret"]) >= 43
    wait_for(
        lambda: (
            credential(space, "rotating") == rotated["clientSecret"]
            and credential(space, "rotating", "previousClientSecret") == first
        ),
        what="both secrets in the credentials",
    )
    wait_for(lambda: space.reason("rotating", "SecretReady") == ("True", "Rotated"), what="SecretReady Rotated")
    assert first not in space.shown() and rotated["clientSecret"] not in space.shown()

    # The grace period ends with no event to prompt it: the operator's timer.
    after = wait_for(
        lambda: (d := space.secret("rotating-oidc-client")) and "previousClientSecret" not in d and d,
        timeout=15,
        what="the previous secret gone",
    )
    assert after["clientSecret"] == rotated["clientSecret"], "the same request is not carried out twice"
    wait_for(lambda: credential(space, "rotating", "previousClientSecret") is None, what="out of the credentials")
    wait_for(lambda: space.reason("rotating", "SecretReady") == ("True", "InForce"), what="SecretReady InForce")


def test_rotation_period_makes_a_new_secret_on_time(space):
    space.apply(client("periodic", clientSecret={"rotationPeriod": "4s", "gracePeriod": "1s"}))
    first = made_secret(space, "periodic")["clientSecret"]
    status = wait_for(lambda: space.get("oidcclient", "periodic").get("status", {}).get("nextSecretRotation"))
    assert status.endswith("Z")
    wait_for(
        lambda: (d := space.secret("periodic-oidc-client")) and d["clientSecret"] != first,
        timeout=15,
        what="a rotation on the period",
    )
    space.kubectl("delete", "oidcclient", "periodic")  # no more rotations for the other tests


def test_a_public_client_has_no_secret_and_one_turned_public_loses_it(space):
    space.apply(client("spa", "public"))
    wait_for(lambda: space.reason("spa", "SecretReady") == ("True", "NoSecret"), what="SecretReady NoSecret")
    assert space.get("secret", "spa-oidc-client") is None
    assert "secretName" not in space.get("oidcclient", "spa")["status"]
    assert credential(space, "spa") is None

    space.apply(client("turning"))
    made_secret(space, "turning")
    space.apply(client("turning", "public"))
    wait_for(lambda: space.get("secret", "turning-oidc-client") is None, what="its Secret deleted")
    wait_for(lambda: credential(space, "turning") is None, what="out of the credentials")
    wait_for(lambda: space.reason("turning", "SecretReady") == ("True", "NoSecret"), what="SecretReady NoSecret")


def test_a_hand_broken_secret_keeps_the_one_in_force(space):
    space.apply(client("broken"))
    good = made_secret(space, "broken")["clientSecret"]
    wait_for(lambda: credential(space, "broken") == good, what="the secret in the credentials")
    patch = {"data": {"clientSecret": base64.b64encode(b"short").decode()}}

    def broken() -> bool:
        # A reconcile that read the Secret before the edit may apply it over the edit once:
        # edit again until the operator has seen it.
        if space.secret("broken-oidc-client")["clientSecret"] != "short":
            space.kubectl("patch", "secret", "broken-oidc-client", "--type=merge", "-p", json.dumps(patch))
        return space.reason("broken", "SecretReady") == ("False", "SecretInvalid")

    wait_for(broken, what="SecretInvalid")
    assert credential(space, "broken") == good
    assert space.secret("broken-oidc-client")["clientSecret"] == "short", "left for the person to fix"
    # Asking for a rotation repairs it.
    space.kubectl("annotate", "oidcclient", "broken", "stackyard.dev/rotate-client-secret=fix")
    wait_for(lambda: len(space.secret("broken-oidc-client")["clientSecret"]) >= 43, what="a new secret")
    wait_for(lambda: space.reason("broken", "SecretReady") == ("True", "Rotated"), what="SecretReady Rotated")


def test_updates_reach_the_config_and_deletion_removes_the_client_and_its_secret(space):
    space.apply(client("short-lived", type_="machine", scopes=["reports:read"]))
    made_secret(space, "short-lived")
    wait_for(lambda: "short-lived" in space.config().get("oidcClients", {}), what="in the config")
    space.apply(client("short-lived", type_="machine", scopes=["reports:read", "reports:write"]))
    wait_for(
        lambda: space.config()["oidcClients"]["short-lived"]["scopes"] == ["reports:read", "reports:write"],
        what="the new scopes in the config",
    )
    space.kubectl("delete", "oidcclient", "short-lived")
    wait_for(lambda: "short-lived" not in space.config().get("oidcClients", {}), what="out of the config")
    wait_for(lambda: credential(space, "short-lived") is None, what="out of the credentials")
    wait_for(lambda: space.get("secret", "short-lived-oidc-client") is None, what="its Secret garbage-collected")


def test_the_example_clients_are_accepted_and_ready(space):
    example = Path(__file__).resolve().parents[2] / "examples" / "oidc-client.yaml"
    space.kubectl("apply", "-f", str(example))
    names = ("demo-web", "demo-spa", "demo-worker", "partner-app")
    for name in names:
        wait_for(lambda n=name: space.reason(n, "Ready") == ("True", "InForce"), what=f"{name} Ready")
    for name in ("demo-web", "demo-worker", "partner-app"):
        assert made_secret(space, name)["clientId"] == name
    assert space.get("secret", "demo-spa-oidc-client") is None
    wait_for(lambda: set(names) <= set(space.config().get("oidcClients", {})), what="every example in the config")
    assert space.get("oidcclient", "demo-web")["status"]["nextSecretRotation"].endswith("Z")
