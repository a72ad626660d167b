"""The Stack's auth keys: what render decides about the signing key set and the encryption key.

They live in the Secret `<stack>-auth-keys`, owned by the Stack (the source of truth, read on
every reconcile), and are copied into the credentials Secret, through which the api and the
worker get them live. So deleting the credentials Secret loses nothing; deleting the auth-keys
Secret makes a new signing key set at once (every access token is refused then; clients
refresh) but keeps the encryption key from the credentials Secret, since TOTP secrets are
encrypted with it. See docs/auth-keys.md.

Randomness stays outside render: every observation carries its own fresh material
(`AuthKeysObserved.fresh`): an encryption key, and a signing key of each algorithm made the
first time render asks for it and then kept (`FreshKeys`). Render asks for at most one, of
the Stack's algorithm, only when the rotation makes a key; so a reconcile with nothing due
makes no key (an RS256 key takes tens of milliseconds), and rendering one observation twice
gives the same result.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, get_args

from stackyard.auth.keys import Algorithm, KeySet, SigningKey, generate_key
from stackyard.auth.rotation import next_change, rotate
from stackyard.config import AUTH_ENCRYPTION_KEY, AUTH_SIGNING_KEYS
from stackyard.resources.base import as_timedelta
from stackyard.resources.stack import StackSpec

from .conditions import FALSE, TRUE, ConditionIntent

SIGNING_KEYS = "signingKeys"
ENCRYPTION_KEY = "encryptionKey"
ROTATE_ANNOTATION = "stackyard.dev/rotate-signing-key"
"""On the Stack: a new value asks for a rotation now (a successor, published ahead as usual)."""
ROTATION_HANDLED_ANNOTATION = "stackyard.dev/rotation-handled"
"""On the auth-keys Secret: the value of the last rotation request the operator carried out."""


def auth_keys_secret_name(stack: str) -> str:
    return f"{stack}-auth-keys"


class FreshKeys(Mapping[str, SigningKey]):
    """One new signing key per algorithm, created at the observation's time, made on the first
    lookup of its algorithm and the same on every later one (so render stays a function of
    its observation). `made` lists the algorithms looked up so far."""

    def __init__(self, now: datetime) -> None:
        self._now = now
        self._keys: dict[str, SigningKey] = {}

    def __getitem__(self, alg: str) -> SigningKey:
        if alg not in get_args(Algorithm):
            raise KeyError(alg)
        if alg not in self._keys:
            self._keys[alg] = generate_key(alg, self._now)
        return self._keys[alg]

    def __iter__(self) -> Iterator[str]:
        return iter(get_args(Algorithm))

    def __len__(self) -> int:
        return len(get_args(Algorithm))

    @property
    def made(self) -> tuple[str, ...]:
        return tuple(self._keys)


@dataclass(frozen=True)
class Fresh:
    """Key material for this observation, in case render needs it (it mostly does not)."""

    keys: Mapping[str, SigningKey]
    """A new key per algorithm, created at the observation's time (`FreshKeys`: made when looked up)."""
    encryption_key: str

    @classmethod
    def make(cls, now: datetime) -> Fresh:
        return cls(FreshKeys(now), base64.b64encode(secrets.token_bytes(32)).decode())


@dataclass(frozen=True)
class AuthKeysObserved:
    now: datetime
    stored: Mapping[str, str] | None
    """Data of the Secret <stack>-auth-keys; None when it does not exist."""
    rotation_handled: str | None
    fresh: Fresh

    @classmethod
    def observe(cls, now: datetime, secret: tuple[Mapping[str, str], Mapping[str, str]] | None) -> AuthKeysObserved:
        """From the Secret as read (data, annotations), with fresh material made at `now`."""
        data, annotations = secret if secret is not None else (None, {})
        return cls(now, data, annotations.get(ROTATION_HANDLED_ANNOTATION), Fresh.make(now))


@dataclass(frozen=True)
class AuthKeys:
    credentials: dict[str, str]
    """AUTH_SIGNING_KEYS and AUTH_ENCRYPTION_KEY for the credentials Secret."""
    secret_data: dict[str, str] | None
    """Data of the auth-keys Secret to apply; None: leave it as it is."""
    rotation_handled: str | None
    next_change: datetime | None
    """When the key set next needs the operator; None when it was not rotated."""
    key_count: int = 0
    problem: ConditionIntent | None = None


class InvalidStoredKeys(ValueError):
    """The auth-keys Secret holds something that is not a key set or key (a hand edit)."""


def _stored_keyset(text: str | None) -> KeySet:
    try:
        keyset = KeySet.from_json(text)
        for key in keyset.keys:
            if key.alg not in get_args(Algorithm) or key.activates_at.tzinfo is None:
                raise ValueError
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidStoredKeys(f"{SIGNING_KEYS} is not a signing key set") from exc
    return keyset


def _valid_encryption_key(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        if len(base64.b64decode(text, validate=True)) == 32:
            return text
    except (binascii.Error, ValueError):
        pass
    raise InvalidStoredKeys(f"{ENCRYPTION_KEY} is not 32 bytes in base64")


def render_auth_keys(
    stack_body: dict[str, Any],
    spec: StackSpec,
    observed: AuthKeysObserved,
    previous_credentials: Mapping[str, str],
) -> AuthKeys:
    """The key set rotated to `observed.now`, the encryption key made once, and when the
    operator must look again. A stored value that does not parse is left alone (with the
    copies in force) and reported; nothing is overwritten that a person may want back."""
    stack = stack_body["metadata"]["name"]
    stored = observed.stored
    try:
        keyset = _stored_keyset(stored.get(SIGNING_KEYS)) if stored is not None else KeySet()
        encryption_key = _valid_encryption_key(stored.get(ENCRYPTION_KEY) if stored is not None else None)
    except InvalidStoredKeys as exc:
        kept = {k: v for k, v in previous_credentials.items() if k in (AUTH_SIGNING_KEYS, AUTH_ENCRYPTION_KEY)}
        message = (
            f"Secret {auth_keys_secret_name(stack)}: {exc}; the keys in force stay and are not rotated. "
            "Fix it, or delete the Secret to make a new key set (every access token is refused then)"
        )
        problem = ConditionIntent("AuthReady", FALSE, "InvalidKeys", message)
        return AuthKeys(kept, None, observed.rotation_handled, None, problem=problem)
    if encryption_key is None:
        # Made once; a lost auth-keys Secret keeps it from the credentials Secret.
        encryption_key = previous_credentials.get(AUTH_ENCRYPTION_KEY) or observed.fresh.encryption_key

    requested = stack_body["metadata"].get("annotations", {}).get(ROTATE_ANNOTATION)
    handled = observed.rotation_handled if stored is not None else requested
    settings = spec.auth
    period = as_timedelta(settings.signing_key_rotation)
    fresh = observed.fresh.keys
    alg = settings.signing_algorithm
    keyset = rotate(
        keyset,
        observed.now,
        alg=alg,
        period=period,
        token_lifetime=as_timedelta(settings.access_token_lifetime),
        # Looked up only when a key is made: an RS256 key is made only then.
        new_key=lambda activates_at: replace(fresh[alg], activates_at=activates_at),
        rotate_now=requested is not None and requested != handled,
    )
    keys_json = keyset.to_json()
    return AuthKeys(
        credentials={AUTH_SIGNING_KEYS: keys_json, AUTH_ENCRYPTION_KEY: encryption_key},
        secret_data={SIGNING_KEYS: keys_json, ENCRYPTION_KEY: encryption_key},
        rotation_handled=requested,
        next_change=next_change(keyset, observed.now, period=period),
        key_count=len(keyset.keys),
    )


def auth_condition(keys: AuthKeys | None, admin_problem: ConditionIntent | None, stack: str) -> ConditionIntent:
    """AuthReady: the keys and the admin API key. No key material, only times and counts."""
    if keys is not None and keys.problem is not None:
        return keys.problem
    if admin_problem is not None:
        return admin_problem
    if keys is None or keys.next_change is None:
        return ConditionIntent("AuthReady", TRUE, "KeysInForce", "the signing keys in force stay")
    count = keys.key_count
    when = keys.next_change.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return ConditionIntent(
        "AuthReady",
        TRUE,
        "KeysReady",
        f"{count} signing key{'s' if count != 1 else ''} published from Secret {auth_keys_secret_name(stack)}; "
        f"next rotation step at {when}",
    )
