"""The strings of a workflow's steps (titles, bodies, URLs, email variables, digest and
throttle keys) are Jinja2 templates rendered per recipient in a sandbox (no attribute of a
Python object beyond the data, no mutation) with StrictUndefined: a variable the trigger did
not give fails the step with its name instead of rendering an empty string.

The variables: `data` (the trigger's data), `recipient` ({id, email, name, locale, phone,
data}), `actor` (the same shape, or None), `tenant`, `workflow` (the trigger key) and, after
a digest step, `digest` ({total, items: [data, ...]})."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.nodes import Template as TemplateNode
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..resources.notify import NotificationWorkflowSpec, WorkflowStep

VARIABLES = frozenset({"data", "recipient", "actor", "tenant", "workflow"})
"""What every step may use; `digest` only after a digest step."""

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


class RenderError(Exception):
    """A template that does not compile or names a variable the run does not have."""


@functools.lru_cache(maxsize=2048)
def _compiled(source: str) -> Any:
    return _ENV.from_string(source)


def render_text(source: str, variables: Mapping[str, Any]) -> str:
    """`source` rendered with `variables`; RenderError says what failed."""
    if "{" not in source:
        return source  # most titles are plain text: no compile, no render
    try:
        return str(_compiled(source).render(variables))
    except TemplateError as exc:
        raise RenderError(f"{type(exc).__name__}: {exc.message or exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise RenderError(f"{type(exc).__name__}: {exc}") from None


def _parse(source: str) -> TemplateNode:
    return _ENV.parse(source)


def step_templates(step: WorkflowStep) -> Iterator[tuple[str, str]]:
    """(field, source) of every template string of a step."""
    if step.email is not None:
        for name, value in step.email.variables.items():
            yield f"email.variables.{name}", value
    if step.in_app is not None:
        yield "inApp.title", step.in_app.title
        yield "inApp.body", step.in_app.body
        if step.in_app.action_url is not None:
            yield "inApp.actionUrl", step.in_app.action_url
    if step.push is not None:
        yield "push.title", step.push.title
        yield "push.body", step.push.body
        if step.push.url is not None:
            yield "push.url", step.push.url
    if step.digest is not None and step.digest.key is not None:
        yield "digest.key", step.digest.key
    if step.throttle is not None and step.throttle.key is not None:
        yield "throttle.key", step.throttle.key


def template_problems(spec: NotificationWorkflowSpec) -> list[str]:
    """What is wrong with the templates of a workflow, one sentence each (the operator's
    Ready=False message): a syntax error, or a variable that no run has (`digest` before the
    digest step, or a name other than data, recipient, actor, tenant, workflow)."""
    problems: list[str] = []
    known = set(VARIABLES)
    for step in spec.steps:
        for field, source in step_templates(step):
            try:
                names = meta.find_undeclared_variables(_parse(source))
            except TemplateError as exc:
                problems.append(f"step {step.name!r}: {field} does not compile: {exc.message or exc}")
                continue
            unknown = sorted(names - known)
            if unknown:
                hint = " (digest exists only after a digest step)" if "digest" in unknown else ""
                problems.append(
                    f"step {step.name!r}: {field} uses {', '.join(unknown)}, which no run has; "
                    f"the variables are {', '.join(sorted(known))}{hint}"
                )
        if step.digest is not None:
            known.add("digest")
    return problems


__all__ = ["VARIABLES", "RenderError", "render_text", "step_templates", "template_problems"]
