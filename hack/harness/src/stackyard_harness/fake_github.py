"""A local stand-in for GitHub's OAuth app endpoints and the two REST reads a login needs,
following GitHub's documented contract (as a GitHub Enterprise Server lays them out):

    GET  /login/oauth/authorize        302 to redirect_uri with code and state (the signed-in
                                       user approves; `deny()` makes the next one
                                       error=access_denied)
    POST /login/oauth/access_token     form client_id, client_secret, code, redirect_uri,
                                       code_verifier; JSON with Accept: application/json.
                                       Errors come with HTTP 200 and an `error` field
                                       (bad_verification_code, incorrect_client_credentials,
                                       redirect_uri_mismatch), as GitHub answers them.
    GET  /api/v3/user                  the user (Authorization: Bearer <token>; 401 "Bad credentials")
    GET  /api/v3/user/emails           [{email, primary, verified, visibility}]

One aiohttp app on a free loopback port in a background thread (a `FakeServer`).
`sign_in_as(login, ...)` sets who is signed in at "GitHub" for the next authorizations;
`reset()` forgets it with the codes and tokens given."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from .fake_server import FakeServer

CLIENT_ID = "Iv1.fakegithub0001"
CLIENT_SECRET = "fake-github-client-secret-0123456789"


@dataclass
class GitHubUser:
    login: str
    id: int
    name: str | None = None
    emails: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Grant:
    user: GitHubUser
    redirect_uri: str
    challenge: str | None


@dataclass
class _State:
    user: GitHubUser | None = None
    deny: bool = False
    codes: dict[str, _Grant] = field(default_factory=dict)
    tokens: dict[str, GitHubUser] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)


class FakeGitHub(FakeServer[_State]):
    name = "fake GitHub"

    def __init__(self, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET) -> None:
        super().__init__(_State)
        self.client_id, self.client_secret = client_id, client_secret

    def spec(self) -> dict[str, str]:
        """The IdentityProvider endpoint fields that point a github provider here."""
        return {
            "authorizationUrl": f"{self.url}/login/oauth/authorize",
            "tokenUrl": f"{self.url}/login/oauth/access_token",
            "apiUrl": f"{self.url}/api/v3",
        }

    @property
    def user(self) -> GitHubUser | None:
        """Who is signed in at "GitHub"."""
        with self._lock:
            return self._state.user

    @property
    def token_requests(self) -> list[dict[str, str]]:
        """The forms posted to the token endpoint, in order."""
        with self._lock:
            return list(self._state.token_requests)

    def sign_in_as(
        self, login: str, user_id: int, *, email: str, verified: bool = True, name: str | None = None
    ) -> None:
        emails = [
            {"email": f"{user_id}+{login}@users.noreply.github.com", "primary": False, "verified": True},
            {"email": email, "primary": True, "verified": verified, "visibility": "private"},
        ]
        with self._lock:
            self._state.user = GitHubUser(login, user_id, name, emails)
            self._state.deny = False

    def deny(self) -> None:
        """The user presses Cancel on the next authorization."""
        with self._lock:
            self._state.deny = True

    def _application(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/login/oauth/authorize", self._authorize)
        app.router.add_post("/login/oauth/access_token", self._access_token)
        app.router.add_get("/api/v3/user", self._user)
        app.router.add_get("/api/v3/user/emails", self._emails)
        return app

    # --- GitHub ---------------------------------------------------------------------------

    async def _authorize(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("client_id") != self.client_id or "redirect_uri" not in query:
            return web.Response(status=404, text="Not Found")
        back = query["redirect_uri"]
        with self._lock:
            user, denied = self._state.user, self._state.deny
            self._state.deny = False
        if denied or user is None:
            params = {
                "error": "access_denied",
                "error_description": "The user has denied your application access.",
                "error_uri": "https://docs.github.com/apps/troubleshooting-authorization-request-errors",
                "state": query.get("state", ""),
            }
            raise web.HTTPFound(f"{back}?{urlencode(params)}")
        if query.get("code_challenge") and query.get("code_challenge_method") != "S256":
            return web.Response(status=400, text="code_challenge_method must be S256")
        code = secrets.token_hex(10)
        with self._lock:
            self._state.codes[code] = _Grant(user, back, query.get("code_challenge"))
        raise web.HTTPFound(f"{back}?{urlencode({'code': code, 'state': query.get('state', '')})}")

    async def _access_token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        with self._lock:
            self._state.token_requests.append({k: str(v) for k, v in form.items()})

        def error(name: str, description: str) -> web.Response:
            body = {"error": name, "error_description": description, "error_uri": "https://docs.github.com"}
            return web.json_response(body)  # GitHub: HTTP 200 with an error field

        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return error("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.")
        with self._lock:
            grant = self._state.codes.pop(str(form.get("code", "")), None)
        if grant is None:
            return error("bad_verification_code", "The code passed is incorrect or expired.")
        if form.get("redirect_uri") not in (None, grant.redirect_uri):
            return error("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL.")
        if grant.challenge is not None:
            verifier = str(form.get("code_verifier", "")).encode()
            computed = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=").decode()
            if computed != grant.challenge:
                return error("bad_verification_code", "The code_verifier does not match the code_challenge.")
        token = "gho_" + secrets.token_hex(18)
        with self._lock:
            self._state.tokens[token] = grant.user
        return web.json_response({"access_token": token, "token_type": "bearer", "scope": "read:user,user:email"})

    def _caller(self, request: web.Request) -> GitHubUser:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        with self._lock:
            user = self._state.tokens.get(token) if scheme.lower() in ("bearer", "token") else None
        if user is None:
            raise web.HTTPUnauthorized(
                text='{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}',
                content_type="application/json",
            )
        return user

    async def _user(self, request: web.Request) -> web.Response:
        user = self._caller(request)
        return web.json_response(
            {
                "login": user.login,
                "id": user.id,
                "name": user.name,
                "email": None,
                "avatar_url": f"https://avatars.githubusercontent.com/u/{user.id}?v=4",
                "type": "User",
            }
        )

    async def _emails(self, request: web.Request) -> web.Response:
        return web.json_response(self._caller(request).emails)
