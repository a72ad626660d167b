"""The template engine of transactional email: compile an EmailTemplate once, render it per message.

Pure and framework-free: the EmailTemplate spec model calls `compile_template` when it is
validated, so the operator marks a bad template Ready=False with reason `Invalid` and the
message of the `TemplateInvalid` (which names the part, the locale and the line); the API's
preview route and the send pipeline call `CompiledTemplate.render`.

- Syntax: Jinja2 in `ImmutableSandboxedEnvironment`, with `StrictUndefined`. HTML is
  autoescaped; the subject and the text part are not (they are not HTML).
- Compile time: every part of every locale must parse, use only declared variables (top-level
  names), no `include`/`import`/`extends` and no `_`-prefixed attribute; there must be an HTML
  or a text part. The sandbox refuses at render time what the compile check cannot see
  (`x|attr('__class__')`, unsafe methods, mutation of given values).
- Render time: required variables must be given and undeclared ones are refused (a typo in a
  caller's variable name is an error, not a silently empty field); optional ones take their
  default. The subject is collapsed onto one line; the HTML gets its CSS inlined; the text part
  is derived from the HTML when the template has none.
- Bounds: each rendered part is at most `MAX_OUTPUT_BYTES`; loops are counted and stopped after
  `MAX_LOOP_ITERATIONS` in total or when the render runs past `RENDER_DEADLINE_SECONDS`;
  `range` is capped by the sandbox; `*`, `**` and `%` refuse operands that would build a huge
  value. A single filter call (`center(10**8)`) is not interrupted: Python gives no way to stop
  it from the same thread; callers that need a hard wall-clock bound render in a worker process.
"""

from __future__ import annotations

import contextvars
import operator
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import css_inline
import lxml.html
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.html_engine import Inscriptis
from inscriptis.model.config import ParserConfig
from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "MAX_LOOP_ITERATIONS",
    "MAX_OUTPUT_BYTES",
    "RENDER_DEADLINE_SECONDS",
    "CompiledTemplate",
    "LocaleVariant",
    "Part",
    "RenderedEmail",
    "TemplateInvalid",
    "TemplateRenderFailed",
    "TemplateSource",
    "TemplateVariablesInvalid",
    "VariableSpec",
    "compile_template",
    "html_to_text",
]

MAX_OUTPUT_BYTES = 1024 * 1024
"""Largest rendered subject, HTML or text part (UTF-8 bytes, before CSS inlining)."""
MAX_LOOP_ITERATIONS = 100_000
"""Most `for` loop iterations in one render, all loops and all parts together."""
RENDER_DEADLINE_SECONDS = 2.0
"""A render is stopped at the next loop iteration or output chunk after this long."""

Part = Literal["subject", "html", "text"]

_LOCALE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
_PERCENT_WIDTH = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_BIG_WIDTH = 10_000


# --- what a template is made of ---------------------------------------------------------------


@dataclass(frozen=True)
class VariableSpec:
    required: bool = True
    default: Any = None
    """Used when an optional variable is not given (a required one has no default)."""
    description: str = ""


@dataclass(frozen=True)
class LocaleVariant:
    """A translation. `subject` left out keeps the base subject. Setting `html` or `text`
    replaces the whole body: a part the variant does not set is absent for that locale (so an
    English text part is never sent with a French HTML part); the text is then derived."""

    subject: str | None = None
    html: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class TemplateSource:
    subject: str
    html: str | None = None
    text: str | None = None
    variables: Mapping[str, VariableSpec] = field(default_factory=dict)
    locales: Mapping[str, LocaleVariant] = field(default_factory=dict)
    """Locale tag ("fr", "pt-BR") -> variant; the base parts are in `default_locale`."""
    default_locale: str = "en"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str | None
    """The whole document with its CSS inlined; None for a text-only template."""
    text: str
    locale: str
    """The locale whose parts were rendered, after fallback (the default locale for the base)."""


# --- errors -----------------------------------------------------------------------------------


class TemplateInvalid(Exception):
    """The template cannot be compiled: what an EmailTemplate's Ready=False condition says."""

    def __init__(self, message: str, part: str, line: int | None = None, locale: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.part = part
        """"subject", "html" or "text"; "variables" or "locales" for an error in those fields."""
        self.line = line
        """1-based line in that part, when the error has one."""
        self.locale = locale
        """The locale variant the part belongs to; None for the base template."""


class TemplateVariablesInvalid(Exception):
    """The variables given to `render` do not match the declared ones."""

    def __init__(self, missing: Iterable[str] = (), unknown: Iterable[str] = ()) -> None:
        self.missing = tuple(sorted(missing))
        self.unknown = tuple(sorted(unknown))
        problems = []
        if self.missing:
            problems.append("missing required variables: " + ", ".join(self.missing))
        if self.unknown:
            problems.append("undeclared variables: " + ", ".join(self.unknown))
        self.message = "; ".join(problems)
        super().__init__(self.message)


class TemplateRenderFailed(Exception):
    """Rendering stopped: a sandbox refusal, a bound hit, or an error in an expression
    (e.g. an attribute that a given value does not have)."""

    def __init__(self, message: str, part: str, locale: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.part = part
        self.locale = locale


# --- the sandbox ------------------------------------------------------------------------------


class _Budget:
    def __init__(self) -> None:
        self.iterations = 0
        self.deadline = time.monotonic() + RENDER_DEADLINE_SECONDS

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise SecurityError(f"render took longer than {RENDER_DEADLINE_SECONDS:g}s")


_budget: contextvars.ContextVar[_Budget] = contextvars.ContextVar("stackyard_email_template_budget")
_LOOP_FILTER = "stackyard_counted_loop"


def _counted_loop(iterable: Iterable[Any]) -> Iterator[Any]:
    """Wraps the iterable of every `for` loop (inserted at compile time, see `_count_loops`)."""
    budget = _budget.get(None)
    for item in iterable:
        if budget is not None:
            budget.iterations += 1
            if budget.iterations > MAX_LOOP_ITERATIONS:
                raise SecurityError(f"more than {MAX_LOOP_ITERATIONS} loop iterations")
            budget.check_time()
        yield item


def _length(value: Any) -> int | None:
    return len(value) if isinstance(value, str | bytes | list | tuple) else None


class _EmailSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox (no `_`-prefixed attributes, no mutation of given values), with
    arithmetic that refuses to build huge values."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "*":
            for sequence, times in ((left, right), (right, left)):
                size = _length(sequence)
                if size is not None and isinstance(times, int) and size * times > MAX_OUTPUT_BYTES:
                    raise SecurityError("repetition would build a value larger than the output limit")
            return operator.mul(left, right)
        if operator_name == "**":
            if isinstance(right, int | float) and abs(right) > 100 and left not in (-1, 0, 1):
                raise SecurityError("exponent too large")
            return operator.pow(left, right)
        if isinstance(left, str):
            for width, precision in _PERCENT_WIDTH.findall(left):
                if "*" in (width, precision) or any(v and int(v) > _BIG_WIDTH for v in (width, precision)):
                    raise SecurityError("format width too large")
        return operator.mod(left, right)


def _finalize(value: Any) -> Any:
    return "" if value is None else value


def _environment(autoescape: bool) -> _EmailSandbox:
    env = _EmailSandbox(
        autoescape=autoescape,
        undefined=StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters[_LOOP_FILTER] = _counted_loop
    return env


_HTML_ENV = _environment(autoescape=True)
_PLAIN_ENV = _environment(autoescape=False)
_BUILTIN_NAMES = frozenset(_HTML_ENV.globals)
_CSS_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


# --- compiling --------------------------------------------------------------------------------


def _where(part: str, locale: str | None, line: int | None) -> str:
    label = part if locale is None else f"{part} ({locale})"
    return label if line is None else f"{label}, line {line}"


def _count_loops(tree: nodes.Template) -> None:
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, _LOOP_FILTER, [], [], None, None, lineno=loop.lineno)


def _compile_part(
    env: _EmailSandbox, source: str, part: Part, locale: str | None, declared: Mapping[str, VariableSpec]
) -> Template:
    def invalid(message: str, line: int | None) -> TemplateInvalid:
        return TemplateInvalid(f"{_where(part, locale, line)}: {message}", part, line, locale)

    try:
        tree = env.parse(source)
    except TemplateSyntaxError as error:
        raise invalid(error.message or "syntax error", error.lineno) from None

    for node in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        keyword = {nodes.Include: "include", nodes.Extends: "extends"}.get(type(node), "import")
        raise invalid(f"'{keyword}' is not supported: a template is self-contained", node.lineno)

    for access in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(access, nodes.Getattr):
            name: object = access.attr
        else:
            assert isinstance(access, nodes.Getitem)
            name = access.arg.value if isinstance(access.arg, nodes.Const) else None
        if isinstance(name, str) and name.startswith("_"):
            raise invalid(f"attribute '{name}' is not accessible: names starting with '_' are private", access.lineno)

    try:
        used = meta.find_undeclared_variables(tree)
    except TemplateSyntaxError as error:  # e.g. an unknown filter or test
        raise invalid(error.message or "invalid template", error.lineno) from None
    undeclared = used - set(declared) - _BUILTIN_NAMES
    if undeclared:
        first = min(
            (n for n in tree.find_all(nodes.Name) if n.name in undeclared and n.ctx == "load"),
            key=lambda n: (n.lineno, n.name),
        )
        listing = ", ".join(declared) or "none"
        raise invalid(f"variable '{first.name}' is not declared (declared: {listing})", first.lineno)

    _count_loops(tree)
    try:
        code = env.compile(tree)
    except TemplateSyntaxError as error:  # e.g. an unknown filter or test
        raise invalid(error.message or "invalid template", error.lineno) from None
    return env.template_class.from_code(env, code, env.make_globals(None))


@dataclass(frozen=True)
class _CompiledParts:
    subject: Template
    html: Template | None
    text: Template | None


def _normal_locale(tag: str) -> str:
    return tag.replace("_", "-").lower()


def _locale_chain(tag: str) -> list[str]:
    """ "pt-BR" -> ["pt-br", "pt"]."""
    parts = _normal_locale(tag).split("-")
    return ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]


def compile_template(source: TemplateSource) -> CompiledTemplate:
    """Check and compile every part of every locale; raise `TemplateInvalid` for the first error."""
    for name, spec in source.variables.items():
        if not name.isidentifier() or name.startswith("_"):
            raise TemplateInvalid(
                f"variables: '{name}' is not a valid variable name (letters, digits, '_', not first)", "variables"
            )
        if spec.required and spec.default is not None:
            raise TemplateInvalid(
                f"variables: '{name}' is required and has a default: make it optional or drop the default",
                "variables",
            )

    tags = [source.default_locale, *source.locales]
    for tag in tags:
        if not _LOCALE_TAG.match(tag):
            raise TemplateInvalid(f"locales: '{tag}' is not a locale tag like 'fr' or 'pt-BR'", "locales")
    seen: dict[str, str] = {}
    for tag in source.locales:
        if _normal_locale(tag) in seen:
            raise TemplateInvalid(f"locales: '{tag}' and '{seen[_normal_locale(tag)]}' are the same locale", "locales")
        seen[_normal_locale(tag)] = tag

    def body(html: str | None, text: str | None, locale: str | None) -> tuple[Template | None, Template | None]:
        if html is None and text is None:
            where = _where("html", locale, None)
            raise TemplateInvalid(f"{where}: a template needs an html or a text part", "html", None, locale)
        return (
            None if html is None else _compile_part(_HTML_ENV, html, "html", locale, source.variables),
            None if text is None else _compile_part(_PLAIN_ENV, text, "text", locale, source.variables),
        )

    base_subject = _compile_part(_PLAIN_ENV, source.subject, "subject", None, source.variables)
    base = _CompiledParts(base_subject, *body(source.html, source.text, None))
    variants: dict[str, tuple[str, _CompiledParts]] = {}
    for tag, variant in source.locales.items():
        subject = (
            base.subject
            if variant.subject is None
            else _compile_part(_PLAIN_ENV, variant.subject, "subject", tag, source.variables)
        )
        html, text = (base.html, base.text)
        if variant.html is not None or variant.text is not None:
            html, text = body(variant.html, variant.text, tag)
        variants[_normal_locale(tag)] = (tag, _CompiledParts(subject, html, text))
    return CompiledTemplate(source, base, variants)


# --- rendering --------------------------------------------------------------------------------


def _render_part(template: Template, values: Mapping[str, Any], part: Part, locale: str | None) -> str:
    budget = _budget.get()
    chunks: list[str] = []
    size = 0
    try:
        for chunk in template.generate(values):
            size += len(chunk.encode("utf-8"))
            if size > MAX_OUTPUT_BYTES:
                raise SecurityError(f"output larger than {MAX_OUTPUT_BYTES} bytes")
            budget.check_time()
            chunks.append(chunk)
    except (TemplateError, SecurityError) as error:
        raise TemplateRenderFailed(f"{_where(part, locale, None)}: {error}", part, locale) from None
    except (ArithmeticError, TypeError, ValueError, LookupError, RecursionError) as error:
        raise TemplateRenderFailed(
            f"{_where(part, locale, None)}: {type(error).__name__}: {error}", part, locale
        ) from None
    return "".join(chunks)


_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")
_SPACE_AT_LINE_END = re.compile(r"[ \t]+\n")
_BLANK_LINES = re.compile(r"\n{3,}")
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def html_to_text(html: str) -> str:
    """The text part of an HTML mail: links keep their target as "label (url)", <head> is dropped."""
    if not html.strip():
        return ""
    tree = lxml.html.fromstring(html)
    for anchor in tree.iter("a"):
        href = _NOT_XML.sub("", anchor.get("href") or "").strip()
        if not href or href.startswith("#"):
            continue
        label = anchor.text_content().strip()
        if label in (href, href.removeprefix("mailto:")):
            continue
        anchor.tail = (f" ({href})" if label else href) + (anchor.tail or "")
    text = Inscriptis(tree, ParserConfig(css=CSS_PROFILES["strict"])).get_text()
    text = _SPACE_AT_LINE_END.sub("\n", text)
    return _BLANK_LINES.sub("\n\n", text).strip() + "\n"


class CompiledTemplate:
    """A checked template, ready to render many times (immutable; safe to share across tasks)."""

    def __init__(
        self, source: TemplateSource, base: _CompiledParts, variants: Mapping[str, tuple[str, _CompiledParts]]
    ) -> None:
        self.source = source
        self._base = base
        self._variants = dict(variants)

    @property
    def locales(self) -> tuple[str, ...]:
        """The default locale, then the variants' tags as declared."""
        return (self.source.default_locale, *(tag for tag, _ in self._variants.values()))

    def _select(self, locale: str | None) -> tuple[str, str | None, _CompiledParts]:
        """(locale rendered, variant tag or None for the base, parts)."""
        wanted = [] if locale is None else _locale_chain(locale)
        for candidate in [*wanted, *_locale_chain(self.source.default_locale)]:
            if candidate in self._variants:
                tag, parts = self._variants[candidate]
                return tag, tag, parts
        return self.source.default_locale, None, self._base

    def check_variables(self, variables: Mapping[str, Any]) -> dict[str, Any]:
        """The values to render with (defaults applied), or `TemplateVariablesInvalid`."""
        declared = self.source.variables
        missing = [name for name, spec in declared.items() if spec.required and name not in variables]
        unknown = [name for name in variables if name not in declared]
        if missing or unknown:
            raise TemplateVariablesInvalid(missing, unknown)
        return {name: variables.get(name, spec.default) for name, spec in declared.items()}

    def render(self, variables: Mapping[str, Any], locale: str | None = None) -> RenderedEmail:
        values = self.check_variables(variables)
        rendered_locale, variant, parts = self._select(locale)
        token = _budget.set(_Budget())
        try:
            subject = _render_part(parts.subject, values, "subject", variant)
            html = None if parts.html is None else _render_part(parts.html, values, "html", variant)
            text = None if parts.text is None else _render_part(parts.text, values, "text", variant)
        finally:
            _budget.reset(token)
        subject = _LINE_BREAKS.sub(" ", subject).strip()
        if html is not None:
            try:
                html = _CSS_INLINER.inline(html)
            except ValueError as error:
                raise TemplateRenderFailed(f"{_where('html', variant, None)}: CSS: {error}", "html", variant) from None
        if text is None:
            text = html_to_text(html or "")
        return RenderedEmail(subject=subject, html=html, text=text, locale=rendered_locale)
