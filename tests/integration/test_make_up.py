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
    finally:
        stack.stop()
