"""`make up` as a newcomer runs it: the whole stack from examples/ comes up on its own
servers, and the example job runs on its worker."""

from __future__ import annotations

import httpx
from stackyard_harness.harness import Harness
from stackyard_harness.local_stack import NAMESPACE, LocalStack

from .conftest import wait_for


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
        for kind in ("schedule", "jobqueue", "ratelimitpolicy", "emailtemplate"):
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
    finally:
        stack.stop()
