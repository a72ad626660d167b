"""The EmailTemplate model: a valid template, and what it refuses on apply (with the
part, the locale and the line of the error), as the operator reports it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from stackyard.config import RuntimeConfig
from stackyard.email.templates import compile_template
from stackyard.resources import EmailTemplate, EmailTemplateSpec, StackSpec
from stackyard.resources.crdgen import crd

WELCOME = {
    "stackRef": {"name": "demo"},
    "subject": "Welcome, {{ name }}",
    "html": "<p>Hello {{ name }},</p>\n<p>your plan: {{ plan }}</p>",
    "variables": {"name": {}, "plan": {"required": False, "default": "free"}},
    "locales": {"fr": {"subject": "Bienvenue, {{ name }}", "html": "<p>Bonjour {{ name }},</p>\n<p>{{ plan }}</p>"}},
}


def template(**changes):
    return EmailTemplateSpec.model_validate({**WELCOME, **changes})


def message_of(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    error = exc.value.errors()[0]
    return str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"]


def test_a_valid_template_compiles_and_renders_per_locale():
    spec = template()
    assert spec.default_locale == "en" and spec.variables["name"].required
    compiled = compile_template(spec.template_source())
    assert compiled.render({"name": "Ada"}).subject == "Welcome, Ada"
    french = compiled.render({"name": "Ada"}, locale="fr-CA")
    assert (french.subject, french.locale) == ("Bienvenue, Ada", "fr")
    assert "free" in french.text


def test_a_syntax_error_names_the_part_the_locale_and_the_line():
    broken = {"fr": {"html": "<p>Bonjour</p>\n<p>\n{{ name }}}\n{% if %}"}}
    with pytest.raises(ValidationError) as exc:
        template(locales=broken)
    message = message_of(exc)
    assert message.startswith("html (fr), line 4: ")
    assert exc.value.error_count() == 1


def test_an_unclosed_expression_in_the_base_html_names_its_line():
    with pytest.raises(ValidationError) as exc:
        template(html="<p>Hello</p>\n<p>{{ name </p>")
    assert message_of(exc).startswith("html, line 2: ")


def test_an_undeclared_variable_is_refused():
    with pytest.raises(ValidationError) as exc:
        template(subject="Welcome, {{ nmae }}")
    assert message_of(exc) == "subject, line 1: variable 'nmae' is not declared (declared: name, plan)"


def test_neither_html_nor_text_is_refused():
    spec = {k: v for k, v in WELCOME.items() if k != "html"}
    with pytest.raises(ValidationError) as exc:
        EmailTemplateSpec.model_validate(spec)
    assert message_of(exc) == "at least one of html and text must be set"


def test_a_text_only_template_is_valid():
    spec = {k: v for k, v in WELCOME.items() if k not in ("html", "locales")}
    assert EmailTemplateSpec.model_validate({**spec, "text": "Hello {{ name }}"}).html is None


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"variables": {"first-name": {}}}, "variable name 'first-name' must look like"),
        ({"locales": {"FR": {"subject": "x"}}}, "locale tag 'FR' must look like"),
        ({"variables": {"name": {"default": "x"}, "plan": {}}}, "variables: 'name' is required and has a default"),
    ],
)
def test_bad_names_and_defaults_are_refused(changes, expected):
    with pytest.raises(ValidationError) as exc:
        template(**changes)
    assert expected in message_of(exc)


def test_the_crd_declares_the_rules_the_api_server_enforces():
    schema = crd(EmailTemplate)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert {"rule": "has(self.html) || has(self.text)", "message": "at least one of html and text must be set"} in (
        schema["x-kubernetes-validations"]
    )
    assert schema["properties"]["variables"]["additionalProperties"]["properties"]["default"] == {
        "description": "Any JSON value, used when an optional variable is not given (a required one has none).",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    assert schema["properties"]["subject"]["maxLength"] == 998
    assert crd(EmailTemplate)["spec"]["names"]["shortNames"] == ["etpl"]


def test_templates_round_trip_through_the_runtime_config():
    stack = StackSpec.model_validate(
        {
            "redis": {"urlSecretRef": {"name": "redis", "key": "url"}},
            "mongodb": {"uriSecretRef": {"name": "mongo", "key": "uri"}},
        }
    )
    config = RuntimeConfig(
        stack="demo", namespace="shop", generation=1, spec=stack, email_templates={"welcome": template()}
    )
    again = RuntimeConfig.model_validate_json(config.canonical_json())
    assert again.email_templates["welcome"].locales["fr"].subject == "Bienvenue, {{ name }}"
    assert again.hash == config.hash
