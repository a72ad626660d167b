"""EmailTemplates applied with kubectl against the real API server: a valid one is Ready
and in the Stack's config, a template that does not compile gets Ready=False naming the
part, the locale and the line (and a broken edit keeps the last good version), and the
API server refuses a template without a body."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import stack_manifest, wait_for

pytestmark = pytest.mark.usefixtures("operator")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def email_template(name: str = "welcome", **spec):
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "EmailTemplate",
        "metadata": {"name": name},
        "spec": {
            "stackRef": {"name": "demo"},
            "subject": "Welcome, {{ user.name }}",
            "html": "<h1>Welcome</h1>\n<p>Hello {{ user.name }}</p>",
            "variables": {"user": {"description": "The new user."}, "plan": {"required": False, "default": "free"}},
            "locales": {"fr": {"subject": "Bienvenue, {{ user.name }}"}},
        }
        | spec,
    }


def ready(namespace, name, status="True"):
    obj = namespace.get("emailtemplate", name) or {}
    condition = next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"), None)
    if condition and condition["status"] == status and condition["observedGeneration"] == obj["metadata"]["generation"]:
        return obj
    return None


def config(namespace):
    return json.loads(namespace.get("configmap", "demo-config")["data"]["config.json"])


def test_a_valid_template_is_ready_and_in_the_config(namespace, backends):
    namespace.apply([stack_manifest(), email_template()])
    obj = wait_for(lambda: ready(namespace, "welcome"), what="the template Ready")
    assert obj["status"]["conditions"][0]["reason"] == "InForce"
    assert obj["spec"]["defaultLocale"] == "en", "the API server fills in the default"
    applied = config(namespace)["emailTemplates"]["welcome"]
    assert applied["locales"]["fr"]["subject"] == "Bienvenue, {{ user.name }}"
    assert applied["variables"]["plan"] == {"required": False, "default": "free", "description": ""}
    listing = namespace.kubectl("get", "etpl", "welcome").stdout
    assert "True" in listing and "en" in listing


def test_a_template_that_does_not_compile_is_not_ready_and_names_the_part_and_line(namespace, backends):
    namespace.apply([stack_manifest(), email_template()])
    wait_for(lambda: ready(namespace, "welcome"), what="the template Ready")

    unclosed = "<h1>Welcome</h1>\n<p>Hello {{ user.name </p>"
    namespace.apply([email_template(html=unclosed), email_template("receipt", html=unclosed)])
    broken = wait_for(lambda: ready(namespace, "welcome", "False"), what="the broken edit Ready=False")
    condition = broken["status"]["conditions"][0]
    assert condition["reason"] == "Invalid"
    assert condition["message"].startswith("spec: html, line 2: "), condition["message"]
    assert condition["message"].endswith("; the last good version stays in force")
    new = wait_for(lambda: ready(namespace, "receipt", "False"), what="the new broken template Ready=False")
    assert new["status"]["conditions"][0]["message"].startswith("spec: html, line 2: ")

    french = {"fr": {"html": "<p>Bonjour</p>\n<p>\n{{ user.name ) }}</p>"}}
    namespace.apply(email_template("receipt", locales=french))
    wait_for(
        lambda: (
            (obj := ready(namespace, "receipt", "False"))
            and obj["status"]["conditions"][0]["message"].startswith("spec: html (fr), line 3: ")
        ),
        what="the French part's error",
    )

    applied = config(namespace)["emailTemplates"]
    assert set(applied) == {"welcome"}
    assert applied["welcome"]["html"] == "<h1>Welcome</h1>\n<p>Hello {{ user.name }}</p>", "the last good version"
    members_ready = namespace.condition("stack", "demo", "MembersReady")
    assert members_ready["status"] == "False" and "EmailTemplate receipt: Invalid" in members_ready["message"]
    assert namespace.condition("stack", "demo")["status"] == "True"

    namespace.apply(email_template(subject="Hello again, {{ user.name }}"))
    wait_for(lambda: ready(namespace, "welcome"), what="the fixed template Ready")
    assert config(namespace)["emailTemplates"]["welcome"]["subject"] == "Hello again, {{ user.name }}"


def test_the_api_server_rejects_what_the_cel_rules_say(namespace):
    no_body = email_template()
    del no_body["spec"]["html"]
    rejected = {
        "at least one of html and text must be set": no_body,
        "every variable name must look like": email_template(variables={"first-name": {}}),
        "every locale tag must look like": email_template(locales={"French": {"subject": "x"}}),
    }
    for message, manifest in rejected.items():
        result = namespace.try_apply(manifest)
        assert result.returncode != 0 and message in result.stderr, (message, result.stderr)
    assert namespace.get("emailtemplate", "welcome") is None


def test_the_example_applies_and_becomes_ready(namespace, backends):
    for example in ("stack.yaml", "email-template.yaml"):
        namespace.kubectl("apply", "-f", str(EXAMPLES / example))
    wait_for(lambda: ready(namespace, "welcome"), what="the example EmailTemplate Ready")
    assert set(config(namespace)["emailTemplates"]["welcome"]["locales"]) == {"fr"}
