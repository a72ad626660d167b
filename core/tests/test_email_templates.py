"""The template engine of transactional email: compile-time checks, rendering, the sandbox."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stackyard.email.templates import (
    MAX_OUTPUT_BYTES,
    CompiledTemplate,
    LocaleVariant,
    TemplateInvalid,
    TemplateRenderFailed,
    TemplateSource,
    TemplateVariablesInvalid,
    VariableSpec,
    compile_template,
    html_to_text,
)

WELCOME = TemplateSource(
    subject="Welcome, {{ user }}",
    html=(
        "<style>.button { color: #fff; } @media (max-width: 600px) { .button { width: 100% } }</style>\n"
        "<p>Hello {{ user }},</p>\n"
        '<p><a class="button" href="{{ link }}">Confirm your address</a></p>\n'
    ),
    variables={
        "user": VariableSpec(description="the user's display name"),
        "link": VariableSpec(),
        "team": VariableSpec(required=False, default="the stackyard team"),
    },
    locales={
        "fr": LocaleVariant(
            subject="Bienvenue, {{ user }}", html='<p>Bonjour {{ user }}, <a href="{{ link }}">ici</a></p>'
        ),
        "pt": LocaleVariant(subject="Bem-vindo, {{ user }}"),
    },
)


def invalid(source: TemplateSource) -> TemplateInvalid:
    with pytest.raises(TemplateInvalid) as caught:
        compile_template(source)
    return caught.value


def text_template(text: str, **variables: VariableSpec) -> CompiledTemplate:
    return compile_template(TemplateSource(subject="s", text=text, variables=variables))


# --- compile time -----------------------------------------------------------------------------


def test_syntax_error_names_part_locale_and_line() -> None:
    source = TemplateSource(
        subject="Hi",
        html="<p>ok</p>",
        locales={"fr": LocaleVariant(html="<p>\nBonjour\n{{ user }</p>")},
        variables={"user": VariableSpec()},
    )
    error = invalid(source)
    assert (error.part, error.locale, error.line) == ("html", "fr", 3)
    assert error.message == "html (fr), line 3: unexpected '}'"


def test_syntax_error_in_base_subject_has_no_locale() -> None:
    error = invalid(TemplateSource(subject="{% if %}", text="x"))
    assert (error.part, error.locale, error.line) == ("subject", None, 1)
    assert error.message.startswith("subject, line 1: ")


def test_unclosed_block_reports_the_line_where_the_template_ends() -> None:
    error = invalid(TemplateSource(subject="s", text="a\n{% for i in [1] %}\n{{ i }}"))
    assert (error.part, error.line) == ("text", 3)
    assert "endfor" in error.message


def test_unknown_filter_is_refused_at_compile_time() -> None:
    error = invalid(TemplateSource(subject="s", text="\n{{ user|shout }}", variables={"user": VariableSpec()}))
    assert (error.part, error.line) == ("text", 2)
    assert "shout" in error.message


def test_undeclared_variable_is_refused_with_its_name_and_the_declared_ones() -> None:
    source = TemplateSource(
        subject="s", html="<p>{{ usr }}</p>", variables={"user": VariableSpec(), "link": VariableSpec()}
    )
    error = invalid(source)
    assert error.message == "html, line 1: variable 'usr' is not declared (declared: user, link)"
    assert (error.part, error.line) == ("html", 1)


def test_undeclared_variable_in_a_locale_variant_is_refused() -> None:
    source = TemplateSource(
        subject="s",
        text="{{ user }}",
        variables={"user": VariableSpec()},
        locales={"pt-BR": LocaleVariant(subject="Olá\n{{ nome }}")},
    )
    error = invalid(source)
    assert (error.part, error.locale, error.line) == ("subject", "pt-BR", 2)
    assert "'nome'" in error.message


def test_names_bound_inside_the_template_and_builtins_need_no_declaration() -> None:
    compiled = text_template(
        "{% set n = 2 %}{% for i in range(n) %}{{ loop.index }}{% endfor %}"
        "{% for k, v in d|dictsort %}{{ k }}{% endfor %}",
        d=VariableSpec(),
    )
    assert compiled.render({"d": {"b": 1, "a": 2}}).text == "12ab"


def test_template_without_html_or_text_is_refused() -> None:
    error = invalid(TemplateSource(subject="s"))
    assert error.part == "html"
    assert "html or a text part" in error.message


@pytest.mark.parametrize(
    "body",
    ["{% include 'header.html' %}", "{% import 'macros.html' as m %}", "{% extends 'base.html' %}"],
)
def test_include_import_and_extends_are_refused(body: str) -> None:
    assert "not supported" in invalid(TemplateSource(subject="s", html=body)).message


def test_private_attribute_access_is_refused_at_compile_time() -> None:
    error = invalid(TemplateSource(subject="s", html="<p>\n{{ ''.__class__.__mro__ }}</p>"))
    assert (error.part, error.line) == ("html", 2)
    assert "__" in error.message


def test_required_variable_with_a_default_is_refused() -> None:
    error = invalid(TemplateSource(subject="s", text="x", variables={"a": VariableSpec(required=True, default=1)}))
    assert error.part == "variables"


def test_malformed_locale_tag_is_refused() -> None:
    assert invalid(TemplateSource(subject="s", text="x", locales={"not a locale": LocaleVariant()})).part == "locales"


# --- rendering --------------------------------------------------------------------------------


def test_html_is_escaped_but_subject_and_text_are_not() -> None:
    source = TemplateSource(
        subject="Hi {{ user }}",
        html="<p>{{ user }}</p>",
        text="Hi {{ user }}",
        variables={"user": VariableSpec()},
    )
    rendered = compile_template(source).render({"user": "Tom & <Jerry>"})
    assert "<p>Tom &amp; &lt;Jerry&gt;</p>" in (rendered.html or "")
    assert rendered.text == "Hi Tom & <Jerry>"
    assert rendered.subject == "Hi Tom & <Jerry>"


def test_css_is_inlined_and_media_queries_are_kept() -> None:
    rendered = compile_template(WELCOME).render({"user": "Ada", "link": "https://example.com/c?t=1"})
    html = rendered.html or ""
    assert 'href="https://example.com/c?t=1" style="color: #fff;"' in html
    assert "@media (max-width: 600px)" in html


def test_remote_stylesheets_are_not_fetched_and_link_tags_are_dropped() -> None:
    source = TemplateSource(subject="s", html='<link rel="stylesheet" href="https://127.0.0.1:9/x.css"><p>x</p>')
    assert "<link" not in (compile_template(source).render({}).html or "")


def test_derived_text_keeps_link_urls() -> None:
    rendered = compile_template(WELCOME).render({"user": "Ada", "link": "https://example.com/c?t=1&u=2"})
    assert "Hello Ada," in rendered.text
    assert "Confirm your address (https://example.com/c?t=1&u=2)" in rendered.text
    assert "color" not in rendered.text  # the <style> is not text


def test_derived_text_does_not_repeat_a_url_that_is_the_label() -> None:
    text = html_to_text('<p><a href="https://example.com">https://example.com</a> <a href="#top">top</a></p>')
    assert text == "https://example.com top\n"


def test_subject_is_one_stripped_line() -> None:
    source = TemplateSource(
        subject="  Your order\n{{ order }}\r\n  is ready  ", text="x", variables={"order": VariableSpec()}
    )
    assert compile_template(source).render({"order": "#12\n\nhack: yes"}).subject == "Your order #12 hack: yes is ready"


@pytest.mark.parametrize(
    ("requested", "subject", "rendered_locale"),
    [
        ("fr", "Bienvenue, Ada", "fr"),
        ("fr-CA", "Bienvenue, Ada", "fr"),
        ("pt-BR", "Bem-vindo, Ada", "pt"),
        ("pt_br", "Bem-vindo, Ada", "pt"),
        ("de", "Welcome, Ada", "en"),
        (None, "Welcome, Ada", "en"),
    ],
)
def test_locale_falls_back_from_region_to_language_to_default(
    requested: str | None, subject: str, rendered_locale: str
) -> None:
    rendered = compile_template(WELCOME).render({"user": "Ada", "link": "https://x.test"}, locale=requested)
    assert (rendered.subject, rendered.locale) == (subject, rendered_locale)


def test_locale_variant_that_overrides_the_body_replaces_it_whole() -> None:
    source = TemplateSource(
        subject="Hi",
        html="<p>Hello</p>",
        text="Hello",
        locales={"fr": LocaleVariant(html="<p>Bonjour</p>")},
    )
    french = compile_template(source).render({}, locale="fr")
    assert "Bonjour" in (french.html or "")
    assert french.text == "Bonjour\n"  # derived from the French HTML, not the English text
    assert french.subject == "Hi"


def test_locale_variant_with_only_a_subject_keeps_the_base_body() -> None:
    rendered = compile_template(WELCOME).render({"user": "Ada", "link": "https://x.test"}, locale="pt")
    assert "Hello Ada" in (rendered.html or "")


def test_missing_required_variables_are_listed() -> None:
    with pytest.raises(TemplateVariablesInvalid) as caught:
        compile_template(WELCOME).render({})
    assert caught.value.missing == ("link", "user")
    assert "link, user" in str(caught.value)


def test_undeclared_variables_given_to_render_are_refused() -> None:
    with pytest.raises(TemplateVariablesInvalid) as caught:
        compile_template(WELCOME).render({"user": "Ada", "link": "l", "usr": "Ada", "extra": 1})
    assert caught.value.unknown == ("extra", "usr")
    assert caught.value.missing == ()


def test_optional_variable_takes_its_default_and_none_renders_empty() -> None:
    compiled = text_template(
        "{{ greeting }} from {{ team }}[{{ nickname }}]",
        greeting=VariableSpec(),
        team=VariableSpec(required=False, default="the team"),
        nickname=VariableSpec(required=False),
    )
    assert compiled.render({"greeting": "Hi"}).text == "Hi from the team[]"
    assert compiled.render({"greeting": "Hi", "team": "ops", "nickname": "n"}).text == "Hi from ops[n]"


def test_text_only_template_has_no_html() -> None:
    rendered = text_template("plain {{ a }}", a=VariableSpec()).render({"a": "<b>"})
    assert rendered.html is None
    assert rendered.text == "plain <b>"


def test_missing_attribute_of_a_given_value_fails_the_render() -> None:
    with pytest.raises(TemplateRenderFailed) as caught:
        text_template("{{ user.name }}", user=VariableSpec()).render({"user": {}})
    assert caught.value.part == "text"
    assert "name" in caught.value.message


# --- the sandbox ------------------------------------------------------------------------------


class Account(dict[str, str]):
    _private = "token"


@pytest.mark.parametrize(
    "body",
    [
        "{{ x|attr('__class__') }}",
        "{{ x.update({'a': 1}) }}",  # given values are immutable
        "{{ x|attr('_private') }}",
    ],
)
def test_sandbox_refuses_unsafe_access_at_render_time(body: str) -> None:
    compiled = text_template(body, x=VariableSpec())
    with pytest.raises(TemplateRenderFailed, match="unsafe"):
        compiled.render({"x": Account()})


def test_private_attributes_of_given_values_are_refused() -> None:
    with pytest.raises(TemplateInvalid):
        text_template("{{ x._secret }}", x=VariableSpec())
    with pytest.raises(TemplateInvalid):
        text_template("{{ x['__class__'] }}", x=VariableSpec())
    with pytest.raises(TemplateInvalid):
        text_template("{{ x.items.__func__ }}", x=VariableSpec())


def test_oversized_output_is_stopped() -> None:
    compiled = text_template("{% for i in range(20000) %}{{ line }}{% endfor %}", line=VariableSpec())
    with pytest.raises(TemplateRenderFailed, match="output larger than"):
        compiled.render({"line": "x" * 100})


def test_huge_repetition_is_refused_before_it_is_built() -> None:
    with pytest.raises(TemplateRenderFailed, match="repetition"):
        text_template("{{ 'a' * n }}", n=VariableSpec()).render({"n": MAX_OUTPUT_BYTES + 1})


def test_loops_are_bounded_even_when_they_print_nothing() -> None:
    compiled = text_template("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
    with pytest.raises(TemplateRenderFailed, match="loop iterations"):
        compiled.render({})


def test_endless_macro_recursion_fails_the_render() -> None:
    with pytest.raises(TemplateRenderFailed, match="RecursionError"):
        text_template("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}").render({})


def test_huge_exponent_and_format_width_are_refused() -> None:
    with pytest.raises(TemplateRenderFailed, match="exponent"):
        text_template("{{ 10 ** 1000000 }}").render({})
    with pytest.raises(TemplateRenderFailed, match="width"):
        text_template("{{ '%999999999s' % 'a' }}").render({})


def test_ordinary_arithmetic_still_works() -> None:
    assert text_template("{{ 2 ** 10 }} {{ 7 % 3 }} {{ '%05.1f' % 3.14159 }} {{ 'ab' * 2 }}").render({}).text == (
        "1024 1 003.1 abab"
    )


# --- properties -------------------------------------------------------------------------------

PROFILE = compile_template(
    TemplateSource(
        subject="News for {{ name }}",
        html='<p title="{{ name }}">Hi {{ name }}</p><a href="https://x.test/?q={{ name|urlencode }}">go</a>',
        variables={"name": VariableSpec()},
    )
)


@settings(max_examples=150, deadline=None)
@given(st.text())
def test_user_values_never_inject_markup_into_html(value: str) -> None:
    html = PROFILE.render({"name": value}).html or ""
    assert "<script" not in html.lower()
    assert html.count("<p") == 1 and html.count("<a") == 1


@settings(max_examples=100, deadline=None)
@given(st.text(), st.sampled_from(["en", "fr", "pt-BR", "de"]))
def test_rendering_is_deterministic(value: str, locale: str) -> None:
    variables = {"user": value, "link": "https://x.test/" + value}
    assert compile_template(WELCOME).render(variables, locale) == compile_template(WELCOME).render(variables, locale)
