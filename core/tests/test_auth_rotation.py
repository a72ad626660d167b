"""Signing-key rotation over any sequence of operator runs that hypothesis chooses (on time,
late, or early; with algorithm changes and rotations by hand): a token can always be signed,
every key is published before it signs, and every token verifies until it expires."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import jwt
from hypothesis import given, settings
from hypothesis import strategies as st
from stackyard.auth.keys import Algorithm, KeySet, SigningKey, generate_key
from stackyard.auth.rotation import next_change, publish_ahead, retire_leeway, rotate

START = datetime(2026, 1, 1, tzinfo=UTC)
TICK = timedelta(milliseconds=1)


@dataclass
class Token:
    kid: str
    issued_at: datetime
    expires_at: datetime


@dataclass
class Cluster:
    """The operator's key set over time, with the keys it made and the tokens signed with them."""

    period: timedelta
    lifetime: timedelta
    keyset: KeySet = field(default_factory=KeySet)
    now: datetime = START
    published_at: dict[str, datetime] = field(default_factory=dict)
    tokens: list[Token] = field(default_factory=list)
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def run_operator(self, at: datetime, alg: Algorithm, rotate_now: bool = False) -> list[SigningKey]:
        made: list[SigningKey] = []

        def new_key(activates_at: datetime) -> SigningKey:
            key = SigningKey(f"k{next(self.counter)}", alg, "-", created_at=at, activates_at=activates_at)
            made.append(key)
            return key

        self.check_until(at)
        self.keyset = rotate(
            self.keyset,
            at,
            alg=alg,
            period=self.period,
            token_lifetime=self.lifetime,
            new_key=new_key,
            rotate_now=rotate_now,
        )
        for key in made:
            self.published_at[key.kid] = at
        self.check_at(at)
        return made

    def check_until(self, until: datetime) -> None:
        """Every moment where something can change between the last run and `until`."""
        moments = {k.activates_at for k in self.keyset.keys} | {k.retires_at for k in self.keyset.keys if k.retires_at}
        moments |= {t.expires_at for t in self.tokens}
        for moment in sorted(m for m in moments if self.now < m < until):
            self.check_at(moment - TICK)
            self.check_at(moment)
        self.check_at(until - TICK)

    def check_at(self, moment: datetime) -> None:
        if moment < self.now:
            return
        self.now = moment
        key = self.keyset.signing_key(moment)  # raises NoSigningKey: there must always be one
        self.tokens.append(Token(key.kid, moment, moment + self.lifetime))
        for token in self.tokens:
            if token.issued_at <= moment <= token.expires_at:
                assert self.keyset.verification_key(token.kid, moment) is not None, (
                    f"token of {token.kid} issued at {token.issued_at} refused at {moment}"
                )
        self.tokens = [t for t in self.tokens if t.expires_at >= moment]


seconds = st.integers(min_value=8, max_value=60 * 86400)


@st.composite
def timings(draw: st.DrawFn) -> tuple[timedelta, timedelta]:
    period = draw(seconds)
    lifetime = draw(st.integers(min_value=1, max_value=min(period - 1, 86400)))
    return timedelta(seconds=period), timedelta(seconds=lifetime)


run = st.tuples(
    st.one_of(st.none(), st.floats(min_value=0.001, max_value=3.0)),  # None: on time, else a share of the period
    st.floats(min_value=0.0, max_value=5.0),  # seconds the operator is late past its next change
    st.sampled_from(["EdDSA", "EdDSA", "EdDSA", "ES256", "RS256"]),
    st.booleans(),  # a rotation asked for by hand
)


@settings(max_examples=300, deadline=None)
@given(timings(), st.lists(run, min_size=1, max_size=40))
def test_tokens_can_always_be_signed_and_verify_until_they_expire(
    timing: tuple[timedelta, timedelta], runs: list[tuple[float | None, float, Algorithm, bool]]
) -> None:
    period, lifetime = timing
    cluster = Cluster(period, lifetime)
    cluster.run_operator(START, "EdDSA")
    for share, late, alg, by_hand in runs:
        due = next_change(cluster.keyset, cluster.now, period=period)
        if share is None and due is not None:
            at = max(due, cluster.now) + timedelta(seconds=late)
        else:
            at = cluster.now + period * (share or 1.0)
        cluster.run_operator(at, alg, rotate_now=by_hand)
    cluster.check_until(cluster.now + period * 3)


@settings(max_examples=300, deadline=None)
@given(timings(), st.lists(st.tuples(st.floats(min_value=0.001, max_value=3.0), st.booleans()), max_size=40))
def test_every_key_but_the_first_is_published_ahead_before_it_signs(
    timing: tuple[timedelta, timedelta], runs: list[tuple[float, bool]]
) -> None:
    period, lifetime = timing
    cluster = Cluster(period, lifetime)
    (first,) = cluster.run_operator(START, "EdDSA")
    assert first.activates_at == START
    at = START
    for share, switch in runs:
        at += period * share
        for key in cluster.run_operator(at, "RS256" if switch else "EdDSA"):
            assert key.activates_at - cluster.published_at[key.kid] >= publish_ahead(period)


@settings(max_examples=200, deadline=None)
@given(timings(), st.lists(st.floats(min_value=0.0, max_value=2.0), min_size=1, max_size=30))
def test_operator_on_time_replaces_the_key_every_period_and_drops_retired_keys(
    timing: tuple[timedelta, timedelta], delays: list[float]
) -> None:
    period, lifetime = timing
    cluster = Cluster(period, lifetime)
    cluster.run_operator(START, "EdDSA")
    for delay in delays:
        due = next_change(cluster.keyset, cluster.now, period=period)
        assert due is not None and due > cluster.now, "after a run, the next change is in the future"
        at = due + timedelta(seconds=delay)
        cluster.run_operator(at, "EdDSA")
        current = cluster.keyset.signing_key(at)
        assert at - current.activates_at <= period + timedelta(seconds=max(delays)), "the key outlived its period"
        assert all(k.retires_at is None or k.retires_at > at for k in cluster.keyset.keys), "a retired key stayed"
        assert len([k for k in cluster.keyset.keys if k.retires_at is None]) == 1, "only the newest never retires"


def test_empty_set_gets_one_key_that_signs_at_once() -> None:
    made = []
    keyset = rotate(
        KeySet(),
        START,
        alg="ES256",
        period=timedelta(hours=720),
        token_lifetime=timedelta(minutes=15),
        new_key=lambda at: made.append(at) or SigningKey("k0", "ES256", "-", START, at),
    )
    assert made == [START]
    assert keyset.signing_key(START).kid == "k0"
    assert next_change(KeySet(), START, period=timedelta(hours=1)) == START


def test_default_timeline_publishes_ten_minutes_ahead_and_retires_after_the_last_token() -> None:
    period, lifetime = timedelta(hours=720), timedelta(minutes=15)
    first = SigningKey("k0", "EdDSA", "-", START, START)
    keyset = KeySet((first,))
    due = next_change(keyset, START, period=period)
    assert due == START + period - timedelta(minutes=10)
    keyset = rotate(
        keyset,
        due,
        alg="EdDSA",
        period=period,
        token_lifetime=lifetime,
        new_key=lambda at: SigningKey("k1", "EdDSA", "-", due, at),
    )
    old, new = keyset.keys
    assert new.activates_at == START + period
    assert old.retires_at == START + period + lifetime + timedelta(seconds=60)
    assert keyset.signing_key(due).kid == "k0"
    assert [k.kid for k in keyset.keys if k.published(due)] == ["k0", "k1"], "both in the JWKS"
    assert next_change(keyset, due, period=period) == old.retires_at


def test_algorithm_change_makes_a_successor_at_once_and_drops_a_waiting_one_of_the_old_algorithm() -> None:
    period, lifetime = timedelta(hours=1), timedelta(minutes=5)
    waiting = SigningKey("k1", "EdDSA", "-", START, START + period)
    keyset = KeySet((SigningKey("k0", "EdDSA", "-", START, START - timedelta(minutes=55)), waiting))
    changed = rotate(
        keyset,
        START,
        alg="ES256",
        period=period,
        token_lifetime=lifetime,
        new_key=lambda at: SigningKey("k2", "ES256", "-", START, at),
    )
    assert [k.kid for k in changed.keys] == ["k0", "k2"]
    assert changed.keys[1].activates_at == START + timedelta(minutes=10)


def test_switch_from_eddsa_to_rs256_publishes_the_rsa_key_ahead_and_both_verify_through_the_overlap() -> None:
    """With real keys: the Stack's spec changes EdDSA to RS256. The RSA key is in the JWKS
    `publish_ahead` before it signs; the EdDSA key signs until then and is published until
    its last token expired; then only the RSA key is left."""
    period, lifetime = timedelta(hours=720), timedelta(minutes=15)
    ed = generate_key("EdDSA", START)
    switched = START + timedelta(days=3)
    keyset = rotate(
        KeySet((ed,)),
        switched,
        alg="RS256",
        period=period,
        token_lifetime=lifetime,
        new_key=lambda at: generate_key("RS256", switched, activates_at=at),
    )
    old, new = keyset.keys
    assert old.kid == ed.kid and (new.alg, new.activates_at) == ("RS256", switched + timedelta(minutes=10))
    assert [k["kty"] for k in keyset.jwks(switched)["keys"]] == ["RSA", "OKP"]
    before = keyset.signing_key(new.activates_at - TICK)
    after = keyset.signing_key(new.activates_at)
    assert (before.alg, after.alg) == ("EdDSA", "RS256")
    tokens = [jwt.encode({"sub": "u"}, k.private_key, algorithm=k.alg, headers={"kid": k.kid}) for k in (before, after)]
    last_ed_token_expires = new.activates_at + lifetime
    for token in tokens:
        kid = jwt.get_unverified_header(token)["kid"]
        key = keyset.verification_key(kid, last_ed_token_expires)
        assert key is not None and jwt.decode(token, key.public_key, algorithms=[key.alg])["sub"] == "u"
    assert old.retires_at == last_ed_token_expires + timedelta(seconds=60)
    # The operator's next run drops the EdDSA key once it retired; a rotation keeps RS256.
    later = rotate(
        keyset,
        old.retires_at,
        alg="RS256",
        period=period,
        token_lifetime=lifetime,
        new_key=lambda at: generate_key("RS256", old.retires_at, activates_at=at),
    )
    assert [k.kid for k in later.keys] == [new.kid]
    assert [k["alg"] for k in later.jwks(old.retires_at)["keys"]] == ["RS256"]


def test_short_periods_shorten_publish_ahead_and_leeway_to_a_quarter_of_the_period() -> None:
    assert publish_ahead(timedelta(seconds=8)) == retire_leeway(timedelta(seconds=8)) == timedelta(seconds=2)
    assert publish_ahead(timedelta(hours=1)) == timedelta(minutes=10)
    assert retire_leeway(timedelta(hours=1)) == timedelta(seconds=60)
