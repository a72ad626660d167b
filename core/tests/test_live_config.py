"""The live config swaps whole configs, keeps the last good one, and waits for the
credentials that go with a config."""

from __future__ import annotations

from stackyard.config import LiveConfig, RuntimeConfig
from stackyard.resources.ratelimit import RateLimitPolicySpec
from stackyard.resources.stack import StackSpec

SPEC = StackSpec.model_validate(
    {
        "redis": {"urlSecretRef": {"name": "b", "key": "redis"}},
        "mongodb": {"uriSecretRef": {"name": "b", "key": "mongodb"}},
    }
)


def config(generation: int = 1, revision: int = 1) -> RuntimeConfig:
    return RuntimeConfig(stack="demo", namespace="ns", generation=generation, credentials_revision=revision, spec=SPEC)


def test_a_valid_config_is_applied_and_its_hash_reported():
    live = LiveConfig()
    cfg = config()
    assert live.offer(cfg.canonical_json(), {"stack.redis.url": "redis://x"}, 1)
    assert live.hash == cfg.hash
    assert live.require().config.generation == 1


def test_an_invalid_config_keeps_the_last_good_one_and_says_why():
    live = LiveConfig()
    good = config()
    live.offer(good.canonical_json(), {}, 1)
    assert not live.offer('{"stack": "demo", "generation": "not a number"}', {}, 1)
    assert live.hash == good.hash
    assert live.last_error and good.hash in live.last_error


def test_a_config_waits_for_its_credentials_revision():
    live = LiveConfig()
    cfg = config(revision=2)
    assert not live.offer(cfg.canonical_json(), {"k": "old"}, 1)
    assert live.current is None
    assert live.offer(cfg.canonical_json(), {"k": "new"}, 2)
    assert live.require().credentials["k"] == "new"


def test_listeners_see_every_new_config_once():
    live = LiveConfig()
    seen: list[str] = []
    live.subscribe(lambda applied: seen.append(applied.hash))
    first, second = config(1), config(2)
    live.offer(first.canonical_json(), {}, 1)
    live.offer(first.canonical_json(), {}, 1)  # the same again: no news
    live.offer(second.canonical_json(), {}, 1)
    assert seen == [first.hash, second.hash]


def test_hash_is_deterministic_and_independent_of_member_order():
    def policy(limit: int) -> RateLimitPolicySpec:
        return RateLimitPolicySpec.model_validate({"stackRef": {"name": "demo"}, "limit": limit, "window": "1m"})

    a = config().model_copy(update={"rate_limit_policies": {"a": policy(1), "b": policy(2)}})
    b = config().model_copy(update={"rate_limit_policies": {"b": policy(2), "a": policy(1)}})
    assert a.hash == b.hash == RuntimeConfig.model_validate_json(a.canonical_json()).hash
    assert a.hash != config().hash
