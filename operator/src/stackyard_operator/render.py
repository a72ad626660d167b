"""render(observed) -> desired: everything the operator decides about one Stack.

A pure function of the current state (the Stack, the resources that name it, the
Secrets they reference, the config now in force and the Stack's workloads): the same
state gives the same answer, so a resync or an operator restart changes nothing.

Rules:
- The Stack's own Secrets must resolve, or nothing is applied and the config in force
  stays (Ready=False on the Stack, with the reason). So must the Database its
  spec.mongodb.databaseRef names: a valid member of the Stack (DatabaseNotFound,
  DatabaseInvalid).
- A member resource that is invalid (a Secret or key missing, a spec that does not
  parse) gets Ready=False with the reason; if an earlier version of it is in force,
  that version stays (with its credentials), else it is left out.
- Credentials go to the Stack's Secret under keys from `credential_key`; the config
  carries only those keys and a revision that moves when the Secret's data changes.
- The auth keys (signing key set, encryption key) are kept in the Secret <stack>-auth-keys
  and copied into the credentials; they are rotated to `now` (see auth_keys.py), and
  `Desired.next_change` says when the reconciler must look again. An admin API key that
  does not resolve is left out with AuthReady=False; the rest of the config applies.
- Databases in force also get their migration Job and backup Schedule (databases.py), the
  worker mounts their backup volumes; Buckets in force get their retention Schedule
  (buckets.py), the api and the worker mount the claims of volume Buckets; the Schedules
  made for them and no longer wanted are in `Desired.obsolete`, for the reconciler to delete.
- NotificationWorkflows are in force only when what they name is (notify.settle_workflows);
  a Webhook without spec.secretRef gets a signing Secret made once, and the Stack a web push
  (VAPID) key pair made once into the credentials (notify.py).
- SearchIndexes are in force only when their spec holds together in the Stack (a Database
  in force for a mongodb source, attributes the mapped documents have: search.settle_indexes);
  while one is, the Stack gets its search component (a StatefulSet and a Service), which is
  obsolete when none is left (search.py); the api's STACKYARD_SEARCH_URL is always set. The search-only API
  key resolves into the credentials, or is left out with SearchReady=False.
- OIDCClients of type confidential or machine get their client Secret (oidc_clients.py): made
  once, rotated on spec.clientSecret.rotationPeriod or by annotation with the previous secret
  kept for the grace period (`Desired.next_change` wakes the reconciler), copied into the
  credentials; SecretReady says how it stands. A public client's Secret made earlier is obsolete.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from stackyard.config import (
    AUTH_ADMIN_API_KEY,
    AUTH_ENCRYPTION_KEY,
    AUTH_SIGNING_KEYS,
    MONGODB_URI,
    REDIS_URL,
    SEARCH_API_KEY,
    TELEMETRY_SENTRY_DSN,
    RuntimeConfig,
    credential_key,
    telemetry_header_key,
)
from stackyard.resources import SecretKeyRef
from stackyard.resources.auth import IdentityProviderSpec
from stackyard.resources.bucket import BucketSpec
from stackyard.resources.database import DatabaseSpec
from stackyard.resources.email import EmailProviderSpec, EmailTemplateSpec
from stackyard.resources.jobs import JobQueueSpec, ScheduleSpec
from stackyard.resources.notify import NotificationWorkflowSpec, WebhookSpec
from stackyard.resources.oidc import OIDCClientSpec
from stackyard.resources.ratelimit import RateLimitPolicySpec
from stackyard.resources.search import SearchIndexSpec
from stackyard.resources.stack import StackSpec

from . import manifests, notify, search
from .auth_keys import AuthKeys, AuthKeysObserved, auth_condition, render_auth_keys
from .buckets import render_bucket_objects
from .conditions import FALSE, TRUE, UNKNOWN, ConditionIntent, not_ready, ready
from .databases import ObjectRef, render_database_objects
from .oidc_clients import ClientSecrets, OIDCObserved, render_client_secrets


@dataclass(frozen=True)
class MemberKind:
    kind: str
    config_field: str
    spec_model: type[BaseModel]


MEMBER_KINDS = {
    k.kind: k
    for k in (
        MemberKind("EmailProvider", "email_providers", EmailProviderSpec),
        MemberKind("EmailTemplate", "email_templates", EmailTemplateSpec),
        MemberKind("RateLimitPolicy", "rate_limit_policies", RateLimitPolicySpec),
        MemberKind("JobQueue", "job_queues", JobQueueSpec),
        MemberKind("Schedule", "schedules", ScheduleSpec),
        MemberKind("IdentityProvider", "identity_providers", IdentityProviderSpec),
        MemberKind("Database", "databases", DatabaseSpec),
        MemberKind("Bucket", "buckets", BucketSpec),
        MemberKind("NotificationWorkflow", "notification_workflows", NotificationWorkflowSpec),
        MemberKind("Webhook", "webhooks", WebhookSpec),
        MemberKind("SearchIndex", "search_indexes", SearchIndexSpec),
        MemberKind("OIDCClient", "oidc_clients", OIDCClientSpec),
    )
}


@dataclass(frozen=True)
class Observed:
    stack: dict[str, Any]
    members: list[dict[str, Any]] = field(default_factory=list)
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Decoded data of the referenced Secrets that exist, by Secret name."""
    previous_config: RuntimeConfig | None = None
    previous_credentials: Mapping[str, str] = field(default_factory=dict)
    previous_credentials_revision: int = 0
    workloads: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Status of the Stack's Deployments, by component."""
    auth_keys: AuthKeysObserved | None = None
    """The auth-keys Secret, the time and fresh key material; None: not observed (the
    auth keys in force stay as they are)."""
    notify: notify.NotifyFresh | None = None
    """Fresh webhook signing secrets and VAPID keys for what is missing; None: not observed
    (nothing is made; what is in force stays)."""
    search_workload: search.SearchWorkload | None = None
    """The Stack's search StatefulSet, if it exists."""
    oidc: OIDCObserved | None = None
    """The OIDCClients' Secrets, the time and a fresh client secret per client; None: not
    observed (the client secrets in force stay, nothing is made)."""


@dataclass(frozen=True)
class StatusUpdate:
    conditions: list[ConditionIntent]
    generation: int
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Desired:
    config: RuntimeConfig | None
    credentials: dict[str, str]
    credentials_revision: int
    objects: list[dict[str, Any]]
    statuses: dict[tuple[str, str], StatusUpdate]
    next_change: datetime | None = None
    """When the Stack must be reconciled again even without events (a key rotation step)."""
    obsolete: list[ObjectRef] = field(default_factory=list)
    """Objects the operator made earlier and that are no longer wanted, to delete after applying."""

    @property
    def stack_status(self) -> StatusUpdate:
        return next(s for (kind, _), s in self.statuses.items() if kind == "Stack")


class Unresolved(Exception):
    """A reference that cannot be resolved; the message is safe to show (no values)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def resolve_secret(ref: SecretKeyRef, secrets: Mapping[str, Mapping[str, str]]) -> str:
    if ref.name not in secrets:
        raise Unresolved("SecretNotFound", f"Secret {ref.name} not found")
    data = secrets[ref.name]
    if ref.key not in data:
        raise Unresolved("SecretKeyNotFound", f"Secret {ref.name} has no key {ref.key!r}")
    return data[ref.key]


def validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = "".join(f".{p}" for p in first["loc"])
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    # A model's own check (an unknown time zone, a bad cron expression) says its message
    # without pydantic's "Value error, " prefix.
    error = first.get("ctx", {}).get("error") if first["type"] == "value_error" else None
    return f"spec{where}: {error if error is not None else first['msg']}{more}"


def referenced_secrets(body: dict[str, Any]) -> set[str]:
    """Names of the Secrets a Stack or member resource refers to (for the watch index)."""
    names: set[str] = set()

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            if key.endswith("SecretRef") and isinstance(node.get("name"), str):
                names.add(node["name"])
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for item in node:
                walk(item, key)

    walk(body.get("spec", {}))
    if notify.needs_generated_secret(body):
        names.update(notify.generated_secrets([body]).values())
    return names


def _stack_credentials(spec: StackSpec, secrets: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    credentials = {REDIS_URL: resolve_secret(spec.redis.url_secret_ref, secrets)}
    if spec.mongodb.uri_secret_ref is not None:  # else the Database named by databaseRef has the URI
        credentials[MONGODB_URI] = resolve_secret(spec.mongodb.uri_secret_ref, secrets)
    telemetry = spec.telemetry
    for header in telemetry.headers:
        credentials[telemetry_header_key(header.name)] = resolve_secret(header.value_secret_ref, secrets)
    if telemetry.sentry is not None:
        credentials[TELEMETRY_SENTRY_DSN] = resolve_secret(telemetry.sentry.dsn_secret_ref, secrets)
    return credentials


def _member_credentials(
    kind: str, name: str, spec: BaseModel, secrets: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    refs: dict[str, SecretKeyRef]
    if isinstance(spec, WebhookSpec):  # its made Secret is named after it
        refs = spec.secret_refs(name)
    else:
        refs = spec.secret_refs() if hasattr(spec, "secret_refs") else {}
    return {credential_key(kind, name, cred): resolve_secret(ref, secrets) for cred, ref in sorted(refs.items())}


def _previous_entry(observed: Observed, member_kind: MemberKind, name: str) -> tuple[Any, dict[str, str]] | None:
    """The member's version in the config in force, with its credentials, if any."""
    if observed.previous_config is None:
        return None
    entry = getattr(observed.previous_config, member_kind.config_field).get(name)
    if entry is None:
        return None
    prefix = credential_key(member_kind.kind, name, "")
    return entry, {k: v for k, v in observed.previous_credentials.items() if k.startswith(prefix)}


def _availability(workloads: Mapping[str, Mapping[str, Any]], spec: StackSpec, with_search: bool) -> ConditionIntent:
    parts, available = [], True
    wanted_replicas = {c: getattr(spec, c).replicas for c in manifests.COMPONENTS}
    if with_search:
        wanted_replicas[search.COMPONENT] = 1
    for component, wanted in wanted_replicas.items():
        have = int(workloads.get(component, {}).get("readyReplicas") or 0)
        parts.append(f"{component} {have}/{wanted} ready")
        available &= have >= min(wanted, 1)
    return ConditionIntent(
        "Available", TRUE if available else FALSE, "PodsReady" if available else "PodsNotReady", ", ".join(parts)
    )


def _not_evaluated(stack_body: Mapping[str, Any]) -> list[ConditionIntent]:
    """While Ready is False nothing else is decided: each other condition the Stack shows
    turns Unknown (the Kubernetes convention), rather than keeping a verdict that is no
    longer checked or vanishing from `kubectl describe`."""
    shown = {c.get("type") for c in stack_body.get("status", {}).get("conditions", [])}
    message = "not checked while the Stack's spec does not apply (see Ready)"
    unknown = [
        ConditionIntent("MembersReady", UNKNOWN, "NotEvaluated", message),
        ConditionIntent("Available", UNKNOWN, "NotEvaluated", message),
        ConditionIntent("AuthReady", UNKNOWN, "NotEvaluated", message),
        ConditionIntent("SearchReady", UNKNOWN, "NotEvaluated", message),
    ]
    return [c for c in unknown if c.type in shown]


def render(observed: Observed) -> Desired:
    stack_body = observed.stack
    stack_name = stack_body["metadata"]["name"]
    generation = int(stack_body["metadata"].get("generation", 0))
    statuses: dict[tuple[str, str], StatusUpdate] = {}
    members = sorted(observed.members, key=lambda m: (m["kind"], m["metadata"]["name"]))

    def keep_previous(reason: str, message: str, keep: tuple[str, str] | None = None) -> Desired:
        """Nothing applied; every member says why, but `keep`, whose own status says more."""
        for member in members:
            key = (member["kind"], member["metadata"]["name"])
            if key == keep and key in statuses:
                continue
            statuses[key] = StatusUpdate(
                [not_ready("StackNotReady", f"Stack {stack_name} is not ready: {message}")],
                int(member["metadata"].get("generation", 0)),
            )
        statuses[("Stack", stack_name)] = StatusUpdate(
            [not_ready(reason, message + _in_force_suffix(observed)), *_not_evaluated(stack_body)], generation
        )
        return Desired(None, dict(observed.previous_credentials), observed.previous_credentials_revision, [], statuses)

    try:
        spec = StackSpec.model_validate(stack_body.get("spec", {}))
    except ValidationError as exc:
        return keep_previous("Invalid", validation_message(exc))
    try:
        credentials = _stack_credentials(spec, observed.secrets)
    except Unresolved as exc:
        return keep_previous(exc.reason, exc.message)
    auth_keys, auth_intent = _auth(stack_body, spec, observed, credentials)
    search_key_problem = _search_key(spec, observed.secrets, credentials)
    credentials.update(notify.vapid_credentials(observed.previous_credentials, observed.notify))
    signing = notify.signing_secrets(
        stack_body, members, observed.secrets, observed.previous_credentials, observed.notify
    )
    secrets = {**observed.secrets, **signing.secrets}

    folded: dict[str, dict[str, Any]] = {k.config_field: {} for k in MEMBER_KINDS.values()}
    member_problems = []
    invalid: dict[tuple[str, str], str] = {}
    for member in members:
        kind, name = member["kind"], member["metadata"]["name"]
        member_kind = MEMBER_KINDS[kind]
        member_generation = int(member["metadata"].get("generation", 0))
        intents: list[ConditionIntent]
        fields: dict[str, Any] = {}
        try:
            member_spec = member_kind.spec_model.model_validate(member.get("spec", {}))
            fields = notify.status_fields(kind, name, member_spec)
            member_credentials = _member_credentials(kind, name, member_spec, secrets)
        except (ValidationError, Unresolved) as exc:
            reason, message = (
                ("Invalid", validation_message(exc)) if isinstance(exc, ValidationError) else (exc.reason, exc.message)
            )
            previous = _previous_entry(observed, member_kind, name)
            if previous is not None:
                folded[member_kind.config_field][name], previous_credentials = previous
                credentials.update(previous_credentials)
                message += "; the last good version stays in force"
            intents = [not_ready(reason, message)]
            if kind == "EmailProvider":
                intents.append(ConditionIntent("CredentialsResolved", FALSE, reason, message))
            member_problems.append(f"{kind} {name}: {reason}")
            invalid[(kind, name)] = f"{reason}: {message}"
        else:
            folded[member_kind.config_field][name] = member_spec
            credentials.update(member_credentials)
            if not getattr(member_spec, "enabled", True):
                intents = [ready("Disabled", "in the config, but not used while spec.enabled is false")]
            elif getattr(member_spec, "paused", False):
                intents = [ready("Paused", f"in force in Stack {stack_name}, paused while spec.paused is true")]
            else:
                intents = [ready("InForce", f"in force in Stack {stack_name}")]
            if kind == "EmailProvider":
                intents.append(
                    ConditionIntent(
                        "CredentialsResolved", TRUE, "SecretsFound", "every referenced Secret key is present"
                    )
                )
        statuses[(kind, name)] = StatusUpdate(intents, member_generation, fields)
    _settle_workflows(stack_name, members, folded, statuses, observed, member_problems, invalid)
    _settle_indexes(stack_name, members, folded, statuses, observed, member_problems, invalid)
    client_secrets = _client_secrets(stack_body, members, folded, statuses, observed, member_problems, invalid)
    credentials.update(client_secrets.credentials)

    ref = spec.mongodb.database_ref
    if ref is not None and (problem := _stack_database_problem(ref.name, members, invalid)) is not None:
        return keep_previous(*problem, keep=("Database", ref.name))
    made = render_database_objects(stack_body, spec, folded["databases"], members)
    storage = render_bucket_objects(stack_body, folded["buckets"], members)
    obsolete_objects = [*made.obsolete, *storage.obsolete]
    for obsolete in obsolete_objects:  # about to be deleted: neither in force nor given a status
        folded["schedules"].pop(obsolete.name, None)
        statuses.pop((obsolete.kind, obsolete.name), None)
    searching = search.render_search_objects(stack_body, spec, folded["search_indexes"], observed.search_workload)
    obsolete_objects += [*searching.obsolete, *client_secrets.obsolete]

    revision = observed.previous_credentials_revision
    if credentials != dict(observed.previous_credentials):
        revision += 1
    config = RuntimeConfig(
        stack=stack_name,
        namespace=stack_body["metadata"]["namespace"],
        generation=generation,
        credentials_revision=revision,
        spec=spec,
        **folded,
    )
    counts = {k.kind: len(folded[k.config_field]) for k in MEMBER_KINDS.values()}
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    stack_intents = [ready("ConfigApplied", f"config {config.hash} in force ({summary})")]
    stack_intents.append(
        ConditionIntent("MembersReady", FALSE, "MembersInvalid", "; ".join(member_problems))
        if member_problems
        else ConditionIntent("MembersReady", TRUE, "AllMembersReady", "every resource of the Stack is in force")
    )
    stack_intents.append(_availability(observed.workloads, spec, bool(folded["search_indexes"])))
    stack_intents.append(auth_intent)
    search_intent = search.search_condition(
        stack_name, spec, len(folded["search_indexes"]), search_key_problem, searching.volume_problem
    )
    if search_intent is not None:
        stack_intents.append(search_intent)
    statuses[("Stack", stack_name)] = StatusUpdate(
        stack_intents, generation, {"configHash": config.hash, "members": counts}
    )
    objects = [
        manifests.service_account(stack_body),
        manifests.config_reader_role(stack_body),
        manifests.config_reader_binding(stack_body),
        # Where the keys are kept, before the copy that the api and worker read.
        *(
            [manifests.auth_keys_secret(stack_body, auth_keys.secret_data, auth_keys.rotation_handled)]
            if auth_keys is not None and auth_keys.secret_data is not None
            else []
        ),
        manifests.credentials_secret(stack_body, credentials, revision),
        manifests.config_map(stack_body, config),
        *(
            manifests.deployment(stack_body, spec, c, made.backups, storage.volumes, searching.url)
            for c in manifests.COMPONENTS
        ),
        manifests.api_service(stack_body),
        *made.objects,
        *storage.objects,
        *signing.objects,
        *searching.objects,
        *client_secrets.objects,
    ]
    changes = [c for c in (auth_keys.next_change if auth_keys else None, client_secrets.next_change) if c]
    next_change = min(changes) if changes else None
    return Desired(config, credentials, revision, objects, statuses, next_change, obsolete_objects)


def _settle_workflows(
    stack: str,
    members: list[dict[str, Any]],
    folded: dict[str, dict[str, Any]],
    statuses: dict[tuple[str, str], StatusUpdate],
    observed: Observed,
    member_problems: list[str],
    invalid: dict[tuple[str, str], str],
) -> None:
    """Leave in the config only the NotificationWorkflows that can run (notify.py), and say
    why of the others."""
    previous = observed.previous_config.notification_workflows if observed.previous_config is not None else {}
    created = {
        m["metadata"]["name"]: str(m["metadata"].get("creationTimestamp") or "")
        for m in members
        if m["kind"] == "NotificationWorkflow"
    }
    candidates = {
        n: s for n, s in folded["notification_workflows"].items() if ("NotificationWorkflow", n) not in invalid
    }
    in_force, verdicts = notify.settle_workflows(
        stack, candidates, previous, folded["email_templates"], folded["webhooks"], created
    )
    kept_invalid = {n: s for n, s in folded["notification_workflows"].items() if n not in candidates}
    folded["notification_workflows"] = {**kept_invalid, **in_force}
    _tell_verdicts("NotificationWorkflow", verdicts, statuses, member_problems, invalid)


def _settle_indexes(
    stack: str,
    members: list[dict[str, Any]],
    folded: dict[str, dict[str, Any]],
    statuses: dict[tuple[str, str], StatusUpdate],
    observed: Observed,
    member_problems: list[str],
    invalid: dict[tuple[str, str], str],
) -> None:
    """Leave in the config only the SearchIndexes that can work in the Stack (search.py), and
    say why of the others."""
    previous = observed.previous_config.search_indexes if observed.previous_config is not None else {}
    database_members = {
        m["metadata"]["name"]: invalid.get(("Database", m["metadata"]["name"]))
        for m in members
        if m["kind"] == "Database"
    }
    candidates = {n: s for n, s in folded["search_indexes"].items() if ("SearchIndex", n) not in invalid}
    in_force, verdicts = search.settle_indexes(stack, candidates, previous, folded["databases"], database_members)
    kept_invalid = {n: s for n, s in folded["search_indexes"].items() if n not in candidates}
    folded["search_indexes"] = {**kept_invalid, **in_force}
    _tell_verdicts("SearchIndex", verdicts, statuses, member_problems, invalid)


def _client_secrets(
    stack_body: dict[str, Any],
    members: list[dict[str, Any]],
    folded: dict[str, dict[str, Any]],
    statuses: dict[tuple[str, str], StatusUpdate],
    observed: Observed,
    member_problems: list[str],
    invalid: dict[tuple[str, str], str],
) -> ClientSecrets:
    """The client Secrets of the OIDCClients whose spec parses (oidc_clients.py), their
    SecretReady and status fields. An invalid one keeps its Secret as it is, and the secrets
    in force with its last good version (copied with it by render)."""
    bodies = {m["metadata"]["name"]: m for m in members if m["kind"] == "OIDCClient"}
    clients = {
        name: (bodies[name], spec)
        for name, spec in folded["oidc_clients"].items()
        if ("OIDCClient", name) not in invalid and name in bodies
    }
    result = render_client_secrets(stack_body, clients, observed.oidc, observed.previous_credentials)
    for name, intent in result.conditions.items():
        status = statuses[("OIDCClient", name)]
        conditions = [*status.conditions, intent]
        statuses[("OIDCClient", name)] = StatusUpdate(
            conditions, status.generation, status.fields | result.fields[name]
        )
        if intent.status == FALSE:
            member_problems.append(f"OIDCClient {name}: {intent.reason}")
    return result


def _tell_verdicts(
    kind: str,
    verdicts: Mapping[str, notify.WorkflowVerdict | search.IndexVerdict],
    statuses: dict[tuple[str, str], StatusUpdate],
    member_problems: list[str],
    invalid: dict[tuple[str, str], str],
) -> None:
    """Ready=False with the reason for each member a settle step refused."""
    for name, verdict in verdicts.items():
        message = verdict.message + ("; the last good version stays in force" if verdict.kept else "")
        status = statuses[(kind, name)]
        statuses[(kind, name)] = StatusUpdate([not_ready(verdict.reason, message)], status.generation, status.fields)
        member_problems.append(f"{kind} {name}: {verdict.reason}")
        invalid[(kind, name)] = f"{verdict.reason}: {message}"


def _stack_database_problem(
    name: str, members: list[dict[str, Any]], invalid: Mapping[tuple[str, str], str]
) -> tuple[str, str] | None:
    """Why the Database `name`, which the Stack keeps its own collections in, cannot be used."""
    where = "spec.mongodb.databaseRef"
    if not any(m["kind"] == "Database" and m["metadata"]["name"] == name for m in members):
        return "DatabaseNotFound", f"{where}: no Database {name} with a spec.stackRef naming this Stack"
    if ("Database", name) in invalid:
        return "DatabaseInvalid", f"{where}: Database {name} is not valid ({invalid[('Database', name)]})"
    return None


def _auth(
    stack_body: dict[str, Any], spec: StackSpec, observed: Observed, credentials: dict[str, str]
) -> tuple[AuthKeys | None, ConditionIntent]:
    """The auth keys and the admin API key into `credentials`, and the AuthReady condition."""
    auth_keys = None
    if observed.auth_keys is not None:
        auth_keys = render_auth_keys(stack_body, spec, observed.auth_keys, observed.previous_credentials)
        credentials.update(auth_keys.credentials)
    else:
        in_force = observed.previous_credentials
        credentials.update({k: in_force[k] for k in (AUTH_SIGNING_KEYS, AUTH_ENCRYPTION_KEY) if k in in_force})
    admin_problem = None
    if spec.auth.admin_api_key_secret_ref is not None:
        try:
            credentials[AUTH_ADMIN_API_KEY] = resolve_secret(spec.auth.admin_api_key_secret_ref, observed.secrets)
        except Unresolved as exc:
            message = f"spec.auth.adminApiKeySecretRef: {exc.message}; the admin API is off until it resolves"
            admin_problem = ConditionIntent("AuthReady", FALSE, exc.reason, message)
    return auth_keys, auth_condition(auth_keys, admin_problem, stack_body["metadata"]["name"])


def _search_key(
    spec: StackSpec, secrets: Mapping[str, Mapping[str, str]], credentials: dict[str, str]
) -> tuple[str, str] | None:
    """The search-only API key into `credentials`; (reason, message) when it does not resolve."""
    ref = spec.search.search_api_key_secret_ref
    if ref is None:
        return None
    try:
        credentials[SEARCH_API_KEY] = resolve_secret(ref, secrets)
    except Unresolved as exc:
        return exc.reason, exc.message
    return None


def _in_force_suffix(observed: Observed) -> str:
    if observed.previous_config is None:
        return "; no config is in force yet"
    return f"; config {observed.previous_config.hash} stays in force"


def orphan_status(member: dict[str, Any]) -> StatusUpdate:
    """The status of a member resource whose Stack does not exist."""
    stack = member.get("spec", {}).get("stackRef", {}).get("name", "?")
    return StatusUpdate(
        [not_ready("StackNotFound", f"Stack {stack} not found in namespace {member['metadata'].get('namespace')}")],
        int(member["metadata"].get("generation", 0)),
    )
