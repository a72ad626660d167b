"""Every route of the api is wrapped by a call of the SDK (`stackyard.client`), or is in
EXCLUDED with the reason it is not: a route added to the api without its SDK call fails
`test_every_route_of_the_api_is_wrapped_or_excluded`.

The routes are those of the api's OpenAPI document (`create_app(runtime).openapi()`, what
/openapi.json serves; routes left out of the schema, as the docs pages, are not the api's
surface). WRAPPED maps each route to a use of the SDK; that the use really sends the route
is checked, not trusted: `test_the_sdk_call_sends_its_route` runs it on a client whose
transport records the requests and answers each with a problem (nothing else is needed:
no server, no network). When you wrap a new route, add it to WRAPPED; when a route should
not be wrapped, add it to EXCLUDED with the reason."""

from __future__ import annotations

import contextlib
import functools
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from stackyard.client import NO_RETRY, Stackyard, StackyardError
from stackyard.config import FileConfigSource, LiveConfig
from stackyard.runtime import Runtime
from stackyard.storage.contract import FileView

Route = tuple[str, str]
Use = Callable[[Stackyard], object]

TOKEN = "access-token"
FILE = FileView.model_json_schema()["examples"][0]
DIRECT_UPLOAD = {
    "file": FILE | {"state": "pending", "sha256": None},
    "url": "http://127.0.0.1:8080/v1/files/f_1/upload?expires=1&signature=s",
    "method": "PUT",
    "expiresAt": "2026-11-25T10:05:00Z",
}
PUSH_SUBSCRIPTION = {
    "endpoint": "https://push.example.com/send/1",
    "keys": {
        "p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
        "auth": "tBHItJI5svbpez7KI4CCXg",
    },
}
CANNED: dict[Route, dict[str, Any]] = {("POST", "/v1/files/uploads"): DIRECT_UPLOAD}
"""Answers that let a call go on to its next request; every other request gets a problem."""


def account(client: Stackyard) -> Any:
    return client.auth.with_token(TOKEN)


WRAPPED: dict[Route, Use] = {
    # The api itself.
    ("GET", "/healthz"): lambda s: s.health.live(),
    ("GET", "/readyz"): lambda s: s.health.ready(),
    ("GET", "/v1/config"): lambda s: s.config.get(),
    # Rate limits.
    ("POST", "/v1/ratelimit/check"): lambda s: s.ratelimit.check("exports", key="user-42"),
    ("GET", "/v1/ratelimit/policies"): lambda s: s.ratelimit.policies(),
    # Jobs, queues, events.
    ("POST", "/v1/jobs"): lambda s: s.jobs.enqueue("reports.send"),
    ("GET", "/v1/jobs/{job_id}"): lambda s: s.jobs.get("default.1"),
    ("POST", "/v1/jobs/{job_id}/cancel"): lambda s: s.jobs.cancel("default.1"),
    ("GET", "/v1/queues"): lambda s: s.queues.list(),
    ("GET", "/v1/queues/{name}"): lambda s: s.queues.get("default"),
    ("GET", "/v1/queues/{name}/dead"): lambda s: s.queues.dead("default"),
    ("POST", "/v1/queues/{name}/dead/replay"): lambda s: s.queues.replay("default", all=True),
    ("POST", "/v1/queues/{name}/dead/purge"): lambda s: s.queues.purge("default", all=True),
    ("POST", "/v1/events"): lambda s: s.events.send("invoice.paid"),
    # Email.
    ("POST", "/v1/emails"): lambda s: s.emails.send(sender="a@acme.dev", to="b@example.com", subject="s", text="t"),
    ("GET", "/v1/emails"): lambda s: s.emails.list(),
    ("GET", "/v1/emails/{email_id}"): lambda s: s.emails.get("em_1"),
    ("POST", "/v1/emails/{email_id}/cancel"): lambda s: s.emails.cancel("em_1"),
    ("POST", "/v1/email-templates/{name}/preview"): lambda s: s.emails.preview("welcome"),
    ("GET", "/v1/suppressions"): lambda s: s.suppressions.list(),
    ("POST", "/v1/suppressions"): lambda s: s.suppressions.add("b@example.com"),
    ("DELETE", "/v1/suppressions/{address}"): lambda s: s.suppressions.remove("b@example.com"),
    # Auth: sign-up, login, tokens.
    ("POST", "/v1/auth/signup"): lambda s: s.auth.sign_up("b@example.com", "a long passphrase"),
    ("POST", "/v1/auth/verify-email"): lambda s: s.auth.verify_email("t"),
    ("POST", "/v1/auth/verify-email/resend"): lambda s: s.auth.resend_verification("b@example.com"),
    ("POST", "/v1/auth/login"): lambda s: s.auth.login("b@example.com", "a long passphrase"),
    ("POST", "/v1/auth/login/mfa"): lambda s: s.auth.login_mfa("challenge-token-0123456789", "123456"),
    ("POST", "/v1/auth/token/refresh"): lambda s: s.auth.refresh("refresh-token"),
    ("POST", "/v1/auth/password/forgot"): lambda s: s.auth.forgot_password("b@example.com"),
    ("POST", "/v1/auth/password/reset"): lambda s: s.auth.reset_password("t", "a long passphrase"),
    ("POST", "/v1/auth/email/change/confirm"): lambda s: s.auth.confirm_email_change("t"),
    ("POST", "/v1/auth/magic-link"): lambda s: s.auth.magic_link("b@example.com"),
    ("POST", "/v1/auth/magic-link/verify"): lambda s: s.auth.verify_magic_link("t"),
    ("GET", "/.well-known/jwks.json"): lambda s: s.auth.jwks(),
    ("GET", "/.well-known/openid-configuration"): lambda s: s.auth.openid_configuration(),
    # Auth: the signed-in user's account.
    ("POST", "/v1/auth/logout"): lambda s: account(s).logout(),
    ("GET", "/v1/auth/me"): lambda s: account(s).me(),
    ("GET", "/v1/auth/user"): lambda s: account(s).user(),
    ("PATCH", "/v1/auth/user"): lambda s: account(s).update_user(metadata={"plan": "pro"}),
    ("POST", "/v1/auth/password/change"): lambda s: account(s).change_password("old passphrase", "a long passphrase"),
    ("POST", "/v1/auth/email/change"): lambda s: account(s).change_email("c@example.com", "a long passphrase"),
    ("GET", "/v1/auth/sessions"): lambda s: account(s).sessions(),
    ("DELETE", "/v1/auth/sessions"): lambda s: account(s).revoke_other_sessions(),
    ("DELETE", "/v1/auth/sessions/{session_id}"): lambda s: account(s).revoke_session("ses_1"),
    ("POST", "/v1/auth/mfa/totp/enroll"): lambda s: account(s).enroll_totp(),
    ("POST", "/v1/auth/mfa/totp/confirm"): lambda s: account(s).confirm_totp("123456"),
    ("DELETE", "/v1/auth/mfa/totp"): lambda s: account(s).disable_totp(code="123456"),
    ("POST", "/v1/auth/mfa/recovery-codes"): lambda s: account(s).new_recovery_codes(password="a long passphrase"),
    ("GET", "/v1/auth/passkeys"): lambda s: account(s).passkeys(),
    ("POST", "/v1/auth/passkeys/register/options"): lambda s: account(s).passkey_register_options(),
    ("POST", "/v1/auth/passkeys/register/verify"): lambda s: account(s).register_passkey("challenge", {"id": "c"}),
    ("POST", "/v1/auth/passkeys/login/options"): lambda s: s.auth.passkey_login_options(),
    ("POST", "/v1/auth/passkeys/login/verify"): lambda s: s.auth.passkey_login("challenge", {"id": "c"}),
    ("PATCH", "/v1/auth/passkeys/{passkey_id}"): lambda s: account(s).rename_passkey("cred-1", "laptop"),
    ("DELETE", "/v1/auth/passkeys/{passkey_id}"): lambda s: account(s).delete_passkey("cred-1"),
    ("GET", "/v1/auth/identities"): lambda s: account(s).identities(),
    ("DELETE", "/v1/auth/identities/{provider}"): lambda s: account(s).unlink_identity("google"),
    ("GET", "/v1/auth/oauth/providers"): lambda s: s.auth.oauth_providers(),
    ("POST", "/v1/auth/oauth/exchange"): lambda s: s.auth.oauth_exchange("one-time-code"),
    # Auth: the signed-in user's organisations.
    ("GET", "/v1/auth/orgs"): lambda s: account(s).orgs.list(),
    ("POST", "/v1/auth/orgs"): lambda s: account(s).orgs.create("Acme"),
    ("GET", "/v1/auth/orgs/{org_id}"): lambda s: account(s).orgs.get("org_1"),
    ("PATCH", "/v1/auth/orgs/{org_id}"): lambda s: account(s).orgs.update("org_1", name="Acme Inc"),
    ("DELETE", "/v1/auth/orgs/{org_id}"): lambda s: account(s).orgs.delete("org_1"),
    ("GET", "/v1/auth/orgs/{org_id}/members"): lambda s: account(s).orgs.members("org_1"),
    ("POST", "/v1/auth/orgs/{org_id}/members"): lambda s: account(s).orgs.add_member("org_1", email="c@example.com"),
    ("PATCH", "/v1/auth/orgs/{org_id}/members/{user_id}"): lambda s: account(s).orgs.change_role(
        "org_1", "usr_1", "admin"
    ),
    ("DELETE", "/v1/auth/orgs/{org_id}/members/{user_id}"): lambda s: account(s).orgs.remove_member("org_1", "usr_1"),
    ("POST", "/v1/auth/orgs/{org_id}/leave"): lambda s: account(s).orgs.leave("org_1"),
    # Auth: the admin API.
    ("GET", "/v1/auth/admin/users"): lambda s: s.auth.admin.users.list(),
    ("POST", "/v1/auth/admin/users"): lambda s: s.auth.admin.users.create("b@example.com"),
    ("GET", "/v1/auth/admin/users/{user_id}"): lambda s: s.auth.admin.users.get("usr_1"),
    ("PATCH", "/v1/auth/admin/users/{user_id}"): lambda s: s.auth.admin.users.update("usr_1", metadata={}),
    ("DELETE", "/v1/auth/admin/users/{user_id}"): lambda s: s.auth.admin.users.delete("usr_1"),
    ("POST", "/v1/auth/admin/users/{user_id}/disable"): lambda s: s.auth.admin.users.disable("usr_1"),
    ("POST", "/v1/auth/admin/users/{user_id}/enable"): lambda s: s.auth.admin.users.enable("usr_1"),
    ("DELETE", "/v1/auth/admin/users/{user_id}/sessions"): lambda s: s.auth.admin.users.revoke_sessions("usr_1"),
    ("GET", "/v1/auth/admin/events"): lambda s: s.auth.admin.events.list(),
    # Databases.
    ("GET", "/v1/databases"): lambda s: s.databases.list(),
    ("GET", "/v1/databases/{name}"): lambda s: s.databases.get("main"),
    ("GET", "/v1/databases/{name}/migrations"): lambda s: s.databases.migrations("main"),
    # Files.
    ("POST", "/v1/files"): lambda s: s.files.upload(b"abc", name="a.txt"),
    ("GET", "/v1/files"): lambda s: s.files.list(),
    ("POST", "/v1/files/uploads"): lambda s: s.files.start_upload("a.txt", 3),
    ("PUT", "/v1/files/{file_id}/upload"): lambda s: s.files.upload_direct(b"abc", name="a.txt"),
    ("POST", "/v1/files/{file_id}/complete"): lambda s: s.files.complete("f_1"),
    ("GET", "/v1/files/{file_id}"): lambda s: s.files.get("f_1"),
    ("DELETE", "/v1/files/{file_id}"): lambda s: s.files.delete("f_1"),
    ("GET", "/v1/files/{file_id}/url"): lambda s: s.files.url("f_1"),
    ("GET", "/v1/files/{file_id}/content"): lambda s: s.files.download_url(
        "http://127.0.0.1:8080/v1/files/f_1/content?expires=1&signature=s", io.BytesIO()
    ),
    # Notifications, the in-app feed, webhooks.
    ("POST", "/v1/notify"): lambda s: s.notify.trigger("comment-created", "usr_1"),
    ("GET", "/v1/notify/runs"): lambda s: s.notify.runs(),
    ("GET", "/v1/notify/runs/{run_id}"): lambda s: s.notify.run("run_1"),
    ("POST", "/v1/notify/runs/{run_id}/cancel"): lambda s: s.notify.cancel("run_1"),
    ("GET", "/v1/notify/preferences"): lambda s: s.notify.preferences(),
    ("PUT", "/v1/notify/preferences"): lambda s: s.notify.set_preferences({}),
    ("GET", "/v1/notify/users/{userId}/preferences"): lambda s: s.notify.preferences("usr_1"),
    ("PUT", "/v1/notify/users/{userId}/preferences"): lambda s: s.notify.set_preferences({}, user_id="usr_1"),
    ("GET", "/v1/feed"): lambda s: s.feed.list(),
    ("GET", "/v1/feed/counts"): lambda s: s.feed.counts(),
    ("POST", "/v1/feed/bulk"): lambda s: s.feed.bulk("read", all=True),
    ("GET", "/v1/feed/{message_id}"): lambda s: s.feed.get("msg_1"),
    ("POST", "/v1/feed/{message_id}/{action}"): lambda s: s.feed.read("msg_1"),
    ("GET", "/v1/webhooks"): lambda s: s.webhooks.list(),
    ("GET", "/v1/webhooks/deliveries/{delivery_id}"): lambda s: s.webhooks.delivery("whd_1"),
    ("POST", "/v1/webhooks/deliveries/{delivery_id}/replay"): lambda s: s.webhooks.replay("whd_1"),
    ("GET", "/v1/webhooks/{name}/deliveries"): lambda s: s.webhooks.deliveries("crm"),
    ("POST", "/v1/webhooks/{name}/enable"): lambda s: s.webhooks.enable("crm"),
    ("POST", "/v1/webhooks/{name}/test"): lambda s: s.webhooks.test("crm"),
    # Search.
    ("GET", "/v1/indexes"): lambda s: s.search.indexes(),
    ("GET", "/v1/indexes/{uid}"): lambda s: s.search.index("books"),
    ("GET", "/v1/indexes/{uid}/settings"): lambda s: s.search.settings("books"),
    ("POST", "/v1/indexes/{uid}/rebuild"): lambda s: s.search.rebuild("books"),
    ("POST", "/v1/indexes/{uid}/documents"): lambda s: s.search.add_documents("books", [{"id": 1}]),
    ("PUT", "/v1/indexes/{uid}/documents"): lambda s: s.search.update_documents("books", [{"id": 1}]),
    ("GET", "/v1/indexes/{uid}/documents"): lambda s: s.search.documents("books"),
    ("DELETE", "/v1/indexes/{uid}/documents"): lambda s: s.search.delete_all_documents("books"),
    ("GET", "/v1/indexes/{uid}/documents/{id}"): lambda s: s.search.document("books", 1),
    ("DELETE", "/v1/indexes/{uid}/documents/{id}"): lambda s: s.search.delete_document("books", 1),
    ("POST", "/v1/indexes/{uid}/documents/delete"): lambda s: s.search.delete_documents("books", ids=[1]),
    ("POST", "/v1/indexes/{uid}/search"): lambda s: s.search.search("books", "dune"),
    ("POST", "/v1/multi-search"): lambda s: s.search.multi_search([{"indexUid": "books", "q": "dune"}]),
    ("GET", "/v1/search/tasks"): lambda s: s.search.tasks(),
    ("GET", "/v1/search/tasks/{taskUid}"): lambda s: s.search.task(1),
    # Web push.
    ("GET", "/v1/push/vapid-public-key"): lambda s: s.push.vapid_public_key(),
    ("POST", "/v1/push/subscriptions"): lambda s: s.push.subscribe(PUSH_SUBSCRIPTION),
    ("GET", "/v1/push/subscriptions"): lambda s: s.push.list(),
    ("DELETE", "/v1/push/subscriptions/{subscription_id}"): lambda s: s.push.unsubscribe("psub_1"),
}
"""Each wrapped route and a use of the SDK that sends it."""

EXCLUDED: dict[Route, str] = {
    # Called by others than the apps the SDK serves.
    ("POST", "/v1/emails/webhooks/{provider}"): "inbound: the email providers' delivery events (Resend, SendGrid)",
    # A browser's, not a program's: the redirects of an OAuth login, and the feed's
    # server-sent events.
    ("GET", "/v1/auth/oauth/{provider}/authorize"): "a browser redirect to the identity provider",
    ("GET", "/v1/auth/oauth/{provider}/callback"): "the identity provider redirects the browser back here",
    ("GET", "/v1/feed/stream"): "server-sent events for the page (EventSource); programs read the feed with feed.list",
    # The OpenID Provider's protocol: standard OIDC client libraries (openid-client, Authlib,
    # next-auth, ...) and browsers call it, as for Auth0 or Keycloak; the SDK has no part in it.
    ("GET", "/oauth2/authorize"): "OpenID Provider: the browser's authorization request, sent by OIDC client libraries",
    ("POST", "/oauth2/authorize"): "OpenID Provider: the form post form of the authorization request (browsers)",
    ("GET", "/oauth2/authorize/continue"): "OpenID Provider: the hosted login and consent pages send the browser here",
    ("POST", "/oauth2/token"): "OpenID Provider: OIDC client libraries redeem codes and refresh tokens here",
    ("GET", "/oauth2/userinfo"): "OpenID Provider: OIDC client libraries read the user's claims here",
    (
        "POST",
        "/oauth2/userinfo",
    ): "OpenID Provider: the POST form of userinfo (RFC 6750 form token), for client libraries",
    ("POST", "/oauth2/revoke"): "OpenID Provider: RFC 7009 revocation, called by OIDC client libraries",
    (
        "POST",
        "/oauth2/introspect",
    ): "OpenID Provider: RFC 7662 introspection, called by resource servers' OAuth libraries",
    ("GET", "/oauth2/logout"): "OpenID Provider: RP-initiated logout, a browser redirect from the client",
    ("POST", "/oauth2/logout"): "OpenID Provider: the form post form of RP-initiated logout (browsers)",
    # The same route under another method.
    ("GET", "/v1/indexes/{uid}/search"): "the GET form of POST /v1/indexes/{uid}/search (search.search), for links",
}
"""Routes the SDK does not wrap, each with the reason."""


@functools.cache
def api_routes() -> frozenset[Route]:
    """Every (method, path) of the api's OpenAPI document."""
    import tempfile

    from stackyard_api.app import create_app

    live = LiveConfig()
    runtime = Runtime("stackyard-api", FileConfigSource(live, Path(tempfile.mkdtemp())), live)
    spec = create_app(runtime).openapi()
    methods = {"get", "post", "put", "patch", "delete"}
    return frozenset((m.upper(), path) for path, ops in spec["paths"].items() for m in ops if m in methods)


def template(path: str) -> re.Pattern[str]:
    """/v1/jobs/{job_id} as a pattern of the paths it names."""
    return re.compile(
        "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in re.split(r"({[^}]+})", path))
    )


class Recorder(httpx.BaseTransport):
    """Remembers each request and answers it with a problem (or with CANNED)."""

    def __init__(self) -> None:
        self.requests: list[Route] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        sent = (request.method, request.url.path)
        self.requests.append(sent)
        for (method, path), answer in CANNED.items():
            if method == request.method and template(path).fullmatch(request.url.path):
                return httpx.Response(200, json=answer)
        problem = {"type": "about:blank", "title": "Recorded", "status": 418, "detail": "recorded, not served"}
        return httpx.Response(418, json=problem, headers={"Content-Type": "application/problem+json"})


@pytest.fixture
def recorder() -> Iterator[tuple[Stackyard, Recorder]]:
    transport = Recorder()
    with Stackyard(
        "http://127.0.0.1:8080", admin_key="admin", search_key="search", retry=NO_RETRY, transport=transport
    ) as client:
        yield client, transport


def unwrapped(routes: frozenset[Route]) -> list[Route]:
    return sorted(routes - WRAPPED.keys() - EXCLUDED.keys())


def test_every_route_of_the_api_is_wrapped_or_excluded():
    routes = api_routes()
    missing = unwrapped(routes)
    assert not missing, f"api routes without an SDK call (wrap them, or add them to EXCLUDED with a reason): {missing}"
    assert not WRAPPED.keys() & EXCLUDED.keys()
    gone = sorted((WRAPPED.keys() | EXCLUDED.keys()) - routes)
    assert not gone, f"routes the api no longer has: {gone}"
    assert all(reason.strip() for reason in EXCLUDED.values())


@pytest.mark.parametrize("route", sorted(WRAPPED), ids=" ".join)
def test_the_sdk_call_sends_its_route(route: Route, recorder: tuple[Stackyard, Recorder]):
    client, transport = recorder
    with contextlib.suppress(StackyardError):  # the recorder's problem; after a CANNED answer, a call goes on
        WRAPPED[route](client)
    method, path = route
    sent = [(m, p) for m, p in transport.requests if m == method and template(path).fullmatch(p)]
    assert sent, f"{method} {path} was not sent; the call sent {transport.requests}"


def test_the_route_template_matches_one_segment_per_parameter():
    pattern = template("/v1/feed/{message_id}/{action}")
    assert pattern.fullmatch("/v1/feed/msg_1/read") and not pattern.fullmatch("/v1/feed/msg_1")
    assert not pattern.fullmatch("/v1/feed/a/b/c")


def test_a_route_added_without_its_sdk_call_is_found():
    assert unwrapped(api_routes() | {("POST", "/v1/reports")}) == [("POST", "/v1/reports")]
