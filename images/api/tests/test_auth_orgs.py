"""Organisations, members and roles through HTTP against the real api app, real Redis and
FerretDB: who may do what, the last owner, the token's `orgs` claim, and the audit events.
No worker runs: sign-up logs in at once (email verification off)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from auth_http import PASSWORD, bearer, sign_up_and_log_in
from stackyard_harness.auth_stack import ADMIN_API_KEY, AuthStack

AGENT = "orgs-tests/1.0"
REDIS_DATABASE = 11
AUTH_SETTINGS = {"requireEmailVerification": False}
USER_AGENT = AGENT


@dataclass
class Person:
    id: str
    email: str
    session: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.session)


def person(http: httpx.Client, name: str) -> Person:
    email = f"{name}@example.com"
    session = sign_up_and_log_in(http, email, profile={"name": name})
    me = http.get("/v1/auth/me", headers=bearer(session))
    return Person(me.json()["id"], email, session)


def create_org(http: httpx.Client, owner: Person, name: str = "Acme Corp", **extra: Any) -> dict[str, Any]:
    answer = http.post("/v1/auth/orgs", json={"name": name, **extra}, headers=owner.headers)
    assert answer.status_code == 201, answer.text
    return answer.json()


def add(http: httpx.Client, by: Person, org: str, who: Person, role: str = "member", by_email: bool = False):
    body = {"email": who.email} if by_email else {"userId": who.id}
    return http.post(f"/v1/auth/orgs/{org}/members", json=body | {"role": role}, headers=by.headers)


def role_of(http: httpx.Client, org: str, member: Person, viewer: Person) -> str | None:
    answer = http.get(f"/v1/auth/orgs/{org}/members", headers=viewer.headers)
    assert answer.status_code == 200, answer.text
    return next((m["role"] for m in answer.json()["items"] if m["userId"] == member.id), None)


def test_the_creator_owns_the_organisation_and_slugs_are_unique(http: httpx.Client):
    ana = person(http, "ana")
    org = create_org(http, ana, "Acme Corp.")
    assert org["role"] == "owner" and org["slug"] == "acme-corp" and org["id"].startswith("org_")
    assert http.get(f"/v1/auth/orgs/{org['id']}", headers=ana.headers).json()["name"] == "Acme Corp."
    assert [o["id"] for o in http.get("/v1/auth/orgs", headers=ana.headers).json()["items"]] == [org["id"]]
    taken = http.post("/v1/auth/orgs", json={"name": "Other", "slug": "acme-corp"}, headers=ana.headers)
    assert taken.status_code == 409 and taken.json()["type"].endswith("/org-slug-taken")
    bad = http.post("/v1/auth/orgs", json={"name": "Other", "slug": "Not A Slug"}, headers=ana.headers)
    assert bad.status_code == 422
    assert http.get("/v1/auth/orgs").status_code == 401


def test_outsiders_see_nothing_and_members_only_read(http: httpx.Client):
    ana, ben, eve = person(http, "ana"), person(http, "ben"), person(http, "eve")
    org = create_org(http, ana)["id"]
    assert add(http, ana, org, ben).status_code == 201
    assert http.get(f"/v1/auth/orgs/{org}", headers=eve.headers).status_code == 404
    assert http.get(f"/v1/auth/orgs/{org}/members", headers=eve.headers).status_code == 404
    assert add(http, eve, org, eve).status_code == 404, "an outsider cannot add themselves"
    members = http.get(f"/v1/auth/orgs/{org}/members", headers=ben.headers).json()["items"]
    assert {(m["email"], m["role"]) for m in members} == {("ana@example.com", "owner"), ("ben@example.com", "member")}
    refused = add(http, ben, org, eve)
    assert refused.status_code == 403 and refused.json()["type"].endswith("/org-role")
    rename = http.patch(f"/v1/auth/orgs/{org}", json={"name": "Ben's now"}, headers=ben.headers)
    assert rename.status_code == 403
    assert http.delete(f"/v1/auth/orgs/{org}", headers=ben.headers).status_code == 403


def test_admins_manage_members_and_admins_but_never_owners(http: httpx.Client):
    ana, ben, cat, dan = (person(http, n) for n in ("ana", "ben", "cat", "dan"))
    org = create_org(http, ana)["id"]
    assert add(http, ana, org, ben, "admin", by_email=True).status_code == 201
    assert add(http, ben, org, cat).status_code == 201, "an admin adds members"
    assert add(http, ben, org, dan, "owner").status_code == 403, "an admin cannot make an owner"
    assert add(http, ben, org, dan, "admin").status_code == 201, "an admin adds admins"
    unknown = http.post(f"/v1/auth/orgs/{org}/members", json={"email": "nobody@example.com"}, headers=ben.headers)
    assert unknown.status_code == 404, "only existing users are added"
    duplicate = add(http, ben, org, dan)
    assert duplicate.status_code == 409 and duplicate.json()["type"].endswith("/already-member")
    promoted = http.patch(f"/v1/auth/orgs/{org}/members/{cat.id}", json={"role": "admin"}, headers=ben.headers)
    assert promoted.json() | {"joinedAt": None} == {
        "userId": cat.id,
        "email": "cat@example.com",
        "name": "cat",
        "role": "admin",
        "joinedAt": None,
    }
    assert (
        http.patch(f"/v1/auth/orgs/{org}/members/{dan.id}", json={"role": "member"}, headers=ben.headers).status_code
        == 200
    )
    to_owner = http.patch(f"/v1/auth/orgs/{org}/members/{cat.id}", json={"role": "owner"}, headers=ben.headers)
    assert to_owner.status_code == 403
    demote_owner = http.patch(f"/v1/auth/orgs/{org}/members/{ana.id}", json={"role": "member"}, headers=ben.headers)
    assert demote_owner.status_code == 403
    assert http.delete(f"/v1/auth/orgs/{org}/members/{ana.id}", headers=ben.headers).status_code == 403
    assert http.delete(f"/v1/auth/orgs/{org}/members/{dan.id}", headers=ben.headers).status_code == 204
    assert role_of(http, org, dan, ana) is None
    rename = http.patch(f"/v1/auth/orgs/{org}", json={"name": "Acme Inc", "slug": "acme-inc"}, headers=ben.headers)
    assert rename.status_code == 200 and rename.json()["slug"] == "acme-inc"
    assert http.delete(f"/v1/auth/orgs/{org}", headers=ben.headers).status_code == 403, "only owners delete"
    # An owner changes anyone's role, owners included.
    assert (
        http.patch(f"/v1/auth/orgs/{org}/members/{cat.id}", json={"role": "owner"}, headers=ana.headers).status_code
        == 200
    )
    assert (
        http.patch(f"/v1/auth/orgs/{org}/members/{cat.id}", json={"role": "member"}, headers=ana.headers).status_code
        == 200
    )
    assert role_of(http, org, cat, ana) == "member"


def test_the_last_owner_cannot_leave_be_removed_or_be_demoted(http: httpx.Client):
    ana, ben = person(http, "ana"), person(http, "ben")
    org = create_org(http, ana)["id"]
    assert add(http, ana, org, ben).status_code == 201
    for refused in (
        http.post(f"/v1/auth/orgs/{org}/leave", headers=ana.headers),
        http.delete(f"/v1/auth/orgs/{org}/members/{ana.id}", headers=ana.headers),
        http.patch(f"/v1/auth/orgs/{org}/members/{ana.id}", json={"role": "admin"}, headers=ana.headers),
    ):
        assert refused.status_code == 409 and refused.json()["type"].endswith("/last-owner"), refused.text
    assert role_of(http, org, ana, ana) == "owner"
    assert (
        http.patch(f"/v1/auth/orgs/{org}/members/{ben.id}", json={"role": "owner"}, headers=ana.headers).status_code
        == 200
    )
    assert http.post(f"/v1/auth/orgs/{org}/leave", headers=ana.headers).status_code == 204
    assert http.get(f"/v1/auth/orgs/{org}", headers=ana.headers).status_code == 404
    assert http.get(f"/v1/auth/orgs/{org}", headers=ben.headers).json()["role"] == "owner"


def test_two_owners_leaving_at_once_leave_one_owner(auth: AuthStack, http: httpx.Client, db: Any):
    ana, ben = person(http, "ana"), person(http, "ben")
    for attempt in range(4):
        org = create_org(http, ana, f"Race {attempt}")["id"]
        assert add(http, ana, org, ben, "owner").status_code == 201

        def leave(who: Person, org: str = org) -> int:
            with httpx.Client(base_url=auth.url, timeout=10) as client:
                return client.post(f"/v1/auth/orgs/{org}/leave", headers=who.headers).status_code

        with ThreadPoolExecutor(2) as pool:
            answers = sorted(pool.map(leave, (ana, ben)))
        assert answers in ([204, 409], [409, 409]), answers
        owners = db["memberships"].count_documents({"orgId": org, "role": "owner"})
        assert owners == (1 if answers == [204, 409] else 2)


def test_a_member_leaves_and_an_owner_deletes_the_organisation(http: httpx.Client, db: Any):
    ana, ben = person(http, "ana"), person(http, "ben")
    org = create_org(http, ana)["id"]
    assert add(http, ana, org, ben).status_code == 201
    assert http.post(f"/v1/auth/orgs/{org}/leave", headers=ben.headers).status_code == 204
    assert add(http, ana, org, ben).status_code == 201
    assert http.delete(f"/v1/auth/orgs/{org}", headers=ana.headers).status_code == 204
    assert http.get(f"/v1/auth/orgs/{org}", headers=ben.headers).status_code == 404
    assert http.get("/v1/auth/orgs", headers=ben.headers).json()["items"] == []
    assert db["organizations"].count_documents({"_id": org}) == 0
    assert db["memberships"].count_documents({"orgId": org}) == 0


def test_the_orgs_claim_follows_memberships_at_the_next_refresh(http: httpx.Client):
    ana, ben = person(http, "ana"), person(http, "ben")
    org = create_org(http, ana)["id"]
    assert http.get("/v1/auth/me", headers=ana.headers).json()["orgs"] == {}, "tokens are not rewritten"
    assert add(http, ana, org, ben, "admin").status_code == 201
    for who, role in ((ana, "owner"), (ben, "admin")):
        pair = http.post("/v1/auth/token/refresh", json={"refreshToken": who.session["refreshToken"]}).json()
        who.session = pair
        assert http.get("/v1/auth/me", headers=who.headers).json()["orgs"] == {org: role}
    login = http.post("/v1/auth/login", json={"email": ben.email, "password": PASSWORD}).json()
    assert http.get("/v1/auth/me", headers={"Authorization": f"Bearer {login['accessToken']}"}).json()["orgs"] == {
        org: "admin"
    }


def test_roles_are_checked_in_the_database_not_in_a_stale_token(http: httpx.Client):
    ana, ben, cat = person(http, "ana"), person(http, "ben"), person(http, "cat")
    org = create_org(http, ana)["id"]
    assert add(http, ana, org, ben, "admin").status_code == 201
    ben.session = http.post("/v1/auth/token/refresh", json={"refreshToken": ben.session["refreshToken"]}).json()
    assert http.get("/v1/auth/me", headers=ben.headers).json()["orgs"] == {org: "admin"}
    assert (
        http.patch(f"/v1/auth/orgs/{org}/members/{ben.id}", json={"role": "member"}, headers=ana.headers).status_code
        == 200
    )
    assert http.get("/v1/auth/me", headers=ben.headers).json()["orgs"] == {org: "admin"}, "the token is stale"
    refused = add(http, ben, org, cat)
    assert refused.status_code == 403 and "yours is member" in refused.json()["detail"]


def test_org_changes_are_audited_with_the_client(http: httpx.Client, auth: AuthStack):
    ana, ben = person(http, "ana"), person(http, "ben")
    org = create_org(http, ana)["id"]
    assert add(http, ana, org, ben).status_code == 201
    assert (
        http.patch(f"/v1/auth/orgs/{org}/members/{ben.id}", json={"role": "admin"}, headers=ana.headers).status_code
        == 200
    )
    assert http.delete(f"/v1/auth/orgs/{org}/members/{ben.id}", headers=ana.headers).status_code == 204
    answer = http.get(
        "/v1/auth/admin/events", params={"limit": 100}, headers={"Authorization": f"Bearer {ADMIN_API_KEY}"}
    )
    assert answer.status_code == 200, answer.text
    events = [e for e in answer.json()["items"] if e["type"].startswith("org.")]
    assert [(e["type"], e["userId"]) for e in reversed(events)] == [
        ("org.created", ana.id),
        ("org.member_added", ben.id),
        ("org.role_changed", ben.id),
        ("org.member_removed", ben.id),
    ]
    assert all(e["data"]["org"] == org and e["ip"] == "127.0.0.1" and e["userAgent"] == AGENT for e in events)
    assert events[1]["data"] == {"org": org, "role": "admin", "previous": "member", "by": ana.id}
