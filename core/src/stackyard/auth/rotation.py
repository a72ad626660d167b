"""When the signing keys of access tokens change: the operator's rotation, as pure functions.

The timeline of one rotation (P the rotation period, A the publish-ahead time, L the access
token lifetime):

    old key signs ───────────────────────────┐ retires at T + L + leeway (60 s), then dropped
                                  successor   │
                     published at T - A ──────┴─ signs from T = old.activates_at + P

- A successor is made A = min(10 minutes, P / 4) before it signs, so that verifiers, whose
  JWKS caches hold the api's answer for up to 5 minutes, have it before its first token.
- The key it replaces keeps being published until the last token it signed has expired
  (L after it stopped signing, plus a leeway for clocks and the config's travel to pods).
- A change of algorithm, or a rotation asked for by hand, makes a successor at once; it
  still waits A before it signs.

Randomness stays with the caller: `new_key(activates_at)` makes the key. These functions
only decide when, so they can be tested over any sequence of times (see the property tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from .keys import Algorithm, KeySet, SigningKey

MAX_PUBLISH_AHEAD = timedelta(minutes=10)
RETIRE_LEEWAY = timedelta(seconds=60)
"""Kept past the last token's expiry: clock skew, and the seconds a new key set takes to reach
every pod. Periods under 4 minutes (development, tests) shorten it to a quarter of the period."""


def publish_ahead(period: timedelta) -> timedelta:
    """How long a successor is published before it signs."""
    return min(MAX_PUBLISH_AHEAD, period / 4)


def retire_leeway(period: timedelta) -> timedelta:
    """How long a replaced key stays published after its last token expired."""
    return min(RETIRE_LEEWAY, period / 4)


def _order(key: SigningKey) -> tuple[datetime, datetime]:
    # The order in which keys take over signing, as KeySet.signing_key picks the newest.
    return key.activates_at, key.created_at


def rotate(
    keyset: KeySet,
    now: datetime,
    *,
    alg: Algorithm,
    period: timedelta,
    token_lifetime: timedelta,
    new_key: Callable[[datetime], SigningKey],
    rotate_now: bool = False,
) -> KeySet:
    """The key set as it should be at `now`. Calls `new_key` at most once.

    `rotate_now` asks for a successor at once (a rotation by hand); it is ignored while a
    successor is already waiting to sign."""
    ahead = publish_ahead(period)
    # Retired keys are no longer published (no token they signed is valid): forget them.
    # A waiting successor of another algorithm never signed anything: drop it too.
    keys = [k for k in keyset.keys if k.published(now) and (k.activates_at <= now or k.alg == alg)]
    active = [k for k in keys if k.activates_at <= now]
    if not active:
        # The first key (or a set that lost its signing key): it signs at once.
        keys.append(new_key(now))
    else:
        current = max(active, key=_order)
        waiting = [k for k in keys if _order(k) > _order(current)]
        if not waiting:
            if current.alg != alg or rotate_now:
                keys.append(new_key(now + ahead))
            elif now >= current.activates_at + period - ahead:
                # Late (the operator was down): still published `ahead` before it signs.
                keys.append(new_key(max(current.activates_at + period, now + ahead)))
    return KeySet(_with_retirements(sorted(keys, key=_order), now, token_lifetime + retire_leeway(period)))


def _with_retirements(keys: list[SigningKey], now: datetime, kept_for: timedelta) -> tuple[SigningKey, ...]:
    """Each key that has a successor retires `kept_for` (the token lifetime and the leeway)
    after the successor takes over, when the last token it signed has expired; the newest key
    never retires. While a key still signs, a longer token lifetime moves its retirement on
    (never back: tokens already issued keep their expiry)."""
    result = []
    for key, successor in zip(keys, [*keys[1:], None], strict=True):
        if successor is None:
            result.append(replace(key, retires_at=None) if key.retires_at is not None else key)
            continue
        retires_at = successor.activates_at + kept_for
        still_signs = now < successor.activates_at
        if key.retires_at is None or (still_signs and retires_at > key.retires_at):
            key = key.retire(retires_at)
        result.append(key)
    return tuple(result)


def next_change(keyset: KeySet, now: datetime, *, period: timedelta) -> datetime:
    """When the key set next needs the operator: a successor due, or a retired key to drop
    (`now` for a set without a signing key). It may be past: the operator is late."""
    if not keyset.keys:
        return now
    moments = [k.retires_at for k in keyset.keys if k.retires_at is not None]
    # The newest key's successor is due `publish_ahead` before its period ends (if the
    # newest does not sign yet, that is after it takes over).
    newest = max(keyset.keys, key=_order)
    moments.append(newest.activates_at + period - publish_ahead(period))
    if not any(k.activates_at <= now and k.published(now) for k in keyset.keys):
        moments.append(now)
    return min(moments)
