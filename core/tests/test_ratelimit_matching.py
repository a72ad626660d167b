"""Which requests a policy applies to: path patterns, methods and hosts (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from stackyard.ratelimit import Policy, PolicySet
from stackyard.ratelimit.policy import host_regex, path_regex
from stackyard.resources.ratelimit import RateLimitPolicySpec
from stackyard.resources.stack import StackSpec


def spec(**fields):
    return RateLimitPolicySpec.model_validate({"stackRef": {"name": "demo"}, "limit": 5, "window": "1m"} | fields)


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/v1/auth/**", "/v1/auth", True),
        ("/v1/auth/**", "/v1/auth/login", True),
        ("/v1/auth/**", "/v1/auth/a/b/c", True),
        ("/v1/auth/**", "/v1/authx", False),
        ("/v1/auth/*", "/v1/auth/login", True),
        ("/v1/auth/*", "/v1/auth", False),
        ("/v1/auth/*", "/v1/auth/a/b", False),
        ("/v1/*/check", "/v1/ratelimit/check", True),
        ("/v1/*/check", "/v1/ratelimit/other", False),
        ("/v1/**/download", "/v1/files/a/b/download", True),
        ("/v1/files/*.png", "/v1/files/cat.png", True),
        ("/v1/files/*.png", "/v1/files/cat.jpg", False),
        ("/v1/files/*.png", "/v1/files/a/cat.png", False),
        ("/v1/a.b", "/v1/aXb", False),
        ("/", "/", True),
        ("/", "/v1", False),
        ("/**", "/", True),
        ("/**", "/anything/at/all", True),
        ("/v1/config", "/v1/config/", True),
    ],
)
def test_path_patterns(pattern, path, matches):
    assert bool(Policy.from_spec("p", spec(match={"paths": [pattern]})).matches("GET", "h", path.rstrip("/"))) is (
        matches
    )


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("api.example.com", "api.example.com", True),
        ("api.example.com", "api.example.com:8443", True),
        ("api.example.com", "x.api.example.com", False),
        ("*.example.com", "api.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "evil-example.com", False),
        ("example.com:8443", "example.com:8443", True),
        ("example.com:8443", "example.com", False),
    ],
)
def test_host_patterns(pattern, host, matches):
    regex = host_regex([pattern])
    assert regex is not None and bool(regex.match(host)) is matches


def test_empty_match_is_every_request_and_methods_filter():
    every = Policy.from_spec("every", spec())
    assert every.paths is None and every.hosts is None and every.methods is None
    assert every.matches("DELETE", "any", "/x/y")
    posts = Policy.from_spec("posts", spec(match={"methods": ["POST"], "hosts": ["api.example.com"]}))
    assert posts.matches("POST", "api.example.com", "/x")
    assert not posts.matches("GET", "api.example.com", "/x")
    assert not posts.matches("POST", "other.example.com", "/x")


def test_policy_set_orders_by_name_and_keeps_api_policies_for_the_api():
    policies = PolicySet.from_specs(
        {"b": spec(), "a": spec(match={"paths": ["/v1/**"]}), "external": spec(enforceInApi=False)}
    )
    assert [p.name for p in policies.matching("GET", "Host", "/v1/x")] == ["a", "b", "external"]
    assert [p.name for p in policies.matching("GET", "Host", "/v1/x", api=True)] == ["a", "b"]
    assert [p.name for p in policies.matching("GET", "Host", "/other")] == ["b", "external"]


def test_policy_numbers_in_script_units():
    gcra = Policy.from_spec("g", spec(algorithm="gcra", limit=10, window="1.5s", burst=4, timeout="25ms"))
    assert (gcra.window_us, gcra.capacity, gcra.timeout, gcra.window) == (1_500_000, 4, 0.025, 1.5)
    assert Policy.from_spec("t", spec(algorithm="tokenBucket", limit=10)).capacity == 10
    assert Policy.from_spec("f", spec(algorithm="fixedWindow", limit=10)).capacity == 10
    assert spec().timeout == "10ms" and spec().enforce_in_api is True


@given(st.lists(st.sampled_from(["a", "b", "*", "**", "x.y"]), min_size=1, max_size=5))
def test_a_pattern_matches_the_path_it_spells(segments):
    pattern = "/" + "/".join(segments)
    path = "/" + "/".join("seg" if s in ("*", "**") else s for s in segments)
    regex = path_regex([pattern])
    assert regex is not None and regex.match(path)


def test_trusted_proxies_must_be_cidrs():
    base = {
        "redis": {"urlSecretRef": {"name": "b", "key": "r"}},
        "mongodb": {"uriSecretRef": {"name": "b", "key": "m"}},
    }
    ok = StackSpec.model_validate(base | {"api": {"trustedProxies": ["10.0.0.0/8", "2001:db8::/32"]}})
    assert ok.api.trusted_proxies == ["10.0.0.0/8", "2001:db8::/32"]
    assert StackSpec.model_validate(base).api.trusted_proxies == []
    for bad in (["10.0.0.1"], ["300.0.0.0/8"], ["10.0.0.0/33"]):
        with pytest.raises(ValidationError):
            StackSpec.model_validate(base | {"api": {"trustedProxies": bad}})
