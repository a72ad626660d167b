"""A passkey login on the hosted pages, in chromium with a virtual authenticator (Chrome
DevTools Protocol, `WebAuthn.addVirtualAuthenticator`: CTAP2, built in, resident keys, user
verification, presence given without a touch).

The stack of `make up` has the issuer http://localhost:<port> (WebAuthn refuses an IP address
as the relying party id) and spec.auth.passkeys rpId `localhost` with the issuer as its
origin. A person registers a passkey through the api (/v1/auth/passkeys/register/options and
/verify with their access token), from a page on the issuer's origin as an app's page would;
then, in a browser without cookies, Authlib starts a login as demo-web, the person clicks
"Sign in with a passkey" on the hosted login page, and Authlib redeems the code: the ID
token's amr is webauthn (a passkey with user verification is both factors)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from . import query, screenshot
from .authlib_rp import AuthlibApp
from .conftest import sign_up

if TYPE_CHECKING:
    from playwright.sync_api import CDPSession, Page
    from stackyard_harness.local_stack import LocalStack

    from .callbacks import CallbackServer
    from .conftest import Client

PASSKEY_BUTTON = re.compile(r"^\s*sign in with a passkey\s*$", re.I)
REGISTER = """async (token) => {
  const headers = {Authorization: "Bearer " + token, "Content-Type": "application/json"};
  const options = await fetch("/v1/auth/passkeys/register/options", {method: "POST", headers});
  if (!options.ok) return {status: options.status, body: await options.text()};
  const {challengeToken, publicKey} = await options.json();
  const credential = await navigator.credentials.create({
    publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(publicKey),
  });
  const verified = await fetch("/v1/auth/passkeys/register/verify", {
    method: "POST", headers, body: JSON.stringify({challengeToken, credential: credential.toJSON()}),
  });
  return {status: verified.status, body: await verified.text()};
}"""
"""Run in a page on the issuer's origin: the registration ceremony, as an app's page does it."""


def virtual_authenticator(page: Page) -> tuple[CDPSession, str]:
    """A platform authenticator in this page's browser that holds discoverable credentials,
    verifies the user and consents without a touch; the CDP session and its id."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, str(added["authenticatorId"])


def access_token(issuer: str, email: str, password: str) -> str:
    with httpx.Client(base_url=issuer, timeout=10) as api:
        answer = api.post("/v1/auth/login", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["accessToken"])


def test_passkey_login_on_the_hosted_page_gives_the_client_an_id_token_with_amr_webauthn(
    page: Page,
    make_up: LocalStack,
    issuer: str,
    stack_clients: dict[str, Client],
    callbacks: dict[str, CallbackServer],
) -> None:
    assert urlsplit(issuer).hostname == "localhost", "WebAuthn needs a host name as the relying party id"
    config = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
    assert config["issuer"] == issuer
    someone = sign_up(make_up, issuer, "Grace Hopper")
    token = access_token(issuer, someone.email, someone.password)
    cdp, authenticator = virtual_authenticator(page)

    # Registration, from a page on the issuer's origin (the origin the relying party accepts).
    web = stack_clients["demo-web"]
    assert web.redirect_uri
    app = AuthlibApp(issuer, web.client_id, web.secret)
    page.goto(app.authorize(web.redirect_uri).url)
    assert urlsplit(page.url).path == "/oauth2/ui/login", page.url
    registered: dict[str, Any] = page.evaluate(REGISTER, token)
    assert registered["status"] == 201, registered
    credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert len(credentials) == 1 and credentials[0]["isResidentCredential"], credentials
    assert credentials[0]["rpId"] == "localhost", credentials[0]

    # The login: no session with the provider, no email typed; the passkey is discoverable.
    page.context.clear_cookies()
    authorization = app.authorize(web.redirect_uri)
    mark = callbacks[web.client_id].mark()
    page.goto(authorization.url)
    assert urlsplit(page.url).path == "/oauth2/ui/login", page.url
    button = page.get_by_role("button", name=PASSKEY_BUTTON)
    button.wait_for(state="visible")
    screenshot(page, "login-passkey")
    button.click()
    callback = callbacks[web.client_id].wait(after=mark)
    answer = query(callback)
    assert "code" in answer and answer["state"] == authorization.state and answer["iss"] == issuer, answer

    tokens = app.finish(authorization, callback)
    claims = tokens["userinfo"]  # the ID token's claims, validated by Authlib (signature, iss, aud, nonce)
    assert claims["iss"] == issuer and claims["email"] == someone.email, claims
    assert "webauthn" in claims["amr"], claims
    assert "pwd" not in claims["amr"], claims
    assert app.get_userinfo(tokens)["sub"] == claims["sub"]
    signed = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"][0]
    assert signed["signCount"] > credentials[0]["signCount"], "the login used the registered passkey"
    screenshot(page, "login-passkey-back-at-the-app")
