"""What the tests of the hosted login methods (test_hosted_methods_*.py) share: a Stack with
an OIDCClient and the issuer at the api's own URL, an authorization request waiting at the
hosted login page (started at the real /oauth2/authorize), and the checks of where a sign-in
ends (the browser session's cookie and /oauth2/authorize/continue, then the client's
redirect URI with a code)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from stackyard_harness.auth_stack import AuthStack

CLIENT_ID = "webapp"
REDIRECT_URI = "https://app.acme.dev/callback"
SCOPE = "ns/demo"
"""The AuthStack's Stack: namespace ns, name demo."""
BROWSER_COOKIE = "sy_op"
CSRF_COOKIE = "sy_op_csrf"
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
_DATA_CSRF = re.compile(r'data-csrf="([^"]+)"')


def configure(
    auth: AuthStack,
    settings: dict[str, Any] | None = None,
    *,
    hosted_pages: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    """The Stack's auth `settings` (camelCase) with the issuer at the api's URL, plain-HTTP
    cookies, `hostedPages` and the OIDCClient `webapp` (a public client of REDIRECT_URI)."""
    from stackyard.config import RuntimeConfig
    from stackyard.resources.oidc import OIDCClientSpec

    base = {
        "issuer": auth.url,
        "cookies": {"secure": False},
        "lockout": {"ipMaxAttempts": 100000},
        "hostedPages": hosted_pages or {},
    }
    auth.configure(base | (settings or {}), **kwargs)
    # AuthStack.configure has no OIDCClients (yet): the same config again with the client.
    path = auth.directory / "config.json"
    config = RuntimeConfig.model_validate_json(path.read_text())
    client = OIDCClientSpec.model_validate(
        {
            "stackRef": {"name": "demo"},
            "type": "public",
            "displayName": "Acme Web",
            "redirectUris": [REDIRECT_URI],
        }
    )
    auth.generation += 1
    updated = config.model_copy(update={"generation": auth.generation, "oidc_clients": {CLIENT_ID: client}})
    path.write_text(updated.canonical_json())
    auth.wait_applied()


@dataclass
class Authorization:
    """An authorization request of `webapp` waiting at the login page."""

    ar: str
    state: str
    nonce: str
    verifier: str
    login_page: str

    @property
    def continue_url(self) -> str:
        return f"/oauth2/authorize/continue?ar={self.ar}"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize(http: httpx.Client) -> Authorization:
    """GET /oauth2/authorize as the client sends the browser there: 303 to the login page."""
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    answer = http.get(
        "/oauth2/authorize",
        params={
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "response_type": "code",
            "scope": "openid email profile",
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert answer.status_code in (302, 303), answer.text
    location = answer.headers["location"]
    assert urlsplit(location).path == "/oauth2/ui/login", location
    ar = query_of(location)["ar"]
    return Authorization(ar=ar, state=state, nonce=nonce, verifier=verifier, login_page=location)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def origin(auth: AuthStack) -> dict[str, str]:
    """The headers a form post from the hosted pages carries (the issuer's origin)."""
    return {"Origin": auth.url}


def csrf_of(page: httpx.Response) -> str:
    """The CSRF token of a hosted page's forms (hidden field, else the passkey section's data-csrf)."""
    found = _CSRF_FIELD.search(page.text) or _DATA_CSRF.search(page.text)
    assert found, page.text[:2000]
    return found.group(1)


def login_page(http: httpx.Client, authorization: Authorization) -> httpx.Response:
    page = http.get(authorization.login_page)
    assert page.status_code == 200, page.text
    return page


def signed_in(answer: httpx.Response, authorization: Authorization) -> str:
    """The answer ends the sign-in: 303 to the request's continue URL with the browser session's
    cookie set; the cookie's value."""
    assert answer.status_code == 303, answer.text[:2000]
    assert answer.headers["location"] == authorization.continue_url, answer.headers["location"]
    cookies = {c.name: c.value for c in answer.cookies.jar}
    assert cookies.get(BROWSER_COOKIE), answer.headers.get_list("set-cookie")
    return cookies[BROWSER_COOKIE]


def code_at_client(http: httpx.Client, authorization: Authorization) -> str:
    """Follow /oauth2/authorize/continue: 303 to the client's redirect URI with a code, the
    request's state and the issuer (RFC 9207)."""
    answer = http.get(authorization.continue_url)
    assert answer.status_code in (302, 303), answer.text[:2000]
    location = answer.headers["location"]
    assert location.startswith(REDIRECT_URI + "?"), location
    params = query_of(location)
    assert params["state"] == authorization.state and "code" in params, params
    return params["code"]


def token_claims(http: httpx.Client, authorization: Authorization, code: str) -> dict[str, Any]:
    """Redeem the code at /oauth2/token (public client, PKCE): the ID token's claims."""
    import jwt

    answer = http.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "client_id": CLIENT_ID,
            "code_verifier": authorization.verifier,
        },
    )
    assert answer.status_code == 200, answer.text
    claims: dict[str, Any] = jwt.decode(answer.json()["id_token"], options={"verify_signature": False})
    assert claims["nonce"] == authorization.nonce and claims["aud"] == CLIENT_ID
    return claims
