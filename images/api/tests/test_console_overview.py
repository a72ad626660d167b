"""The console's Overview through HTTP against the real api (AuthStack): the config in force,
the rate-limit denials per policy, the email providers with their counts and breakers, and
no secret in the page; and the queue throughput's arithmetic. Redis database 32."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pymongo
import pytest
import redis
from console_http import console_login
from kubernetes_asyncio.client.exceptions import ApiException
from stackyard_api.console.pages.overview import Throughput
from stackyard_harness.auth_stack import AuthStack

REDIS_DATABASE = 32


@pytest.fixture
def console(http: httpx.Client) -> httpx.Client:
    console_login(http)
    return http


def row(html: str, name: str) -> list[str]:
    """The cells of the table row headed `name` (tags stripped)."""
    match = re.search(rf'<th scope="row">\s*{re.escape(name)}\b.*?</tr>', html, re.S)
    assert match, f"no row {name!r}"
    cells = re.findall(r"<td[^>]*>(.*?)</td>", match.group(0), re.S)
    return [re.sub(r"<[^>]+>", "", c).strip() for c in cells]


def test_the_overview_shows_the_config_in_force(console: httpx.Client):
    applied = console.get("/v1/config").json()
    page = console.get("/console")
    assert page.status_code == 200
    assert applied["hash"] in page.text
    assert f"<dt>Generation</dt><dd>{applied['generation']}</dd>" in page.text
    assert "ns/demo" in page.text


def test_without_a_cluster_the_stack_conditions_say_so(console: httpx.Client):
    page = console.get("/console")
    assert "not available: no cluster access" in page.text


def test_the_overview_counts_denials_per_policy(auth: AuthStack, console: httpx.Client):
    name = f"config-{uuid.uuid4().hex[:6]}"
    policy = {
        "match": {"paths": ["/v1/config"], "methods": ["GET"]},
        "key": {"type": "global"},
        "algorithm": "fixedWindow",
        "limit": 2,
        "window": "1m",
    }
    auth.configure({"requireEmailVerification": False}, rate_limit_policies={name: policy}, fresh_database=False)
    answers = [console.get("/v1/config").status_code for _ in range(5)]
    assert answers.count(429) >= 3, answers
    cells = row(console.get("/console").text, name)
    limit, mode, allowed, denied = cells[0], cells[1], int(cells[2]), int(cells[3])
    assert "2 per 1m" in limit and mode == "enforce"
    assert denied == answers.count(429) and allowed >= 2


def test_the_overview_shows_each_providers_sends_failures_and_breaker(
    auth: AuthStack, console: httpx.Client, db: pymongo.database.Database
):
    now = datetime.now(UTC)
    docs = [("sent", "relay"), ("delivered", "relay"), ("bounced", "relay"), ("failed", "relay"), ("dead", None)]
    db["emails"].insert_many(
        {"_id": f"em_test{i}", "status": s, "provider": p, "createdAt": now, "expiresAt": now + timedelta(days=1)}
        for i, (s, p) in enumerate(docs)
    )
    db["emails"].insert_one(  # older than the window: not counted
        {
            "_id": "em_old",
            "status": "sent",
            "provider": "relay",
            "createdAt": now - timedelta(days=2),
            "expiresAt": now + timedelta(days=1),
        }
    )
    with redis.Redis.from_url(auth.redis_url) as client:
        client.hset("sy:email:breaker:relay", mapping={"state": "open", "failures": 5, "opened": 1, "opens": 2})
    html = console.get("/console").text
    kind, priority, sent, delivered, bounced, failed, breaker, _reachable = row(html, "relay")
    assert (kind, priority) == ("smtp", "10")
    assert (sent, delivered, bounced, failed) == ("3", "1", "1", "1")
    assert breaker.startswith("open") and "5 failures in a row" in breaker and "opened 2 times" in breaker
    assert "1 failed before any provider took them" in html


def test_live_regions_have_ids_and_refresh_without_touching_the_rest(console: httpx.Client):
    html = console.get("/console", headers={"X-Console-Live": "1"}).text
    regions = re.findall(r'<div id="([a-z-]+)" data-live="5">', html)
    assert set(regions) == {"config-facts", "stack-status", "queues", "email-providers", "rate-limits"}


def test_no_secret_is_rendered_on_the_overview(auth: AuthStack, console: httpx.Client):
    html = console.get("/console").text + console.get("/console", headers={"X-Console-Live": "1"}).text
    for name, value in auth.credentials.items():
        if len(value) >= 8:
            assert value not in html, f"the credential {name} is on the page"
    for fragment in ("redis://", "mongodb://", "PRIVATE KEY", '"kty"'):
        assert fragment not in html


def test_throughput_is_the_rate_of_the_counters_over_the_samples_kept():
    rates = Throughput(span=300)
    assert rates.observe("q", 0.0, 100, 4) == (None, None), "one sample says nothing"
    assert rates.observe("q", 30.0, 130, 4) == (60.0, 0.0)
    assert rates.observe("q", 60.0, 140, 7) == (40.0, 3.0)
    assert rates.observe("q", 350.0, 169, 7) == (pytest.approx(6.0), 0.0), "samples older than 5 minutes go"
    assert rates.observe("q", 360.0, 5, 0) == (None, None), "counters reset: measured afresh"


def test_a_section_whose_source_does_not_answer_says_so(monkeypatch: pytest.MonkeyPatch):
    from stackyard_api.console.pages import overview

    async def stuck() -> dict:
        await asyncio.sleep(5)
        return {"error": None}

    monkeypatch.setattr(overview, "SECTION_BUDGET", 0.05)
    section = asyncio.run(overview.within_budget(stuck(), items=[]))
    assert section == {"error": "not available: no answer within 0 s", "items": []}


class RefusingCluster:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def api(self):
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "said"),
    [
        (ApiException(status=403, reason="Forbidden"), "may not read Stack demo (its Role needs get on it)"),
        (ApiException(status=404, reason="Not Found"), "Stack demo was not found"),
        (ConnectionRefusedError(), "cannot reach the Kubernetes API"),
    ],
)
def test_the_stack_section_says_why_the_cluster_did_not_answer(exc: Exception, said: str):
    from types import SimpleNamespace

    from stackyard_api.console.pages.overview import stack_section

    config = SimpleNamespace(namespace="ns", stack="demo")
    section = asyncio.run(stack_section(RefusingCluster(exc), config))  # type: ignore[arg-type]
    assert said in section["error"] and section["error"].startswith("not available")
