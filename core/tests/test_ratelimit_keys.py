"""Who a request is counted as: client IP behind trusted proxies, principal, API key,
header, global (pure)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from stackyard.ratelimit import Policy
from stackyard.ratelimit.keys import (
    RequestFacts,
    client_ip,
    encode_key,
    forwarded_for,
    headers_from_asgi,
    parse_networks,
    request_key,
)
from stackyard.resources.ratelimit import RateLimitPolicySpec

TRUSTED = parse_networks(("10.0.0.0/8", "2001:db8:ffff::/48"))


def keyed(type_: str, header: str | None = None) -> Policy:
    key = {"type": type_} | ({"header": header} if header else {})
    spec = RateLimitPolicySpec.model_validate({"stackRef": {"name": "d"}, "limit": 1, "window": "1s", "key": key})
    return Policy.from_spec("p", spec)


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        ("203.0.113.9", {}, "203.0.113.9"),
        # An untrusted peer's headers are ignored: anyone can write them.
        ("203.0.113.9", {"x-forwarded-for": "1.2.3.4"}, "203.0.113.9"),
        ("10.1.1.1", {"x-forwarded-for": "1.2.3.4"}, "1.2.3.4"),
        # Walked from the right past trusted hops; what the client wrote on the left is not believed.
        ("10.1.1.1", {"x-forwarded-for": "6.6.6.6, 1.2.3.4, 10.2.2.2"}, "1.2.3.4"),
        ("10.1.1.1", {"x-forwarded-for": "10.9.9.9, 10.2.2.2"}, "10.9.9.9"),
        ("10.1.1.1", {}, "10.1.1.1"),
        ("10.1.1.1", {"x-forwarded-for": "1.2.3.4:5678"}, "1.2.3.4"),
        ("10.1.1.1", {"x-forwarded-for": "[2001:db8::7]:443"}, "2001:db8::7"),
        ("10.1.1.1", {"x-forwarded-for": "2001:DB8:0::7"}, "2001:db8::7"),
        ("10.1.1.1", {"x-forwarded-for": "unknown"}, "unknown"),
        # Forwarded wins over X-Forwarded-For when both are there.
        (
            "10.1.1.1",
            {"forwarded": 'for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711"', "x-forwarded-for": "9.9.9.9"},
            "2001:db8:cafe::17",
        ),
        ("2001:db8:ffff::1", {"forwarded": "for=192.0.2.43, for=10.0.0.3"}, "192.0.2.43"),
        (None, {}, None),
    ],
)
def test_client_ip(peer, headers, expected):
    assert client_ip(peer, headers, TRUSTED) == expected


def test_forwarded_for_nodes():
    header = 'for=192.0.2.43, for="[2001:db8:cafe::17]:4711";by=203.0.113.43, proto=https;For=_hidden'
    assert forwarded_for(header) == ["192.0.2.43", '"[2001:db8:cafe::17]:4711"', "_hidden"]


def test_keys_of_each_type():
    facts = RequestFacts(
        "GET",
        "h",
        "/",
        "203.0.113.9",
        {"x-api-key": "sk_live_secret", "x-tenant": "acme"},
        SimpleNamespace(subject="user-42"),
    )
    assert request_key(keyed("ip"), facts) == "203.0.113.9"
    assert request_key(keyed("user"), facts) == "user-42"
    assert request_key(keyed("global"), facts) == "global"
    assert request_key(keyed("header", "X-Tenant"), facts) == "acme"
    api_key = request_key(keyed("apiKey"), facts)
    assert api_key is not None and api_key.startswith("~") and "secret" not in api_key
    with_id = RequestFacts("GET", "h", "/", principal={"subject": "u", "api_key_id": "key_123"})
    assert request_key(keyed("apiKey"), with_id) == "key_123"


def test_a_request_without_the_key_is_not_counted_by_that_policy():
    anonymous = RequestFacts("GET", "h", "/", None, {})
    for policy in (keyed("user"), keyed("apiKey"), keyed("header", "X-Tenant"), keyed("ip")):
        assert request_key(policy, anonymous) is None
    assert request_key(keyed("global"), anonymous) == "global"


def test_encoded_keys_never_carry_braces_or_long_values():
    assert encode_key("user-42@example.com") == "user-42@example.com"
    for odd in ("{tag}", "a b", "x" * 200, "ü"):
        encoded = encode_key(odd)
        assert encoded.startswith("~") and len(encoded) == 33 and "{" not in encoded
    assert encode_key("{a}") != encode_key("{b}")


def test_asgi_headers_are_lower_cased_and_repeats_joined():
    raw = [(b"X-Forwarded-For", b"1.1.1.1"), (b"x-forwarded-for", b"2.2.2.2"), (b"Host", b"api")]
    assert headers_from_asgi(raw) == {"x-forwarded-for": "1.1.1.1, 2.2.2.2", "host": "api"}
