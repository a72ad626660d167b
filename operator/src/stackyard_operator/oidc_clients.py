"""What the operator decides about the client secrets of a Stack's OIDCClients.

A confidential or machine client gets the Secret `spec.secret_name(name)` (default
`<name>-oidc-client`), owned by the OIDCClient so that it goes with it, with the keys
`clientId` (the resource's name) and `clientSecret` (`secrets.token_urlsafe(32)`, 43
characters), and `previousClientSecret` during a grace period after a rotation. The Secret is
the source of truth, read on every reconcile; render() copies its secrets into the Stack's
credentials Secret under credential_key("OIDCClient", name, "clientSecret") and
credential_key("OIDCClient", name, "previousClientSecret"), where the api reads them.

- Rotation: every `spec.clientSecret.rotationPeriod` (when set), and when the annotation
  stackyard.dev/rotate-client-secret on the OIDCClient gets a value not handled yet (the
  handled value is kept on the Secret, as for the Stack's signing keys). The secret in force
  becomes `previousClientSecret` and is still accepted for `gracePeriod`, then it goes.
  `next_change` says when the reconciler must look again (the next rotation, the end of a
  grace period).
- A Secret deleted by hand comes back with the secrets in force (from the credentials),
  never a new one. A `clientSecret` edited by hand into another value of 32 characters or
  more is taken (that is a rotation by hand, without grace); one edited into something
  shorter or empty is not: the secret in force stays and SecretReady is False
  (SecretInvalid), until it is fixed or a rotation is asked for.
- A public client has no client secret; a Secret the operator made for the client (before
  its type changed, or under a former secretName) is deleted.

Randomness stays outside render (as for the auth keys): the reconciler makes one fresh client
secret per client at each observation (`OIDCObserved.make`); render uses it only when it
makes or rotates a secret. No secret value ever reaches a condition, an event or a log.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stackyard.config import credential_key
from stackyard.resources.base import as_timedelta
from stackyard.resources.oidc import ROTATE_CLIENT_SECRET_ANNOTATION, OIDCClientSpec

from . import manifests
from .conditions import FALSE, TRUE, ConditionIntent
from .databases import ObjectRef

KIND = "OIDCClient"
COMPONENT = "oidc-client"
CLIENT_ID_KEY = "clientId"
CLIENT_SECRET_KEY = "clientSecret"
PREVIOUS_SECRET_KEY = "previousClientSecret"
MIN_SECRET_LENGTH = 32
"""A clientSecret shorter than this (a hand edit) is refused (SecretInvalid)."""
CLIENT_LABEL = "stackyard.dev/oidc-client"
"""On the Secret made for one OIDCClient: its name."""
ROTATED_AT_ANNOTATION = "stackyard.dev/client-secret-rotated-at"
PREVIOUS_EXPIRES_ANNOTATION = "stackyard.dev/previous-client-secret-expires-at"
ORIGIN_ANNOTATION = "stackyard.dev/client-secret-origin"
"""How the secret in force came: created (made with the Secret), rotated, or edited (by hand)."""
ROTATION_HANDLED_ANNOTATION = "stackyard.dev/rotation-handled"
"""On the client's Secret: the value of the last rotation request the operator carried out."""


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)


def client_secret_key(name: str) -> str:
    return credential_key(KIND, name, CLIENT_SECRET_KEY)


def previous_secret_key(name: str) -> str:
    return credential_key(KIND, name, PREVIOUS_SECRET_KEY)


def timestamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class StoredSecret:
    """A Secret as read: its data decoded, its annotations and labels, who owns it."""

    data: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    owner_uids: frozenset[str] = frozenset()
    uid: str = ""

    @classmethod
    def of(cls, secret: Mapping[str, Any]) -> StoredSecret:
        """From a Secret object as the API returns it (data in base64)."""
        meta = secret.get("metadata") or {}
        return cls(
            {k: base64.b64decode(v).decode(errors="replace") for k, v in (secret.get("data") or {}).items()},
            dict(meta.get("annotations") or {}),
            dict(meta.get("labels") or {}),
            frozenset(str(o.get("uid", "")) for o in meta.get("ownerReferences") or []),
            str(meta.get("uid") or ""),
        )


def secret_names(body: Mapping[str, Any]) -> set[str]:
    """The Secrets to read for an OIDCClient: the one its spec names (or the default) and
    the one its status names (made under a former name), whatever its spec says."""
    name = body["metadata"]["name"]
    spec = body.get("spec") or {}
    names = {str((spec.get("clientSecret") or {}).get("secretName") or f"{name}-oidc-client")}
    former = (body.get("status") or {}).get("secretName")
    if isinstance(former, str) and former:
        names.add(former)
    return names


@dataclass(frozen=True)
class OIDCObserved:
    now: datetime
    stored: Mapping[str, StoredSecret]
    """The OIDCClients' Secrets that exist, by Secret name."""
    fresh: Mapping[str, str]
    """A new client secret per OIDCClient (by name), made at `now`; used only to make or rotate."""

    @classmethod
    def make(cls, now: datetime, stored: Mapping[str, StoredSecret], clients: Iterable[str]) -> OIDCObserved:
        return cls(now, stored, {name: new_client_secret() for name in clients})


@dataclass
class ClientSecrets:
    """What render applies for the OIDCClients in force."""

    credentials: dict[str, str] = field(default_factory=dict)
    objects: list[dict[str, Any]] = field(default_factory=list)
    obsolete: list[ObjectRef] = field(default_factory=list)
    conditions: dict[str, ConditionIntent] = field(default_factory=dict)
    """SecretReady of each client, by name."""
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Status fields of each client, by name."""
    next_change: datetime | None = None


def made_by_operator(stored: StoredSecret, client_body: Mapping[str, Any]) -> bool:
    meta = client_body["metadata"]
    uid = str(meta.get("uid") or "")
    return (uid != "" and uid in stored.owner_uids) or (
        stored.labels.get(CLIENT_LABEL) == meta["name"]
        and stored.labels.get("app.kubernetes.io/managed-by") == manifests.MANAGER
    )


def render_client_secrets(
    stack_body: dict[str, Any],
    clients: Mapping[str, tuple[dict[str, Any], OIDCClientSpec]],
    observed: OIDCObserved | None,
    in_force: Mapping[str, str],
) -> ClientSecrets:
    """The client secrets of the OIDCClients in force (`clients`: body and spec by name);
    `in_force`: the credentials in force. `observed` None (not observed): the secrets in
    force stay, nothing is made."""
    result = ClientSecrets()
    for name, (body, spec) in sorted(clients.items()):
        wanted = spec.secret_name(name) if spec.has_secret else None
        if observed is not None:
            for other in sorted(secret_names(body) - ({wanted} if wanted else set())):
                stored = observed.stored.get(other)
                if stored is not None and made_by_operator(stored, body):
                    result.obsolete.append(ObjectRef("Secret", other, stored.uid))
        if wanted is None:
            result.conditions[name] = ConditionIntent(
                "SecretReady", TRUE, "NoSecret", "a public client has no client secret (it uses PKCE)"
            )
            result.fields[name] = {
                "clientId": name,
                "secretName": None,
                "secretRotatedAt": None,
                "nextSecretRotation": None,
            }
            continue
        _client_secret(stack_body, name, body, spec, observed, in_force, result)
    return result


def _client_secret(
    stack_body: dict[str, Any],
    name: str,
    body: dict[str, Any],
    spec: OIDCClientSpec,
    observed: OIDCObserved | None,
    in_force: Mapping[str, str],
    result: ClientSecrets,
) -> None:
    secret_name = spec.secret_name(name)
    status = body.get("status") or {}
    in_force_current = in_force.get(client_secret_key(name))
    in_force_previous = in_force.get(previous_secret_key(name))
    fields = {
        "clientId": name,
        "secretName": secret_name,
        "secretRotatedAt": status.get("secretRotatedAt"),
        "nextSecretRotation": status.get("nextSecretRotation"),
    }

    def keep_in_force(intent: ConditionIntent) -> None:
        if in_force_current is not None:
            result.credentials[client_secret_key(name)] = in_force_current
        if in_force_previous is not None:
            result.credentials[previous_secret_key(name)] = in_force_previous
        result.conditions[name] = intent
        result.fields[name] = fields

    if observed is None or not body["metadata"].get("uid"):
        keep_in_force(ConditionIntent("SecretReady", TRUE, "InForce", "the client secret in force stays"))
        return
    now = observed.now
    fresh = observed.fresh.get(name)
    grace = as_timedelta(spec.client_secret.grace_period)
    period = as_timedelta(spec.client_secret.rotation_period) if spec.client_secret.rotation_period else None
    requested = (body["metadata"].get("annotations") or {}).get(ROTATE_CLIENT_SECRET_ANNOTATION)
    asked = False
    stored = observed.stored.get(secret_name)
    previous: str | None
    if stored is None:
        # Made now, or put back with the secrets in force (a Secret deleted by hand).
        rotated_at = parse_time(status.get("secretRotatedAt")) or now
        if in_force_current is not None:
            current, previous, origin = in_force_current, in_force_previous, "restored"
        elif fresh is not None:
            current, previous, origin, rotated_at = fresh, None, "created", now
        else:
            keep_in_force(ConditionIntent("SecretReady", TRUE, "InForce", "the client secret in force stays"))
            return
        expires = rotated_at + grace
        handled = requested
    else:
        current = stored.data.get(CLIENT_SECRET_KEY, "")
        previous = stored.data.get(PREVIOUS_SECRET_KEY) or None
        handled = stored.annotations.get(ROTATION_HANDLED_ANNOTATION)
        asked = requested is not None and requested != handled
        if len(current) < MIN_SECRET_LENGTH and not (asked and fresh is not None):
            what = "is empty" if not current else f"is shorter than {MIN_SECRET_LENGTH} characters"
            message = (
                f"Secret {secret_name}: {CLIENT_SECRET_KEY} {what}; the client secret in force stays. Put back a "
                f"value of {MIN_SECRET_LENGTH} characters or more, or set the annotation "
                f"{ROTATE_CLIENT_SECRET_ANNOTATION} on the OIDCClient to a new value to make a new one"
            )
            keep_in_force(ConditionIntent("SecretReady", FALSE, "SecretInvalid", message))
            return
        if len(current) < MIN_SECRET_LENGTH:  # a rotation asked for replaces it; the one in force is kept
            current, previous = in_force_current or "", in_force_current
        rotated_at = (
            parse_time(stored.annotations.get(ROTATED_AT_ANNOTATION))
            or parse_time(status.get("secretRotatedAt"))
            or now
        )
        expires = parse_time(stored.annotations.get(PREVIOUS_EXPIRES_ANNOTATION)) or rotated_at + grace
        origin = stored.annotations.get(ORIGIN_ANNOTATION, "created")
        if in_force_current is not None and current != in_force_current and current != previous:
            origin = "edited"

    due = period is not None and now >= rotated_at + period
    if (due or asked) and fresh is not None:
        previous, current, rotated_at, expires, origin = (current or None), fresh, now, now + grace, "rotated"
    handled = requested if requested is not None else handled
    if previous is not None and (now >= expires or previous == current):
        previous = None

    credentials = {client_secret_key(name): current}
    data = {CLIENT_ID_KEY: name, CLIENT_SECRET_KEY: current}
    annotations = {ROTATED_AT_ANNOTATION: timestamp(rotated_at), ORIGIN_ANNOTATION: origin}
    if previous is not None:
        credentials[previous_secret_key(name)] = previous
        data[PREVIOUS_SECRET_KEY] = previous
        annotations[PREVIOUS_EXPIRES_ANNOTATION] = timestamp(expires)
    if handled is not None:
        annotations[ROTATION_HANDLED_ANNOTATION] = handled
    result.credentials.update(credentials)
    result.objects.append(client_secret_manifest(stack_body, body, secret_name, data, annotations))

    next_rotation = rotated_at + period if period is not None else None
    changes = [t for t in (next_rotation, expires if previous is not None else None) if t is not None]
    if changes:
        soonest = min(changes)
        result.next_change = soonest if result.next_change is None else min(result.next_change, soonest)
    fields["secretRotatedAt"] = timestamp(rotated_at)
    fields["nextSecretRotation"] = timestamp(next_rotation) if next_rotation is not None else None
    result.fields[name] = fields
    result.conditions[name] = _secret_ready(secret_name, origin, previous is not None, expires, next_rotation)


def _secret_ready(
    secret_name: str, origin: str, has_previous: bool, expires: datetime, next_rotation: datetime | None
) -> ConditionIntent:
    then = f"; next rotation at {timestamp(next_rotation)}" if next_rotation is not None else ""
    if has_previous:
        message = (
            f"a new client secret is in Secret {secret_name}; the previous one is accepted until "
            f"{timestamp(expires)}{then}"
        )
        return ConditionIntent("SecretReady", TRUE, "Rotated", message)
    if origin == "created":
        return ConditionIntent(
            "SecretReady", TRUE, "Created", f"the operator made the client secret in Secret {secret_name}{then}"
        )
    return ConditionIntent(
        "SecretReady", TRUE, "InForce", f"the client secret in Secret {secret_name} is in force{then}"
    )


def client_secret_manifest(
    stack_body: dict[str, Any],
    client_body: Mapping[str, Any],
    secret_name: str,
    data: Mapping[str, str],
    annotations: Mapping[str, str],
) -> dict[str, Any]:
    """The Secret of a confidential or machine client, owned by its OIDCClient."""
    client = client_body["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name,
            "namespace": stack_body["metadata"]["namespace"],
            "labels": manifests.labels(stack_body["metadata"]["name"], COMPONENT) | {CLIENT_LABEL: client},
            "annotations": dict(sorted(annotations.items())),
            "ownerReferences": [manifests.owner_reference(dict(client_body))],
        },
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(data.items())},
    }
