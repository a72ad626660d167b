"""The admin API and the audit log through HTTP against the real api app, real Redis and
FerretDB: the admin key, search and pagination, disabling, deleting with all personal data
(checked in MongoDB and Redis), and the security events every flow leaves behind.
No worker runs: these flows send no email that a test reads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from auth_http import PASSWORD, bearer, check_operations, login, route_labels
from stackyard_harness.auth_stack import ADMIN_API_KEY, AuthStack

NEW_PASSWORD = "another calm and slow stream"
AGENT = "admin-tests/2.0"
ADMIN = {"Authorization": f"Bearer {ADMIN_API_KEY}"}
SCHEMA_EXAMPLES = 15
REDIS_DATABASE = 12
AUTH_SETTINGS = {"requireEmailVerification": False}
USER_AGENT = AGENT


@pytest.fixture
def rdb(auth: AuthStack) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(auth.redis_url, decode_responses=True) as client:
        yield client


def create_user(http: httpx.Client, email: str, **extra: Any) -> dict[str, Any]:
    body = {"email": email, "password": PASSWORD, "emailVerified": True} | extra
    answer = http.post("/v1/auth/admin/users", json=body, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    return answer.json()


def events(http: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    answer = http.get("/v1/auth/admin/events", params={"limit": 200} | params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def test_the_admin_api_refuses_a_missing_or_wrong_key(http: httpx.Client):
    for headers in ({}, {"Authorization": "Bearer not-the-key"}, {"Authorization": f"Basic {ADMIN_API_KEY}"}):
        answer = http.get("/v1/auth/admin/users", headers=headers)
        assert answer.status_code == 401 and answer.json()["type"].endswith("/admin-key"), answer.text
    user = create_user(http, "ana@example.com")
    session = login(http, "ana@example.com")
    as_user = http.get(f"/v1/auth/admin/users/{user['id']}", headers=bearer(session))
    assert as_user.status_code == 401, "a user's access token is not the admin key"
    assert http.get("/v1/auth/admin/users", headers=ADMIN).status_code == 200


def test_the_admin_api_is_off_without_a_key(running: AuthStack, http: httpx.Client):
    running.configure({"requireEmailVerification": False}, extra_credentials={"stack.auth.adminApiKey": ""})
    try:
        answer = http.get("/v1/auth/admin/users", headers=ADMIN)
        assert answer.status_code == 503 and answer.json()["type"].endswith("/auth-not-configured")
        assert "adminApiKeySecretRef" in answer.json()["detail"]
    finally:
        running.configure(
            {"requireEmailVerification": False}, extra_credentials={"stack.auth.adminApiKey": ADMIN_API_KEY}
        )
    assert http.get("/v1/auth/admin/users", headers=ADMIN).status_code == 200


def test_search_by_email_prefix_or_substring_newest_first_in_pages(http: httpx.Client):
    made = [create_user(http, f"user{n}@{'acme.dev' if n % 2 else 'example.com'}")["id"] for n in range(7)]
    create_user(http, "Zed.Acme@Other.org")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"q": "ACME", "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = http.get("/v1/auth/admin/users", params=params, headers=ADMIN).json()
        assert len(page["items"]) <= 2
        seen += [u["email"] for u in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == ["Zed.Acme@Other.org", "user5@acme.dev", "user3@acme.dev", "user1@acme.dev"]
    prefix = http.get("/v1/auth/admin/users", params={"q": "user", "match": "prefix"}, headers=ADMIN).json()
    assert [u["id"] for u in prefix["items"]] == list(reversed(made)) and prefix["nextCursor"] is None
    not_prefix = http.get("/v1/auth/admin/users", params={"q": "acme", "match": "prefix"}, headers=ADMIN).json()
    assert not_prefix["items"] == []
    regex = http.get("/v1/auth/admin/users", params={"q": "user.@"}, headers=ADMIN).json()
    assert regex["items"] == [], "the query is text, not a regular expression"
    bad = http.get("/v1/auth/admin/users", params={"cursor": "nonsense"}, headers=ADMIN)
    assert bad.status_code == 422
    listed = http.get("/v1/auth/admin/users", headers=ADMIN).json()["items"]
    assert "passwordHash" not in listed[0] and listed[0]["hasPassword"] is True and listed[0]["disabled"] is False


def test_a_user_in_detail_with_sessions_mfa_and_organisations(http: httpx.Client):
    user = create_user(http, "ana@example.com", profile={"name": "Ana"}, appMetadata={"plan": "pro"})
    session = login(http, "ana@example.com")
    org = http.post("/v1/auth/orgs", json={"name": "Acme"}, headers=bearer(session)).json()
    detail = http.get(f"/v1/auth/admin/users/{user['id']}", headers=ADMIN)
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert body["email"] == "ana@example.com" and body["appMetadata"] == {"plan": "pro"}
    assert [s["id"] for s in body["sessions"]] == [session["sessionId"]]
    assert body["sessions"][0]["userAgent"] == AGENT and body["sessions"][0]["ip"] == "127.0.0.1"
    assert body["mfa"] == {"totp": False, "recoveryCodesLeft": 0, "passkeys": []}
    assert [(o["orgId"], o["role"]) for o in body["organizations"]] == [(org["id"], "owner")]
    assert http.get("/v1/auth/admin/users/usr_nobody", headers=ADMIN).status_code == 404


def test_create_refuses_a_weak_password_and_a_taken_address(http: httpx.Client):
    create_user(http, "ana@example.com")
    taken = http.post("/v1/auth/admin/users", json={"email": "ANA@example.com"}, headers=ADMIN)
    assert taken.status_code == 409 and taken.json()["type"].endswith("/email-taken")
    weak = http.post("/v1/auth/admin/users", json={"email": "ben@example.com", "password": "password"}, headers=ADMIN)
    assert weak.status_code == 422 and weak.json()["type"].endswith("/weak-password")
    no_password = create_user(http, "cat@example.com", password=None)
    assert no_password["hasPassword"] is False
    refused = http.post("/v1/auth/login", json={"email": "cat@example.com", "password": PASSWORD})
    assert refused.status_code == 401


def test_admins_change_app_metadata_which_users_cannot(http: httpx.Client):
    user = create_user(http, "ana@example.com", profile={"name": "Ana", "locale": "en"})
    changed = http.patch(
        f"/v1/auth/admin/users/{user['id']}",
        json={"appMetadata": {"plan": "team", "seats": 5}, "profile": {"name": "Ana B."}},
        headers=ADMIN,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["appMetadata"] == {"plan": "team", "seats": 5}
    assert changed.json()["profile"] == {"name": "Ana B.", "locale": "en"}
    session = login(http, "ana@example.com")
    own = http.patch("/v1/auth/user", json={"appMetadata": {"plan": "free"}}, headers=bearer(session))
    assert own.status_code == 422
    assert http.get(f"/v1/auth/admin/users/{user['id']}", headers=ADMIN).json()["appMetadata"]["plan"] == "team"
    updated = events(http, userId=user["id"], type="user.updated")
    assert updated[0]["data"] == {"fields": ["appMetadata", "profile.name"], "by": "admin"}


def test_a_disabled_user_loses_every_session_and_cannot_log_in(http: httpx.Client, rdb: redis.Redis):
    user = create_user(http, "ana@example.com")
    first, second = login(http, "ana@example.com"), login(http, "ana@example.com")
    disabled = http.post(f"/v1/auth/admin/users/{user['id']}/disable", headers=ADMIN)
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    assert http.get("/v1/auth/me", headers=bearer(first)).status_code == 401
    refresh = http.post("/v1/auth/token/refresh", json={"refreshToken": second["refreshToken"]})
    assert refresh.status_code == 401
    refused = http.post("/v1/auth/login", json={"email": "ana@example.com", "password": PASSWORD})
    assert refused.status_code == 403 and refused.json()["type"].endswith("/account-disabled")
    assert http.get(f"/v1/auth/admin/users/{user['id']}", headers=ADMIN).json()["sessions"] == []
    assert not [k for k in rdb.scan_iter("sy:auth:*:sess:*")]
    assert events(http, userId=user["id"], type="user.disabled")[0]["data"]["sessionsRevoked"] == 2
    assert http.post(f"/v1/auth/admin/users/{user['id']}/enable", headers=ADMIN).json()["disabled"] is False
    assert http.get("/v1/auth/me", headers=bearer(login(http, "ana@example.com"))).status_code == 200


def test_an_admin_ends_every_session_of_a_user(http: httpx.Client):
    user = create_user(http, "ana@example.com")
    sessions = [login(http, "ana@example.com") for _ in range(3)]
    answer = http.delete(f"/v1/auth/admin/users/{user['id']}/sessions", headers=ADMIN)
    assert answer.status_code == 200 and answer.json() == {"sessionsRevoked": 3}
    assert all(http.get("/v1/auth/me", headers=bearer(s)).status_code == 401 for s in sessions)
    revoked = events(http, userId=user["id"], type="session.revoked")
    assert len(revoked) == 3 and {e["data"]["reason"] for e in revoked} == {"revoked by an admin"}


def test_delete_erases_the_user_sessions_memberships_and_events(
    http: httpx.Client, db: Any, rdb: redis.Redis, auth: AuthStack
):
    ana, ben = create_user(http, "ana@example.com"), create_user(http, "ben@example.com")
    ben_session = login(http, "ben@example.com")
    ana_session = login(http, "ana@example.com")
    http.post("/v1/auth/login", json={"email": "ben@example.com", "password": "wrong one"})
    shared = http.post("/v1/auth/orgs", json={"name": "Shared"}, headers=bearer(ana_session)).json()["id"]
    http.post(f"/v1/auth/orgs/{shared}/members", json={"userId": ben["id"]}, headers=bearer(ana_session))
    solo = http.post("/v1/auth/orgs", json={"name": "Ben alone"}, headers=bearer(ben_session)).json()["id"]
    assert db["auth_events"].count_documents({"userId": ben["id"]}) >= 4
    assert rdb.exists("sy:auth:{ns/demo}:fail:ben@example.com")

    deleted = http.delete(f"/v1/auth/admin/users/{ben['id']}", headers=ADMIN)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["sessionsRevoked"] == 1 and deleted.json()["organizationsDeleted"] == [solo]

    assert db["users"].count_documents({"_id": ben["id"]}) == 0
    assert db["memberships"].count_documents({"userId": ben["id"]}) == 0
    assert db["organizations"].count_documents({"_id": solo}) == 0
    assert db["memberships"].count_documents({"orgId": shared}) == 1, "ana's membership stays"
    left = list(db["auth_events"].find({"userId": ben["id"]}))
    assert [e["type"] for e in left] == ["user.deleted"]
    assert left[0]["ip"] is None and left[0]["userAgent"] is None and "ben@" not in json.dumps(left[0], default=str)
    assert not rdb.exists("sy:auth:{ns/demo}:fail:ben@example.com")
    assert not [k for k in rdb.scan_iter(f"sy:auth:*:user-sess:{ben['id']}")]
    about_ben = [
        json.loads(fields["event"])["type"]
        for _, fields in rdb.xrange("sy:events:{ns/demo}")
        if json.loads(fields["event"])["userId"] == ben["id"]
    ]
    assert about_ben == ["user.deleted"]
    assert db["auth_events"].count_documents({"userId": ana["id"]}) > 0, "other users' events stay"

    assert http.get("/v1/auth/me", headers=bearer(ben_session)).status_code == 401
    assert http.post("/v1/auth/token/refresh", json={"refreshToken": ben_session["refreshToken"]}).status_code == 401
    assert http.post("/v1/auth/login", json={"email": "ben@example.com", "password": PASSWORD}).status_code == 401
    assert http.get(f"/v1/auth/admin/users/{ben['id']}", headers=ADMIN).status_code == 404
    assert http.delete(f"/v1/auth/admin/users/{ben['id']}", headers=ADMIN).status_code == 404


def test_delete_refuses_the_last_owner_of_a_shared_organisation_unless_told_to_transfer(http: httpx.Client, db: Any):
    ana, ben, cat = (create_user(http, f"{n}@example.com") for n in ("ana", "ben", "cat"))
    session = login(http, "ana@example.com")
    org = http.post("/v1/auth/orgs", json={"name": "Acme"}, headers=bearer(session)).json()["id"]
    for who, role in ((ben, "member"), (cat, "admin")):
        added = http.post(
            f"/v1/auth/orgs/{org}/members", json={"userId": who["id"], "role": role}, headers=bearer(session)
        )
        assert added.status_code == 201
    refused = http.delete(f"/v1/auth/admin/users/{ana['id']}", headers=ADMIN)
    assert refused.status_code == 409 and refused.json()["organizations"] == [org]
    assert db["users"].count_documents({"_id": ana["id"]}) == 1, "nothing is deleted"
    assert http.get("/v1/auth/me", headers=bearer(session)).status_code == 200
    done = http.delete(f"/v1/auth/admin/users/{ana['id']}?soleOwnedOrganizations=transfer", headers=ADMIN)
    assert done.status_code == 200, done.text
    assert done.json()["organizationsTransferred"] == {org: cat["id"]}, "the admin inherits, not the older member"
    roles = {m["userId"]: m["role"] for m in db["memberships"].find({"orgId": org})}
    assert roles == {ben["id"]: "member", cat["id"]: "owner"}


def test_every_security_event_is_audited_with_the_client(http: httpx.Client):
    user = create_user(http, "ana@example.com")
    failed = http.post("/v1/auth/login", json={"email": "ana@example.com", "password": "not my password"})
    assert failed.status_code == 401
    session = login(http, "ana@example.com")
    changed = http.post(
        "/v1/auth/password/change",
        json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
        headers=bearer(session),
    )
    assert changed.status_code == 204, changed.text
    other = login(http, "ana@example.com", NEW_PASSWORD)
    assert http.delete(f"/v1/auth/sessions/{other['sessionId']}", headers=bearer(session)).status_code == 204
    assert http.post("/v1/auth/logout", headers=bearer(session)).status_code == 204

    got = events(http, userId=user["id"])
    # Events of one request can share a millisecond, and ids order by millisecond only.
    assert sorted(e["type"] for e in got) == sorted(
        [
            "user.created",
            "login.failed",
            "login.succeeded",
            "session.created",
            "password.changed",
            "login.succeeded",
            "session.created",
            "session.revoked",
            "session.revoked",
        ]
    )
    assert all(e["ip"] == "127.0.0.1" and e["userAgent"] == AGENT for e in got)
    assert [e["data"]["reason"] for e in got if e["type"] == "session.revoked"] == ["logout", "revoked by the user"]
    only_failed = events(http, type="login.failed")
    assert [e["userId"] for e in only_failed] == [user["id"]]
    first = http.get("/v1/auth/admin/events", params={"userId": user["id"], "limit": 4}, headers=ADMIN).json()
    second = http.get(
        "/v1/auth/admin/events",
        params={"userId": user["id"], "limit": 10, "cursor": first["nextCursor"]},
        headers=ADMIN,
    ).json()
    assert [e["id"] for e in first["items"] + second["items"]] == [e["id"] for e in got]
    assert second["nextCursor"] is None


def test_the_org_and_admin_routes_answer_what_their_openapi_says(auth: AuthStack, http: httpx.Client):
    """schemathesis over routers/auth_orgs.py and routers/auth_admin.py (valid and invalid
    requests, a few per operation): never a server error, always a declared answer. The
    organisation routes are called as a signed-in user who owns one organisation (so some
    generated ids hit), the admin routes with the admin key."""
    from stackyard_api.routers import auth_admin, auth_orgs

    auth.configure({"requireEmailVerification": False, "lockout": {"ipMaxAttempts": 100000}})
    create_user(http, "ana@example.com")
    session = login(http, "ana@example.com")
    assert http.post("/v1/auth/orgs", json={"name": "Acme"}, headers=bearer(session)).status_code == 201

    def user_headers() -> dict[str, str]:
        nonlocal session
        if http.get("/v1/auth/me", headers=bearer(session)).status_code != 200:
            session = login(http, "ana@example.com")
        return bearer(session)

    def headers_for(case: Any) -> dict[str, str]:
        return ADMIN if case.operation.path.startswith("/v1/auth/admin") else user_headers()

    labels = route_labels(auth_orgs.router, auth_admin.router)
    check_operations(auth.url, r"^/v1/auth/(orgs|admin)", labels, headers_for, SCHEMA_EXAMPLES)
