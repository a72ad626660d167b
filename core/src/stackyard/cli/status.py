"""`stackyard status`: every Stack of a namespace in one screen — its conditions, the config
hash it applied, its member resources of every stackyard kind with their Ready condition and
key columns, its EmailProviders' circuit breakers — read from the cluster with the user's
kubeconfig; then, through the api, the queue depths and the config hash the api applies,
flagged when it is not the Stack's.

Exit codes: 0 when everything could be read (a condition that is False is reported, not an
error); 1 when the named Stack does not exist, the Kubernetes API refused, or the api answered
with an error; 2 without a kubeconfig; 3 when the Kubernetes API or the api could not be
reached. With an unreachable (or failing) api the cluster part is still printed, the api part
marked as such. Nothing of a Secret is read, and nothing secret is printed: the columns are
the kinds' printer columns (`kubectl get`), URLs shown without their user info. Listing
every Stack, resources whose stackRef names no Stack of the namespace are shown as orphans.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .context import EXIT_API_ERROR, EXIT_UNREACHABLE, cli, fail
from .output import Output, Table, emit

if TYPE_CHECKING:
    from collections.abc import Callable

    from stackyard.client import Stackyard

GROUP, VERSION = "stackyard.dev", "v1alpha1"
KUBE_TIMEOUT = 10.0
"""Seconds one request to the Kubernetes API may take."""
SKIPPED_COLUMNS = {"Ready", "Reason", "Age"}
"""Printer columns every kind has, shown in columns of their own (or not at all)."""


def status(
    ctx: typer.Context,
    stack: Annotated[str | None, typer.Argument(metavar="[STACK]", help="One Stack (default: every one).")] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="The namespace (default: the kubeconfig's).")
    ] = None,
) -> None:
    """Every Stack (or one): conditions, config hash, members, email breakers; the api's queues and config hash."""
    options = cli(ctx)
    with progress() as say:
        say("reading the Stacks from the Kubernetes API")
        namespace, stacks, orphans = asyncio.run(read_cluster(namespace, stack))
        say("reading the queues and the applied config from the api")
        api = read_api(options.client)
    body = {
        "namespace": namespace,
        "stacks": [s.as_json(api) for s in stacks],
        "orphans": [m.as_json() | {"stackRef": m.stack_ref} for m in orphans],
        "api": api.as_json(),
    }
    emit(options.output, body, [*status_tables(stacks, orphans, api)])
    if options.output is Output.table and not stacks:
        sys.stderr.write(f"no Stack in namespace {namespace}\n")
    if api.error is not None:
        fail(api.error, api.exit_code)


# -- the cluster ------------------------------------------------------------------------------


@dataclass
class Member:
    kind: str
    name: str
    conditions: list[dict[str, Any]]
    columns: dict[str, Any]
    """The kind's printer columns other than Ready, Reason and Age, by camelCase name."""
    status: dict[str, Any] = field(default_factory=dict, repr=False)
    stack_ref: str | None = None

    @property
    def ready(self) -> dict[str, Any]:
        return condition(self.conditions, "Ready")

    def as_json(self) -> dict[str, Any]:
        ready = self.ready
        return {
            "kind": self.kind,
            "name": self.name,
            "ready": ready.get("status", "Unknown"),
            "reason": ready.get("reason"),
            "message": ready.get("message"),
            "columns": self.columns,
        }


@dataclass
class StackView:
    name: str
    namespace: str
    generation: int | None
    observed_generation: int | None
    config_hash: str | None
    conditions: list[dict[str, Any]]
    members: list[Member]

    @property
    def email_providers(self) -> list[Member]:
        return [m for m in self.members if m.kind == "EmailProvider"]

    def as_json(self, api: ApiView) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "generation": self.generation,
            "observedGeneration": self.observed_generation,
            "configHash": self.config_hash,
            "apiConfigHash": api.config_hash if api.serves(self) else None,
            "configInSync": api.in_sync(self),
            "conditions": [
                {key: c.get(key) for key in ("type", "status", "reason", "message", "lastTransitionTime")}
                for c in self.conditions
            ],
            "members": [m.as_json() for m in self.members],
            "emailProviders": [provider_json(p) for p in self.email_providers],
        }


async def read_cluster(namespace: str | None, name: str | None) -> tuple[str, list[StackView], list[Member]]:
    """The namespace read, its Stacks (or the one named) with their members, and, when every
    Stack is read, the orphans: resources whose stackRef names no Stack of the namespace."""
    from kubernetes_asyncio import client
    from kubernetes_asyncio.client.exceptions import ApiException

    from stackyard.resources.registry import KINDS

    from .kube import kube_client, kube_message

    logging.getLogger("kubernetes_asyncio").setLevel(logging.ERROR)  # its warnings would add lines to the error
    api_client, namespace = await kube_client(namespace)
    async with api_client:
        objects = client.CustomObjectsApi(api_client)

        async def listed(plural: str) -> list[dict[str, Any]]:
            try:
                answer = await objects.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, _request_timeout=KUBE_TIMEOUT
                )
            except ApiException as exc:
                if exc.status == 404 and plural != "stacks":  # that kind's CRD is not installed
                    return []
                raise
            return list(answer.get("items", []))

        try:
            if name is not None:
                try:
                    found = [
                        await objects.get_namespaced_custom_object(
                            GROUP, VERSION, namespace, "stacks", name, _request_timeout=KUBE_TIMEOUT
                        )
                    ]
                except ApiException as exc:
                    if exc.status == 404:
                        fail(f"no Stack {name} in namespace {namespace}", EXIT_API_ERROR)
                    raise
            else:
                found = await listed("stacks")
            kinds = [k for k in KINDS if k.info.kind != "Stack"]
            lists = await asyncio.gather(*(listed(k.info.plural) for k in kinds)) if found else []
        except ApiException as exc:
            fail(f"the Kubernetes API refused ({exc.status} {exc.reason}): {kube_message(exc)}", EXIT_API_ERROR)
        except (OSError, TimeoutError) as exc:  # aiohttp's connection errors are OSErrors
            fail(f"cannot reach the Kubernetes API: {exc or type(exc).__name__}", EXIT_UNREACHABLE)
    members: dict[str, list[Member]] = {}
    for kind, items in zip(kinds if found else [], lists, strict=True):
        columns = [c for c in kind.info.columns if c.priority == 0 and c.name not in SKIPPED_COLUMNS]
        for item in items:
            ref = str(((item.get("spec") or {}).get("stackRef") or {}).get("name"))
            state = item.get("status") or {}
            values = {camel(c.name): shown(json_path(item, c.json_path)) for c in columns}
            conditions = list(state.get("conditions") or [])
            members.setdefault(ref, []).append(
                Member(kind.info.kind, item["metadata"]["name"], conditions, values, state, stack_ref=ref)
            )
    stacks = []
    for item in sorted(found, key=lambda s: str(s["metadata"]["name"])):
        state = item.get("status") or {}
        stack_name = str(item["metadata"]["name"])
        stacks.append(
            StackView(
                name=stack_name,
                namespace=namespace,
                generation=item["metadata"].get("generation"),
                observed_generation=state.get("observedGeneration"),
                config_hash=state.get("configHash"),
                conditions=list(state.get("conditions") or []),
                members=sorted(members.get(stack_name, []), key=lambda m: (m.kind, m.name)),
            )
        )
    orphans: list[Member] = []
    if name is None:
        named = {s.name for s in stacks}
        orphans = sorted(
            (m for ref, listed in members.items() if ref not in named for m in listed), key=lambda m: (m.kind, m.name)
        )
    return namespace, stacks, orphans


def condition(conditions: Sequence[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next((c for c in conditions if c.get("type") == kind), {})


_PATH_PART = re.compile(r'\.([A-Za-z0-9_]+)|\[\?\(@\.([A-Za-z0-9_]+)=="([^"]*)"\)\]|\[\*\]')


def json_path(item: Any, path: str) -> Any:
    """The value at a printer column's JSONPath (the subset CRDs use: `.a.b`,
    `[?(@.type=="Ready")]`, `[*]`); None when absent, a list after a `[*]`."""
    values: list[Any] = [item]
    many = False
    for match in _PATH_PART.finditer(path):
        key, filter_key, filter_value = match.groups()
        found: list[Any] = []
        for value in values:
            if key is not None and isinstance(value, dict) and key in value:
                found.append(value[key])
            elif filter_key is not None and isinstance(value, list):
                found += [v for v in value if isinstance(v, dict) and str(v.get(filter_key)) == filter_value]
            elif key is None and filter_key is None and isinstance(value, list):
                found += value
                many = True
        values = found
    if many:
        return values
    return values[0] if values else None


def camel(column: str) -> str:
    """A printer column's name as a JSON key: "Default Locale" -> "defaultLocale"."""
    first, *rest = column.split()
    return first.lower() + "".join(word.capitalize() for word in rest)


_USER_INFO = re.compile(r"(?<=://)[^/@\s]+@")


def shown(value: Any) -> Any:
    """A column's value, with the user info of a URL left out (it may be a password)."""
    if isinstance(value, str):
        return _USER_INFO.sub("", value)
    if isinstance(value, list):
        return [shown(v) for v in value]
    return value


def provider_json(provider: Member) -> dict[str, Any]:
    ready, reachable = provider.ready, condition(provider.conditions, "Reachable")
    return {
        "name": provider.name,
        "type": provider.columns.get("type"),
        "priority": provider.columns.get("priority"),
        "ready": ready.get("status", "Unknown"),
        "reachable": reachable.get("status", "Unknown"),
        "reachableReason": reachable.get("reason"),
        "breaker": provider.status.get("breaker"),
        "lastAttempt": provider.status.get("lastAttempt"),
    }


# -- the api ----------------------------------------------------------------------------------


@dataclass
class ApiView:
    url: str
    config: dict[str, Any] | None = None
    queues: list[dict[str, Any]] | None = None
    error: str | None = None
    exit_code: int = 0

    @property
    def config_hash(self) -> str | None:
        return None if self.config is None else self.config.get("hash")

    def serves(self, stack: StackView) -> bool:
        return self.config is not None and (self.config.get("stack"), self.config.get("namespace")) == (
            stack.name,
            stack.namespace,
        )

    def in_sync(self, stack: StackView) -> bool | None:
        """Whether the api applies the config the Stack's status names; None when this api
        does not serve that Stack, or could not say."""
        return self.config_hash == stack.config_hash if self.serves(stack) else None

    def as_json(self) -> dict[str, Any]:
        config = self.config or {}
        return {
            "url": self.url,
            "reachable": self.exit_code != EXIT_UNREACHABLE,
            "error": self.error,
            "stack": config.get("stack"),
            "namespace": config.get("namespace"),
            "configHash": config.get("hash"),
            "generation": config.get("generation"),
            "lastError": config.get("lastError"),
            "queues": self.queues,
        }


def read_api(client_of: Callable[[], Stackyard]) -> ApiView:
    """The api's applied config and its queues; an unreachable or failing api is noted, not raised."""
    from stackyard.client import ApiUnreachable, StackyardError

    client = client_of()
    view = ApiView(client.base_url)
    try:
        with client:
            view.config = client.config.get().model_dump(mode="json", by_alias=True)
            view.queues = [
                {
                    "name": q.name,
                    "paused": q.paused,
                    "queued": q.counts.queued,
                    "scheduled": q.counts.scheduled,
                    "active": q.counts.active,
                    "dead": q.counts.dead,
                }
                for q in sorted(client.queues.list(), key=lambda q: q.name)
            ]
    except ApiUnreachable as exc:
        view.error, view.exit_code = f"cannot reach the stackyard api at {exc.url}: {exc.reason}", EXIT_UNREACHABLE
    except StackyardError as exc:
        detail = f": {exc.detail}" if exc.detail else ""
        view.error, view.exit_code = f"the api answered {exc.title}{detail} (HTTP {exc.status})", EXIT_API_ERROR
    return view


# -- the screen -------------------------------------------------------------------------------


def status_tables(stacks: Sequence[StackView], orphans: Sequence[Member], api: ApiView) -> Iterator[Table]:
    for stack in stacks:
        yield stack_table(stack, api)
        rows = [
            [c.get("type", "-"), c.get("status", "-"), c.get("reason") or "-", c.get("message") or "-"]
            for c in stack.conditions
        ]
        yield Table(["TYPE", "STATUS", "REASON", "MESSAGE"], rows, title="Conditions")
        yield members_table(stack)
        if stack.email_providers:
            yield providers_table(stack)
    if orphans:
        yield orphans_table(orphans)
    yield api_table(api)
    if api.queues is not None:
        rows = [
            [q["name"], "yes" if q["paused"] else "no", *(str(q[k]) for k in ("queued", "scheduled", "active", "dead"))]
            for q in api.queues
        ]
        yield Table(["NAME", "PAUSED", "QUEUED", "SCHEDULED", "ACTIVE", "DEAD"], rows, title="Queues")


def orphans_table(orphans: Sequence[Member]) -> Table:
    rows = []
    for member in orphans:
        ready = member.ready
        status, reason = ready.get("status", "Unknown"), ready.get("reason") or "-"
        rows.append([member.kind, member.name, member.stack_ref or "-", status, reason, ready.get("message") or "-"])
    return Table(["KIND", "NAME", "STACK REF", "READY", "REASON", "MESSAGE"], rows, title="Orphans (of no Stack here)")


def stack_table(stack: StackView, api: ApiView) -> Table:
    ready = condition(stack.conditions, "Ready")
    rows = [
        ["STACK", f"{stack.name} (namespace {stack.namespace})"],
        ["READY", " ".join(filter(None, [ready.get("status", "Unknown"), ready.get("reason")]))],
        ["GENERATION", f"{stack.generation} (observed {stack.observed_generation})"],
        ["CONFIG HASH", stack.config_hash or "-"],
        ["API CONFIG HASH", api_hash(stack, api)],
    ]
    return Table(["FIELD", "VALUE"], rows, header=False)


def api_hash(stack: StackView, api: ApiView) -> str:
    if api.config is None:
        return "unknown: the api could not be read"
    if not api.serves(stack):
        return f"- (the api serves Stack {api.config.get('namespace')}/{api.config.get('stack')})"
    if api.in_sync(stack):
        return f"{api.config_hash} (in sync)"
    return f"{api.config_hash} DIFFERS from the Stack's: the api has not applied {stack.config_hash} (yet)"


def members_table(stack: StackView) -> Table:
    rows = []
    for member in stack.members:
        ready = member.ready
        status = ready.get("status", "Unknown")
        details = " ".join(f"{key}={quoted(cell(value))}" for key, value in member.columns.items())
        message = "-" if status == "True" else (ready.get("message") or "-")
        rows.append([member.kind, member.name, status, ready.get("reason") or "-", details or "-", message])
    return Table(["KIND", "NAME", "READY", "REASON", "STATUS", "MESSAGE"], rows, title="Members")


def providers_table(stack: StackView) -> Table:
    rows = []
    for provider in stack.email_providers:
        facts = provider_json(provider)
        breaker = facts["breaker"] or {}
        last = facts["lastAttempt"] or {}
        attempt = "-"
        if last:
            attempt = f"{last.get('kind')} {last.get('outcome')} at {last.get('at')}"
            attempt += f": {last['error']}" if last.get("error") else ""
        rows.append(
            [
                provider.name,
                cell(facts["type"]),
                cell(facts["priority"]),
                facts["ready"],
                " ".join(filter(None, [facts["reachable"], facts["reachableReason"]])),
                breaker.get("state", "-"),
                cell(breaker.get("consecutiveFailures")),
                cell(breaker.get("timesOpened")),
                cell(breaker.get("openedAt")),
                attempt,
            ]
        )
    columns = ["NAME", "TYPE", "PRIORITY", "READY", "REACHABLE", "BREAKER", "FAILURES", "OPENED", "OPENED AT"]
    return Table([*columns, "LAST ATTEMPT"], rows, title="Email providers")


def api_table(api: ApiView) -> Table:
    rows = [["API", api.url]]
    if api.error is not None:
        rows.append(["STATE", "unreachable" if api.exit_code == EXIT_UNREACHABLE else "error"])
        rows.append(["ERROR", api.error])
    if api.config is not None:
        rows.append(["STACK", f"{api.config.get('stack')} (namespace {api.config.get('namespace')})"])
        rows.append(["CONFIG HASH", f"{api.config_hash} (generation {api.config.get('generation')})"])
        if api.config.get("lastError"):
            rows.append(["LAST REFUSED CONFIG", str(api.config["lastError"])])
    return Table(["FIELD", "VALUE"], rows, header=False)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(cell(v) for v in value) or "-"
    return str(value)


def quoted(text: str) -> str:
    return f'"{text}"' if " " in text else text


@contextmanager
def progress() -> Iterator[Callable[[str], None]]:
    """What is being read, as a spinner on stderr when it is a terminal; nothing otherwise
    (a script's stderr holds only the error line, if any)."""
    if not sys.stderr.isatty():
        yield lambda _text: None
        return
    try:
        from rich.console import Console
    except ImportError:  # pragma: no cover - typer brings rich
        yield lambda _text: None
        return
    with Console(stderr=True).status("reading") as spinner:
        yield lambda text: spinner.update(text + "…")
