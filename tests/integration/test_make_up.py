"""`make up` as a newcomer runs it: the whole stack from examples/ comes up on its own
servers, the example job runs on its worker, and the example articles are searchable."""

from __future__ import annotations

import base64
import email
import email.policy
import re
from email.message import EmailMessage

import httpx
import jwt
from stackyard_harness.harness import Harness
from stackyard_harness.local_stack import ARTICLES, NAMESPACE, SEARCH_KEYS, LocalStack
from stackyard_harness.otel import OtelCollector

from .conftest import wait_for

TOKEN = re.compile(r"token=([A-Za-z0-9_\-]+)")


def sign_up_and_log_in(api: httpx.Client, stack: LocalStack) -> None:
    """A newcomer's first account: the verification mail goes out through the example
    EmailProviders, and the tokens are signed with the key the operator made for the Stack."""
    password = "a long and quiet river"
    answer = api.post("/v1/auth/signup", json={"email": "newcomer@example.com", "password": password})
    assert answer.status_code == 202, answer.text

    def verification_link() -> str | None:
        for path in stack.maildir.glob("*.eml"):
            mail = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            body = mail.get_body(("plain",)) if isinstance(mail, EmailMessage) else None
            if "newcomer@example.com" in str(mail["To"]) and body and (found := TOKEN.search(body.get_content())):
                return found.group(1)
        return None

    token = wait_for(verification_link, timeout=60, what="the verification mail in the maildir")
    assert api.post("/v1/auth/verify-email", json={"token": token}).status_code == 200
    session = api.post("/v1/auth/login", json={"email": "newcomer@example.com", "password": password}).json()
    me = api.get("/v1/auth/me", headers={"Authorization": f"Bearer {session['accessToken']}"})
    assert me.status_code == 200 and me.json()["email"] == "newcomer@example.com", me.text
    kid = jwt.get_unverified_header(session["accessToken"])["kid"]
    assert kid in [key["kid"] for key in api.get("/.well-known/jwks.json").json()["keys"]]


def assert_telemetry_reaches_the_collector(stack: LocalStack, job_id: str) -> None:
    """The api, worker and operator export to the local collector: the example job's
    'process' span in the worker and the api's request spans, each under its service name."""
    collector = stack.harness.started["otel"]
    assert isinstance(collector, OtelCollector)

    def services_with_spans() -> set[str] | None:
        seen = set()
        for record in collector.records():
            for resource_spans in record.get("resourceSpans", []):
                attributes = {a["key"]: a["value"].get("stringValue") for a in resource_spans["resource"]["attributes"]}
                spans = [s for scope in resource_spans["scopeSpans"] for s in scope["spans"]]
                if attributes["service.name"] == "stackyard-worker" and not any(
                    a["key"] == "messaging.message.id" and a["value"].get("stringValue") == job_id
                    for s in spans
                    for a in s.get("attributes", [])
                ):
                    continue
                seen.add(attributes["service.name"])
        wanted = {"stackyard-api", "stackyard-worker", "stackyard-operator"}
        return seen if seen >= wanted else None

    wait_for(services_with_spans, timeout=30, what="spans of the api, the worker (the example job) and the operator")


def search_the_example_articles(api: httpx.Client, stack: LocalStack) -> None:
    """The articles make up put in MongoDB are loaded by the search component (the index's
    status says how many) and found through the api with a typo, with the admin API key."""

    def documents() -> int | None:
        index = stack.kube.kubectl_json("get", "searchindex", "articles", "-n", NAMESPACE)
        return index.get("status", {}).get("documents") or None

    assert wait_for(documents, timeout=60, what="the example articles indexed") == len(ARTICLES)
    secret = stack.kube.kubectl_json("get", "secret", SEARCH_KEYS, "-n", NAMESPACE)
    key = base64.b64decode(secret["data"]["admin"]).decode()
    answer = api.get(
        "/v1/indexes/articles/search",
        params={"q": "serch", "facets": "tags"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["hits"][0]["title"] == "Search that forgives typos"
    assert answer.json()["facetDistribution"]["tags"]["search"] == 2


def test_make_up_serves_the_examples_and_runs_the_example_job():
    stack = LocalStack(Harness()).start()
    try:
        api = httpx.Client(base_url=stack.services["api"].url, timeout=5)
        answer = api.post("/v1/jobs", json={"function": "reports.send", "payload": {"userId": "u_42"}})
        assert answer.status_code == 201, answer.text

        def completed():
            job = api.get(f"/v1/jobs/{answer.json()['id']}").json()
            return job if job["state"] == "completed" else None

        job = wait_for(completed, timeout=20, what="the example job to complete")
        assert job["result"] == {"sentTo": "u_42", "report": "report-for-u_42.pdf"}
        assert set(job["steps"]) == {"build", "deliver"}
        for kind in ("schedule", "jobqueue", "ratelimitpolicy", "emailtemplate", "bucket", "searchindex"):
            for item in stack.kube.kubectl_json("get", kind, "-n", NAMESPACE)["items"]:
                ready = {c["type"]: c["status"] for c in item["status"]["conditions"]}["Ready"]
                assert ready == "True", f"{kind} {item['metadata']['name']} is not Ready"
        assert "nightly-report" in api.get("/v1/config").json()["schedules"]

        template = {"name": "welcome", "variables": {"name": "Ana"}}
        email = {"from": "hello@acme.dev", "to": ["ana@example.com"], "template": template}
        accepted = api.post("/v1/emails", json=email)
        assert accepted.status_code == 202, accepted.text

        def sent():
            record = api.get(f"/v1/emails/{accepted.json()['id']}").json()
            return record if record["status"] == "sent" else None

        record = wait_for(sent, timeout=60, what="the example email sent through the fallback")
        assert record["provider"] == "smtp-fallback" and record["subject"] == "Welcome to stackyard, Ana"
        (mail,) = stack.maildir.glob("*.eml")
        assert b"Welcome, Ana!" in mail.read_bytes()
        sign_up_and_log_in(api, stack)
        search_the_example_articles(api, stack)
        assert_telemetry_reaches_the_collector(stack, job["id"])
    finally:
        stack.stop()
