"""/v1/notify over HTTP against the real api, a real worker process, Redis, FerretDB and the
SMTP sink: a trigger answers 202 and its runs become visible with each step's outcome (the
in-app message and the email really sent); idempotent replays and conflicting bodies;
problems for an unknown workflow, an invalid body and a missing admin key; cancelling a run
waiting in a delay; filters and pages of the runs; preferences read and changed by the user
(their own only) and by the admin key, and respected by the next run."""

from __future__ import annotations

import time
from typing import Any

import httpx
from auth_http import bearer, problem, sign_up_and_log_in
from stackyard_harness.auth_stack import ADMIN_API_KEY, AuthStack

REDIS_DATABASE = 19
RUN_WORKER = True
AUTH_SETTINGS = {"requireEmailVerification": False}
ADMIN = {"Authorization": f"Bearer {ADMIN_API_KEY}"}
FINISHED = {"completed", "failed", "cancelled", "digested", "throttled"}

HELLO_TEMPLATE = {
    "subject": "Your report {{ report }}, {{ name }}",
    "text": "Your report {{ report }} is ready.",
    "variables": {"name": {}, "report": {}},
}
WORKFLOWS: dict[str, dict[str, Any]] = {
    "report-ready": {
        "description": "A report finished.",
        "steps": [
            {
                "name": "in-app",
                "inApp": {"title": "Report {{ data.report }} is ready", "actionUrl": "https://app.acme.dev/r"},
            },
            {
                "name": "mail",
                "email": {
                    "template": "hello",
                    "variables": {"name": "{{ recipient.name or 'there' }}", "report": "{{ data.report }}"},
                },
            },
        ],
    },
    "later": {
        "key": "reminder.later",
        "steps": [
            {"name": "wait", "delay": {"duration": "1h"}},
            {"name": "in-app", "inApp": {"title": "Reminder"}},
        ],
    },
}


def configure(auth: AuthStack) -> None:
    auth.configure(AUTH_SETTINGS, email_templates={"hello": HELLO_TEMPLATE}, notification_workflows=WORKFLOWS)


def user(http: httpx.Client, email: str) -> tuple[str, dict[str, str]]:
    """A new user: their id and the headers of their access token."""
    headers = bearer(sign_up_and_log_in(http, email))
    me = http.get("/v1/auth/me", headers=headers)
    assert me.status_code == 200, me.text
    return me.json()["id"], headers


def trigger(http: httpx.Client, body: dict[str, Any], **headers: str) -> httpx.Response:
    return http.post("/v1/notify", json=body, headers=ADMIN | headers)


def runs_of(http: httpx.Client, trigger_id: str, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The runs of a trigger once there are `count` and every one has finished."""
    deadline = time.monotonic() + timeout
    while True:
        answer = http.get("/v1/notify/runs", params={"trigger": trigger_id}, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        if len(items) == count and all(r["status"] in FINISHED for r in items):
            return items
        assert time.monotonic() < deadline, f"the runs of {trigger_id} did not finish: {items}"
        time.sleep(0.1)


def run_reaching(http: httpx.Client, run_id: str, status: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = http.get(f"/v1/notify/runs/{run_id}", headers=ADMIN)
        assert answer.status_code == 200, answer.text
        run: dict[str, Any] = answer.json()
        if run["status"] == status:
            return run
        assert time.monotonic() < deadline, f"run {run_id} is {run['status']}, not {status}: {run}"
        time.sleep(0.1)


def test_a_trigger_runs_every_step_and_each_run_shows_the_outcomes(auth: AuthStack, http: httpx.Client):
    configure(auth)
    ana, _ = user(http, "ana@example.com")
    inline = {"id": "ext-7", "email": "bo@example.com", "name": "Bo"}
    answer = trigger(http, {"workflow": "report-ready", "recipients": [ana, inline], "data": {"report": "Q3"}})
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert accepted["id"].startswith("ntr_") and accepted["status"] == "accepted"
    assert (accepted["workflow"], accepted["recipients"]) == ("report-ready", 2)
    assert "Idempotent-Replayed" not in answer.headers

    runs = runs_of(http, accepted["id"], 2)
    assert {r["recipient"] for r in runs} == {ana, "ext-7"}
    for run in runs:
        assert run["id"].startswith("nrun_") and run["triggerId"] == accepted["id"], run
        assert run["status"] == "completed" and run["workflow"] == "report-ready", run
        assert [(s["name"], s["kind"], s["status"]) for s in run["steps"]] == [
            ("in-app", "in_app", "done"),
            ("mail", "email", "done"),
        ], run
        assert all(s["startedAt"] and s["finishedAt"] for s in run["steps"]), run
        assert run["steps"][0]["detail"].get("messageId"), run
        assert run["steps"][1]["detail"].get("emailId"), run
        one = http.get(f"/v1/notify/runs/{run['id']}", headers=ADMIN)
        assert one.status_code == 200 and one.json() == run

    mail = auth.mail_to("bo@example.com", "Your report Q3, Bo")
    assert "Your report Q3 is ready." in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert auth.mail_to("ana@example.com", "Your report Q3")


def test_an_idempotency_key_replays_the_first_trigger_and_another_body_conflicts(auth: AuthStack, http: httpx.Client):
    configure(auth)
    body = {"workflow": "report-ready", "recipients": [{"id": "ext-1", "email": "cy@example.com"}], "data": {}}
    first = trigger(http, body | {"data": {"report": "A"}}, **{"Idempotency-Key": "report-A"})
    assert first.status_code == 202, first.text
    again = trigger(http, body | {"data": {"report": "A"}}, **{"Idempotency-Key": "report-A"})
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()
    in_body = trigger(http, body | {"data": {"report": "A"}, "idempotencyKey": "report-A"})
    assert in_body.status_code == 200 and in_body.json()["id"] == first.json()["id"]

    other = trigger(http, body | {"data": {"report": "B"}}, **{"Idempotency-Key": "report-A"})
    problem(other, 409, "conflict")
    both = trigger(http, body | {"idempotencyKey": "one"}, **{"Idempotency-Key": "two"})
    problem(both, 422, "unprocessable")

    runs_of(http, first.json()["id"], 1)
    listed = http.get("/v1/notify/runs", params={"workflow": "report-ready"}, headers=ADMIN).json()["items"]
    assert [r["triggerId"] for r in listed] == [first.json()["id"]], "a replay started a run"
    auth.mail_to("cy@example.com", "Your report A")
    assert len(auth.mails_to("cy@example.com")) == 1


def test_an_unknown_workflow_is_a_404_problem(auth: AuthStack, http: httpx.Client):
    configure(auth)
    answer = trigger(http, {"workflow": "no-such-thing", "recipients": ["u1"]})
    body = problem(answer, 404, "workflow-not-found")
    assert "no-such-thing" in body["detail"]
    assert http.get("/v1/notify/runs/nrun_00000000000000000000000000", headers=ADMIN).status_code == 404


def test_an_invalid_trigger_is_a_422_problem(auth: AuthStack, http: httpx.Client):
    configure(auth)
    for body in (
        {"workflow": "report-ready", "recipients": []},
        {"workflow": "report-ready"},
        {"recipients": ["u1"]},
        {"workflow": "report-ready", "recipients": ["u1"], "data": "not an object"},
        {"workflow": "report-ready", "recipients": [{"email": "no-id@example.com"}]},
    ):
        answer = trigger(http, body)
        details = problem(answer, 422, "validation")
        assert details["errors"], details
    bad_status = http.get("/v1/notify/runs", params={"status": "sleeping"}, headers=ADMIN)
    problem(bad_status, 422, "validation")


def test_triggers_and_runs_need_the_admin_key(auth: AuthStack, http: httpx.Client):
    configure(auth)
    _, ana = user(http, "ana@example.com")
    body = {"workflow": "report-ready", "recipients": ["u1"]}
    for headers in ({}, ana, {"Authorization": "Bearer not-the-key"}):
        assert http.post("/v1/notify", json=body, headers=headers).status_code == 401
        assert http.get("/v1/notify/runs", headers=headers).status_code == 401
        assert http.get("/v1/notify/runs/nrun_x", headers=headers).status_code == 401
        assert http.post("/v1/notify/runs/nrun_x/cancel", headers=headers).status_code == 401
    problem(http.post("/v1/notify", json=body, headers=ana), 401, "admin-key")


def test_a_run_waiting_in_a_delay_can_be_cancelled(auth: AuthStack, http: httpx.Client):
    configure(auth)
    answer = trigger(http, {"workflow": "reminder.later", "recipients": [{"id": "ext-9"}]})
    assert answer.status_code == 202, answer.text
    deadline = time.monotonic() + 20
    while not (found := http.get("/v1/notify/runs", params={"trigger": answer.json()["id"]}, headers=ADMIN).json())[
        "items"
    ]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    run_id = found["items"][0]["id"]
    waiting = run_reaching(http, run_id, "waiting")
    assert [s["status"] for s in waiting["steps"]][:1] == ["waiting"], waiting

    cancelled = http.post(f"/v1/notify/runs/{run_id}/cancel", headers=ADMIN)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["finishedAt"]
    assert http.get(f"/v1/notify/runs/{run_id}", headers=ADMIN).json()["status"] == "cancelled"
    assert all(s["status"] != "done" for s in cancelled.json()["steps"]), cancelled.json()
    problem(http.post("/v1/notify/runs/nrun_00000000000000000000000000/cancel", headers=ADMIN), 404, "run-not-found")


def test_runs_are_filtered_and_paged_newest_first(auth: AuthStack, http: httpx.Client):
    configure(auth)
    ids = []
    for n in range(3):
        recipients = [{"id": f"ext-{n}", "email": f"r{n}@example.com"}]
        answer = trigger(http, {"workflow": "report-ready", "recipients": recipients, "data": {"report": str(n)}})
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["id"])
        runs_of(http, ids[-1], 1)
    first = http.get("/v1/notify/runs", params={"limit": 2}, headers=ADMIN).json()
    assert [r["triggerId"] for r in first["items"]] == ids[::-1][:2] and first["nextCursor"]
    rest = http.get("/v1/notify/runs", params={"limit": 2, "cursor": first["nextCursor"]}, headers=ADMIN).json()
    assert [r["triggerId"] for r in rest["items"]] == ids[:1] and rest["nextCursor"] is None

    of_one = http.get("/v1/notify/runs", params={"recipient": "ext-1"}, headers=ADMIN).json()["items"]
    assert [r["triggerId"] for r in of_one] == [ids[1]]
    completed = http.get("/v1/notify/runs", params={"status": ["completed", "failed"]}, headers=ADMIN).json()
    assert len(completed["items"]) == 3
    assert http.get("/v1/notify/runs", params={"status": "waiting"}, headers=ADMIN).json()["items"] == []
    assert http.get("/v1/notify/runs", params={"workflow": "reminder.later"}, headers=ADMIN).json()["items"] == []


def test_preferences_round_trip_for_the_user_and_the_admin_key(auth: AuthStack, http: httpx.Client):
    configure(auth)
    ana_id, ana = user(http, "ana@example.com")
    empty = http.get("/v1/notify/preferences", headers=ana)
    assert empty.status_code == 200, empty.text
    assert empty.json()["workflows"] == {} and empty.json()["categories"] == {}

    changed = http.put("/v1/notify/preferences", json={"channels": {"email": False}}, headers=ana)
    assert changed.status_code == 200, changed.text
    assert changed.json()["channels"]["email"] is False
    by_admin = http.get(f"/v1/notify/users/{ana_id}/preferences", headers=ADMIN)
    assert by_admin.status_code == 200 and by_admin.json() == changed.json()

    merged = http.put(
        f"/v1/notify/users/{ana_id}/preferences",
        json={"workflows": {"report-ready": {"channels": {"inApp": False}}}},
        headers=ADMIN,
    )
    assert merged.status_code == 200, merged.text
    mine = http.get("/v1/notify/preferences", headers=ana).json()
    assert mine == merged.json()
    assert mine["channels"]["email"] is False and mine["workflows"]["report-ready"]["channels"]["inApp"] is False

    refused = http.put("/v1/notify/preferences", json={"channels": {"fax": True}}, headers=ana)
    problem(refused, 422, "validation")


def test_a_user_token_reads_and_changes_only_its_own_preferences(auth: AuthStack, http: httpx.Client):
    configure(auth)
    ana_id, _ = user(http, "ana@example.com")
    _, bob = user(http, "bob@example.com")
    http.put(f"/v1/notify/users/{ana_id}/preferences", json={"channels": {"push": False}}, headers=ADMIN)
    problem(http.get(f"/v1/notify/users/{ana_id}/preferences", headers=bob), 401, "admin-key")
    problem(
        http.put(f"/v1/notify/users/{ana_id}/preferences", json={"channels": {"push": True}}, headers=bob),
        401,
        "admin-key",
    )
    assert http.get("/v1/notify/preferences", headers=bob).json()["channels"].get("push") is None
    assert http.get(f"/v1/notify/users/{ana_id}/preferences", headers=ADMIN).json()["channels"]["push"] is False
    assert http.get("/v1/notify/preferences").status_code == 401
    assert http.get("/v1/notify/preferences", headers=ADMIN).status_code == 401  # the admin key is no user


def test_an_opt_out_skips_that_channel_of_the_next_run(auth: AuthStack, http: httpx.Client):
    configure(auth)
    ana_id, ana = user(http, "ana@example.com")
    assert http.put("/v1/notify/preferences", json={"channels": {"email": False}}, headers=ana).status_code == 200
    answer = trigger(http, {"workflow": "report-ready", "recipients": [ana_id], "data": {"report": "Q4"}})
    assert answer.status_code == 202, answer.text
    (run,) = runs_of(http, answer.json()["id"], 1)
    assert [(s["name"], s["status"]) for s in run["steps"]] == [("in-app", "done"), ("mail", "skipped")], run
    assert run["steps"][1]["reason"], run
    assert [m for m in auth.mails_to("ana@example.com") if "Your report" in str(m["Subject"])] == []


def test_the_openapi_document_describes_the_notify_routes(running: AuthStack):
    paths = running.app.openapi()["paths"]
    post = paths["/v1/notify"]["post"]
    assert {"200", "202", "401", "404", "409", "422"} <= set(post["responses"])
    assert post["responses"]["404"]["content"]["application/problem+json"]
    assert "idempotency-key" in {p["name"].lower() for p in post["parameters"]}
    for path, methods in {
        "/v1/notify/runs": {"get"},
        "/v1/notify/runs/{run_id}": {"get"},
        "/v1/notify/runs/{run_id}/cancel": {"post"},
        "/v1/notify/preferences": {"get", "put"},
        "/v1/notify/users/{userId}/preferences": {"get", "put"},
    }.items():
        assert methods <= set(paths[path]), path
