"""docs/reference/crds.md: rendered from the CRDs, complete, and checked as `make test` checks it."""

from __future__ import annotations

import ast
import functools
import re
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel
from stackyard.db import probe
from stackyard.resources import KINDS, EmailProvider, Stack
from stackyard.resources.crd_reference import render_reference, table_text
from stackyard.resources.crdgen import SHARED_TYPES, crd, main, render_crd_reference, structural_schema
from stackyard.resources.notify import NotificationWorkflow
from stackyard.search import sync
from stackyard_operator.conditions import WORKER_CONDITIONS

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "docs" / "reference" / "crds.md"


@pytest.fixture(scope="module")
def reference() -> str:
    return render_crd_reference()


def test_checked_in_reference_matches_the_models(reference):
    assert REFERENCE.read_text() == reference, "docs/reference/crds.md differs from the models: run `make crds`"


def test_reference_has_a_section_and_an_index_row_for_every_kind(reference):
    for kind in KINDS:
        name = kind.info.kind
        assert f"\n## {name}\n" in reference
        assert f"| [{name}](#{name.lower()}) | `stackyard.dev/v1alpha1` |" in reference
        for short_name in kind.info.short_names:
            assert f"`{short_name}`" in reference


def _model_of(annotation: Any) -> Iterator[tuple[str, type[BaseModel]]]:
    """The models inside a field's type, with the path suffix that reaches them."""
    origin = get_origin(annotation)
    if origin is Annotated:
        yield from _model_of(get_args(annotation)[0])
    elif origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            yield from _model_of(arg)
    elif origin is list:
        for suffix, model in _model_of(get_args(annotation)[0]):
            yield "[]" + suffix, model
    elif origin is dict:
        for suffix, model in _model_of(get_args(annotation)[1]):
            yield ".<name>" + suffix, model
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield "", annotation


def _field_paths(model: type[BaseModel], path: str) -> Iterator[str]:
    """Every field path under `model` as a person reads it, down to the shared types."""
    for name, field in model.model_fields.items():
        field_path = f"{path}.{field.alias or name}"
        yield field_path
        for suffix, child in _model_of(field.annotation):
            if child not in SHARED_TYPES:
                yield from _field_paths(child, field_path + suffix)


@pytest.mark.parametrize("kind", [Stack, EmailProvider, NotificationWorkflow], ids=lambda k: k.info.kind)
def test_reference_has_every_spec_and_status_field_of_the_model(reference, kind):
    section = reference.split(f"\n## {kind.info.kind}\n")[1].split("\n## ")[0]
    for part in ("spec", "status"):
        paths = list(_field_paths(kind.model_fields[part].annotation, part))
        assert len(paths) >= 3
        missing = [p for p in paths if f"| `{p}` |" not in section]
        assert not missing, f"{kind.info.kind}: fields without a row: {missing}"


def _validations(node: Any) -> Iterator[dict[str, str]]:
    if isinstance(node, list):
        for item in node:
            yield from _validations(item)
    elif isinstance(node, dict):
        yield from node.get("x-kubernetes-validations", [])
        for value in node.values():
            yield from _validations(value)


def test_reference_states_every_validation_rule(reference):
    rules = [rule for kind in KINDS for rule in _validations(crd(kind))]
    assert len(rules) > 30
    for rule in rules:
        assert table_text(rule["message"]) in reference
        assert rule["rule"].replace("|", "\\|") in reference


def test_shared_types_are_described_once_and_linked(reference):
    for model in SHARED_TYPES:
        assert reference.count(f"\n### {model.__name__}\n") == 1
        assert f"[{model.__name__}](#{model.__name__.lower()})" in reference
    # Never spelled out again where they are used.
    assert "`spec.smtp.passwordSecretRef.key`" not in reference
    assert "| `spec.smtp.passwordSecretRef` | [SecretKeyRef](#secretkeyref) |" in reference


def test_object_defaults_show_only_what_differs_from_their_fields():
    schema = structural_schema(Stack.model_fields["spec"].annotation)
    definition = {
        "metadata": {"name": "things.example.dev"},
        "spec": {
            "group": "example.dev",
            "scope": "Namespaced",
            "names": {"kind": "Thing", "plural": "things", "shortNames": ["th"]},
            "versions": [
                {
                    "name": "v1",
                    "schema": {
                        "openAPIV3Schema": {
                            "description": "A thing.",
                            "properties": {"spec": schema, "status": {"type": "object", "properties": {}}},
                        }
                    },
                }
            ],
        },
    }
    text = render_reference([definition], {})
    # The worker's object default has one replica, its field's own default two.
    assert "| `spec.worker` | object (below) | its fields' defaults, but `replicas: 1` |" in text
    assert "| `spec.worker.replicas` | integer; 0 to 100 | `2` |" in text
    assert "| `spec.api.resources` | object (below) |" in text  # not shared here: a table of its own
    assert "**`spec.api.resources`**" in text


def test_check_fails_on_a_stale_or_missing_reference(tmp_path, capsys):
    crds, doc = tmp_path / "crds", tmp_path / "docs" / "reference" / "crds.md"
    args = ["--out", str(crds), "--reference", str(doc)]
    assert main(["--check", *args]) == 1
    assert f"{doc} is out of date with the models (run `make crds`)" in capsys.readouterr().err

    assert main(args) == 0
    assert doc.read_text() == render_crd_reference()
    assert main(["--check", *args]) == 0
    assert capsys.readouterr().err == ""

    doc.write_text(doc.read_text().replace("## EmailProvider", "## EmailProviders"))
    assert main(["--check", *args]) == 1
    err = capsys.readouterr().err
    assert "out of date" in err and "run `make crds`" in err and "CRDs differ" not in err
    assert "## EmailProviders" in doc.read_text()  # --check never writes
    assert main(args) == 0
    assert main(["--check", *args]) == 0


# -- the condition types and reasons the code sets, against those the kinds declare ---------------
#
# Conditions are made in a few ways: the operator's ConditionIntent(type, status, reason, ...),
# ready(reason, ...) and not_ready(reason, ...) (type Ready); the worker's _condition(type, ok,
# reason, ...), enabled_condition(ok, reason, ...), reachable_condition(ok, reason, ...) and
# Reachability(status, reason, ...) (Reachable); and dict literals {"type", "status", "reason"}.
# Every such call or literal in the code that writes statuses is found with `ast`. A literal
# type and reason must be declared by a kind its module writes; a reason that is not a literal
# must have its call site listed in DYNAMIC_REASONS, which says where its values come from and
# on which kinds and types they land, so that a new way of setting a reason fails here until
# someone says what it sets.

SOURCES = [REPO / "operator/src", REPO / "images/worker/src", REPO / "images/api/src", REPO / "core/src"]
MAKERS = {  # callee -> (condition type, or the index of the argument holding it; index of the reason)
    "ConditionIntent": (0, 2),
    "ready": ("Ready", 0),
    "not_ready": ("Ready", 0),
    "_condition": (0, 2),
    "enabled_condition": ("Enabled", 1),
    "reachable_condition": ("Reachable", 1),
    "Reachability": ("Reachable", 1),
}
PASS_THROUGH = {  # functions that copy conditions made elsewhere (type and reason not theirs)
    ("operator/src/stackyard_operator/conditions.py", "merge_conditions"),
}
MEMBERS = [k.info.kind for k in KINDS if k.info.kind != "Stack"]
MODULE_KINDS = {  # the kinds whose status a module's conditions are written to
    "operator/src/stackyard_operator/render.py": ["Stack", *MEMBERS],
    "operator/src/stackyard_operator/reconciler.py": ["Stack"],
    "operator/src/stackyard_operator/auth_keys.py": ["Stack"],
    "operator/src/stackyard_operator/search.py": ["Stack"],
    "operator/src/stackyard_operator/oidc_clients.py": ["OIDCClient"],
    "images/worker/src/stackyard_worker/database_status.py": ["Database"],
    "images/worker/src/stackyard_worker/bucket_status.py": ["Bucket"],
    "images/worker/src/stackyard_worker/email_status.py": ["EmailProvider"],
    "images/worker/src/stackyard_worker/webhook_status.py": ["Webhook"],
    "images/api/src/stackyard_api/search_status.py": ["SearchIndex"],
}


@dataclass(frozen=True)
class _Site:
    module: str
    function: str
    type: str | None
    reason: str | None
    """None: not a literal."""
    line: int


def _literal(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _literals(node: ast.expr | None) -> list[str | None]:
    """The literal reasons of an argument (both of `"A" if ok else "B"`); [None]: not literal."""
    if isinstance(node, ast.IfExp):
        return [*_literals(node.body), *_literals(node.orelse)]
    return [_literal(node)]


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _scopes(tree: ast.AST) -> Iterator[tuple[str, ast.AST]]:
    """Every node with the name of the function it is in ("" at module level)."""

    def walk(node: ast.AST, function: str) -> Iterator[tuple[str, ast.AST]]:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            yield inner, child
            yield from walk(child, inner)

    return walk(tree, "")


def _sites_in(module: str, tree: ast.AST) -> Iterator[_Site]:
    for function, node in _scopes(tree):
        if function in MAKERS or (module, function) in PASS_THROUGH:
            continue  # a maker passes on what its callers give it
        if isinstance(node, ast.Call) and _callee(node) in MAKERS:
            where, at = MAKERS[_callee(node)]
            if isinstance(where, int) and len(node.args) <= where:
                continue  # a call that is not one of a maker (e.g. a dataclass built from keywords)
            type_ = where if isinstance(where, str) else _literal(node.args[where])
            for reason in _literals(node.args[at] if len(node.args) > at else None):
                yield _Site(module, function, type_, reason, node.lineno)
        elif isinstance(node, ast.Dict):
            keys = {_literal(k): v for k, v in zip(node.keys, node.values, strict=True) if k is not None}
            if {"type", "status", "reason"} <= keys.keys():
                for reason in _literals(keys["reason"]):
                    yield _Site(module, function, _literal(keys["type"]), reason, node.lineno)


@functools.cache
def condition_sites() -> tuple[_Site, ...]:
    sites = []
    for source in SOURCES:
        for path in sorted(source.rglob("*.py")):
            module = path.relative_to(REPO).as_posix()
            sites.extend(_sites_in(module, ast.parse(path.read_text(), module)))
    return tuple(sites)


def _function(module: str, name: str) -> ast.AST:
    tree = ast.parse((REPO / module).read_text())
    return next(
        n for _, n in _scopes(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name
    )


def _returned_reasons(module: str, function: str) -> set[str]:
    """The literal reasons a function returns: a string, the first of a (reason, message)
    tuple, or either branch of a conditional expression."""

    def reasons(value: ast.expr | None) -> Iterator[str]:
        if isinstance(value, ast.Tuple) and value.elts:
            yield from reasons(value.elts[0])
        elif isinstance(value, ast.IfExp):
            yield from reasons(value.body)
            yield from reasons(value.orelse)
        elif (text := _literal(value)) is not None:
            yield text

    return {
        r for node in ast.walk(_function(module, function)) if isinstance(node, ast.Return) for r in reasons(node.value)
    }


def _arguments(module: str, callee: str, index: int = 0) -> set[str]:
    """The literal arguments at `index` of every call of `callee` in a module."""
    tree = ast.parse((REPO / module).read_text())
    calls = (n for n in ast.walk(tree) if isinstance(n, ast.Call) and _callee(n) == callee and len(n.args) > index)
    return {text for call in calls if (text := _literal(call.args[index])) is not None}


def _assigned(module: str, function: str, name: str) -> set[str]:
    """The literals assigned to a variable in a function (`reason = "A" if ... else "B"`)."""
    found = set()
    for node in ast.walk(_function(module, function)):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            values = [node.value.body, node.value.orelse] if isinstance(node.value, ast.IfExp) else [node.value]
            found.update(text for v in values if (text := _literal(v)) is not None)
    return found


_CONDITION_COLUMN = re.compile(r'\.status\.conditions\[\?\(@\.type=="(\w+)"\)\]')
OPERATOR = "operator/src/stackyard_operator/"
WORKER = "images/worker/src/stackyard_worker/"


def _unresolved() -> set[str]:
    return _arguments(OPERATOR + "render.py", "Unresolved")


def _probe_reasons() -> set[str]:
    module = "core/src/stackyard/db/probe.py"
    return set(probe.REASONS) | _arguments(module, "ProbeResult", 1) | _returned_reasons(module, "classify")


DYNAMIC_REASONS: dict[tuple[str, str], tuple[Callable[[], set[str]], list[tuple[str, str]]]] = {
    # (module, function of the call site): (its reasons, the (kind, condition type) they land on)
    (OPERATOR + "render.py", "keep_previous"): (
        lambda: {"Invalid"} | _unresolved() | _returned_reasons(OPERATOR + "render.py", "_stack_database_problem"),
        [("Stack", "Ready")],
    ),
    (OPERATOR + "render.py", "render"): (
        lambda: {"Invalid"} | _unresolved(),
        [("EmailProvider", "Ready"), ("EmailProvider", "CredentialsResolved")],
    ),
    (OPERATOR + "render.py", "_tell_verdicts"): (
        lambda: (
            _returned_reasons(OPERATOR + "notify.py", "reference_problem")
            | _arguments(OPERATOR + "notify.py", "WorkflowVerdict")
        ),
        [("NotificationWorkflow", "Ready")],
    ),
    (OPERATOR + "render.py", "_auth"): (_unresolved, [("Stack", "AuthReady")]),
    (OPERATOR + "search.py", "search_condition"): (_unresolved, [("Stack", "SearchReady")]),
    (WORKER + "database_status.py", "connected_condition"): (_probe_reasons, [("Database", "Connected")]),
    (WORKER + "database_status.py", "check"): (_probe_reasons, [("Database", "Connected")]),
    (WORKER + "bucket_status.py", "check"): (
        lambda: _returned_reasons(WORKER + "bucket_status.py", "classify"),
        [("Bucket", "Reachable")],
    ),
    (WORKER + "email_status.py", "_reachability"): (
        lambda: _assigned(WORKER + "email_status.py", "_reachability", "reason"),
        [("EmailProvider", "Reachable")],
    ),
    (WORKER + "email_status.py", "view"): (
        lambda: (
            {s.reason for s in condition_sites() if s.module == WORKER + "email_status.py" and s.reason}
            | _assigned(WORKER + "email_status.py", "_reachability", "reason")
        ),
        [("EmailProvider", "Reachable")],
    ),
    ("images/api/src/stackyard_api/search_status.py", "synced_condition"): (
        lambda: set(get_args(sync.Reason)),
        [("SearchIndex", "Synced")],
    ),
}
"""Two call sites land on more kinds than listed, with reasons that depend on the kind; the
test of the spec models checks those: `render`'s not_ready(reason) of a member (Invalid for
every kind, the Unresolved reasons for the kinds with Secret references) and
`_tell_verdicts`' of a SearchIndex (the reasons of search.index_problem)."""

DECLARED = {k.info.kind: {c.type: c for c in k.info.conditions} for k in KINDS}


def _declares(kind: str, type_: str, reason: str) -> bool:
    condition = DECLARED[kind].get(type_)
    return condition is not None and reason in condition.reasons


def test_every_literal_condition_the_code_sets_is_declared_by_its_kind():
    for module, function in PASS_THROUGH:
        assert _function(module, function)
    sites = condition_sites()
    assert len(sites) > 30, "the scan found too few condition sites: has the way conditions are made changed?"
    for site in sites:
        where = f"{site.module}:{site.line}"
        assert site.module in MODULE_KINDS, f"{where} sets a condition: add its module to MODULE_KINDS"
        assert site.type is not None, f"{where}: a condition type that is not a literal"
        if site.reason is None:
            assert (site.module, site.function) in DYNAMIC_REASONS, (
                f"{where} sets a {site.type} reason that is not a literal: say in DYNAMIC_REASONS where it comes from"
            )
            continue
        kinds = MODULE_KINDS[site.module]
        assert any(_declares(k, site.type, site.reason) for k in kinds), (
            f"{where} sets {site.type} reason {site.reason}, which none of {', '.join(kinds)} declares"
        )


@pytest.mark.parametrize("site", sorted(DYNAMIC_REASONS), ids="/".join)
def test_every_computed_reason_is_declared_by_the_kinds_it_lands_on(site):
    reasons_of, targets = DYNAMIC_REASONS[site]
    reasons = reasons_of()
    assert reasons, f"no reason found for {site}: has the code moved?"
    for kind, type_ in targets:
        missing = sorted(r for r in reasons if not _declares(kind, type_, r))
        assert not missing, f"{kind} {type_} does not declare {missing}, set by {site[0]} {site[1]}"


def test_member_ready_reasons_follow_the_spec_models():
    unresolved = _unresolved()
    index_reasons = _returned_reasons(OPERATOR + "search.py", "index_problem")
    for kind in KINDS:
        info = kind.info
        if info.kind == "Stack":
            continue
        spec = kind.model_fields["spec"].annotation
        assert isinstance(spec, type)
        ready = DECLARED[info.kind]["Ready"].reasons
        wanted = {"InForce", "Invalid", "StackNotReady", "StackNotFound"}
        wanted |= {"Disabled"} if "enabled" in spec.model_fields else set()
        wanted |= {"Paused"} if "paused" in spec.model_fields else set()
        wanted |= unresolved if hasattr(spec, "secret_refs") else set()
        wanted |= index_reasons if info.kind == "SearchIndex" else set()
        assert wanted <= ready.keys(), f"{info.kind} Ready lacks {sorted(wanted - ready.keys())}"


def test_every_declared_reason_is_one_the_code_sets():
    literal = {(s.type, s.reason) for s in condition_sites() if s.reason is not None}
    computed = {
        (type_, reason)
        for reasons_of, targets in DYNAMIC_REASONS.values()
        for reason in reasons_of()
        for _, type_ in targets
    }
    computed |= {("Ready", r) for r in _returned_reasons(OPERATOR + "search.py", "index_problem")}
    for kind, conditions in DECLARED.items():
        for condition in conditions.values():
            for reason in condition.reasons:
                assert (condition.type, reason) in literal | computed, (
                    f"{kind} declares {condition.type} reason {reason}, which no code sets"
                )


def test_every_kind_declares_ready_and_the_types_its_columns_show():
    for kind in KINDS:
        types = [c.type for c in kind.info.conditions]
        assert types and types[0] == "Ready", f"{kind.info.kind}: Ready first"
        assert len(set(types)) == len(types)
        shown = {m.group(1) for c in kind.info.columns if (m := _CONDITION_COLUMN.match(c.json_path))}
        assert shown <= set(types), f"{kind.info.kind} shows {sorted(shown - set(types))} but does not declare it"


def test_operator_keeps_exactly_the_condition_types_the_components_set():
    components = {c.type for k in KINDS for c in k.info.conditions if c.set_by != "operator"}
    assert components == WORKER_CONDITIONS


def test_reference_lists_every_declared_condition_and_reason(reference):
    for kind in KINDS:
        section = reference.split(f"\n## {kind.info.kind}\n", 1)[1].split("\n## ", 1)[0]
        for condition in kind.info.conditions:
            assert f"| `{condition.type}` |" in section, f"{kind.info.kind}: {condition.type} not in the reference"
            reasons = section.split(f"Reasons of `{condition.type}`:", 1)[1].split("Reasons of", 1)[0]
            for reason in condition.reasons:
                assert f"| `{reason}` |" in reasons, f"{kind.info.kind} {condition.type}: {reason} not listed"
