"""The harness's API server is a real one: CRDs, watches, CEL admission, RBAC."""

from __future__ import annotations

import asyncio
import subprocess
import textwrap
import time

import pytest
from kubernetes_asyncio import client, config, watch

WIDGET_CRD = textwrap.dedent(
    """
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: widgets.harness.stackyard.dev
    spec:
      group: harness.stackyard.dev
      names: {kind: Widget, plural: widgets, singular: widget}
      scope: Namespaced
      versions:
      - name: v1
        served: true
        storage: true
        schema:
          openAPIV3Schema:
            type: object
            properties:
              spec:
                type: object
                required: [min, max]
                properties:
                  min: {type: integer}
                  max: {type: integer}
                x-kubernetes-validations:
                - rule: self.min <= self.max
                  message: min must not exceed max
    """
)


def widget(name: str, low: int, high: int) -> str:
    return (
        "apiVersion: harness.stackyard.dev/v1\nkind: Widget\n"
        f"metadata: {{name: {name}}}\nspec: {{min: {low}, max: {high}}}\n"
    )


@pytest.fixture(scope="module")
def widget_crd(kube):
    kube.kubectl("apply", "-f", "-", input=WIDGET_CRD)
    kube.kubectl("wait", "--for=condition=Established", "crd/widgets.harness.stackyard.dev", "--timeout=30s")
    yield
    kube.kubectl("delete", "crd", "widgets.harness.stackyard.dev", "--wait=false")


def test_custom_resource_is_stored_and_read_back(kube, widget_crd):
    kube.kubectl("apply", "-f", "-", input=widget("stored", 1, 5))
    assert kube.kubectl_json("get", "widget", "stored")["spec"] == {"min": 1, "max": 5}


def test_cel_rule_rejects_object_with_its_message(kube, widget_crd):
    result = kube.kubectl("apply", "-f", "-", input=widget("inverted", 9, 2), check=False)
    assert result.returncode != 0
    assert "min must not exceed max" in result.stderr
    assert kube.kubectl("get", "widget", "inverted", check=False).returncode != 0


async def test_watch_sees_a_change(kube, widget_crd):
    kube.kubectl("apply", "-f", "-", input=widget("watched", 1, 2))
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(kube.kubeconfig), client_configuration=configuration)
    async with client.ApiClient(configuration) as api_client:
        api = client.CustomObjectsApi(api_client)
        current = await api.get_namespaced_custom_object("harness.stackyard.dev", "v1", "default", "widgets", "watched")
        stream = watch.Watch().stream(
            api.list_namespaced_custom_object,
            "harness.stackyard.dev",
            "v1",
            "default",
            "widgets",
            field_selector="metadata.name=watched",
            resource_version=current["metadata"]["resourceVersion"],
            timeout_seconds=20,
        )
        await asyncio.to_thread(kube.kubectl, "patch", "widget", "watched", "--type=merge", "-p", '{"spec":{"max":7}}')
        async for event in stream:
            if event["type"] == "MODIFIED":
                assert event["object"]["spec"]["max"] == 7
                break
        else:
            pytest.fail("the watch ended without the change")


def test_unauthorised_service_account_is_forbidden(kube):
    kube.kubectl("create", "serviceaccount", "nobody")
    token = kube.kubectl("create", "token", "nobody").stdout.strip()
    as_nobody = kube.write_token_kubeconfig("nobody", token)

    denied = kube.kubectl("get", "secrets", kubeconfig=as_nobody, check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()
    assert 'User "system:serviceaccount:default:nobody"' in denied.stderr

    # RBAC, not a broken token: a RoleBinding grants exactly what it says.
    kube.kubectl("create", "rolebinding", "nobody-view", "--clusterrole=view", "--serviceaccount=default:nobody")
    deadline = time.monotonic() + 10  # the authorizer sees the new binding through its own watch
    while kube.kubectl("get", "configmaps", kubeconfig=as_nobody, check=False).returncode != 0:
        assert time.monotonic() < deadline, "the RoleBinding never took effect"
        time.sleep(0.2)
    still_denied = kube.kubectl("create", "configmap", "x", kubeconfig=as_nobody, check=False)
    assert "forbidden" in still_denied.stderr.lower()


def test_anonymous_requests_are_refused(kube):
    result = subprocess.run(
        ["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", f"{kube.server}/api/v1/namespaces"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == "401"
