"""Authlib as a Python web app uses it with an OpenID Provider, without a web framework.

`AuthlibApp` is composed the way Authlib composes its Flask and Starlette clients
(OAuth2Mixin + OpenIDMixin + BaseApp), over Authlib's httpx OAuth2Client: it loads the
server metadata from discovery (`server_metadata_url`), builds the authorization URL with
PKCE S256, state and nonce, redeems the code, validates the ID token against the JWKS with the
algorithms discovery lists (`parse_id_token`: signature, iss, aud, exp, nonce, at_hash), calls
userinfo and builds the RP-initiated logout URL. What Flask's session would keep between the
redirect and the callback (state, nonce, code verifier) is the `Authorization` returned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from authlib.integrations.base_client import BaseApp, FrameworkIntegration, OAuthError
from authlib.integrations.base_client.sync_app import OAuth2Mixin
from authlib.integrations.base_client.sync_openid import OpenIDMixin
from authlib.integrations.httpx_client import OAuth2Client

from . import query, sign_in_through_hosted_pages

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from .callbacks import CallbackServer
    from .conftest import Person

__all__ = ["AuthlibApp", "Authorization", "OAuthError", "SignedIn", "sign_in_with_authlib"]


@dataclass
class Authorization:
    url: str
    state: str
    nonce: str | None
    code_verifier: str | None
    redirect_uri: str


class NoStore(FrameworkIntegration):  # type: ignore[misc]
    """The tests keep the tokens themselves: a refreshed token is returned, not stored."""

    def update_token(
        self, token: dict[str, Any], refresh_token: str | None = None, access_token: str | None = None
    ) -> None:
        pass


class AuthlibApp(OAuth2Mixin, OpenIDMixin, BaseApp):  # type: ignore[misc]
    client_cls = OAuth2Client

    def __init__(self, issuer: str, client_id: str, client_secret: str | None = None, **kwargs: Any) -> None:
        client_kwargs = {"scope": "openid email profile", "code_challenge_method": "S256", "timeout": 10}
        if client_secret is None:
            client_kwargs["token_endpoint_auth_method"] = "none"
        client_kwargs |= kwargs.pop("client_kwargs", {})
        super().__init__(
            NoStore(client_id),
            name=client_id,
            client_id=client_id,
            client_secret=client_secret,
            server_metadata_url=f"{issuer}/.well-known/openid-configuration",
            client_kwargs=client_kwargs,
            **kwargs,
        )
        self.issuer = issuer

    @property
    def metadata(self) -> dict[str, Any]:
        return self.load_server_metadata()  # type: ignore[no-any-return]

    def authorize(self, redirect_uri: str, **params: Any) -> Authorization:
        """The authorization URL (PKCE S256, state, nonce) and what the app keeps until the callback."""
        made = self.create_authorization_url(redirect_uri, **params)
        return Authorization(made["url"], made["state"], made.get("nonce"), made.get("code_verifier"), redirect_uri)

    def finish(self, authorization: Authorization, callback_url: str) -> dict[str, Any]:
        """What Authlib's `authorize_access_token` does at the callback: an `error` is raised, the
        state must match, the code is redeemed with the verifier, and the ID token is validated
        (nonce included): the token dict with `userinfo` (the ID token's claims)."""
        answer = query(callback_url)
        if "error" in answer:
            raise OAuthError(error=answer["error"], description=answer.get("error_description"))
        assert answer.get("state") == authorization.state, "state does not match: a forged callback"
        token: dict[str, Any] = self.fetch_access_token(
            authorization.redirect_uri, code=answer["code"], code_verifier=authorization.code_verifier
        )
        if "id_token" in token and authorization.nonce:
            token["userinfo"] = self.parse_id_token(token, nonce=authorization.nonce)
        return token

    def redeem_again(self, authorization: Authorization, callback_url: str) -> dict[str, Any]:
        """The same code a second time (what a replayed callback would do)."""
        return self.fetch_access_token(  # type: ignore[no-any-return]
            authorization.redirect_uri, code=query(callback_url)["code"], code_verifier=authorization.code_verifier
        )

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        with self._get_oauth_client(**self.metadata) as client:
            return client.refresh_token(self.metadata["token_endpoint"], refresh_token=refresh_token)  # type: ignore[no-any-return]

    def client_credentials(self, scope: str | None = None) -> dict[str, Any]:
        with self._get_oauth_client(**self.metadata) as client:
            params = {"scope": scope} if scope else {}
            return client.fetch_token(self.metadata["token_endpoint"], grant_type="client_credentials", **params)  # type: ignore[no-any-return]

    def introspect(self, token: str) -> dict[str, Any]:
        with self._get_oauth_client(**self.metadata) as client:
            answer = client.introspect_token(self.metadata["introspection_endpoint"], token=token)
            answer.raise_for_status()
            return answer.json()  # type: ignore[no-any-return]

    def revoke(self, token: str) -> int:
        with self._get_oauth_client(**self.metadata) as client:
            return int(client.revoke_token(self.metadata["revocation_endpoint"], token=token).status_code)

    def get_userinfo(self, token: dict[str, Any]) -> dict[str, Any]:
        return dict(self.userinfo(token=token))


@dataclass(frozen=True)
class SignedIn:
    """A finished code flow: what was sent, the URL the browser came back to, the token response."""

    authorization: Authorization
    callback: str
    token: dict[str, Any]


def sign_in_with_authlib(
    page: Page,
    app: AuthlibApp,
    redirect_uri: str,
    callback: CallbackServer,
    person: Person,
    *,
    shot: str | None = None,
    **params: Any,
) -> SignedIn:
    """The app's authorization request (with `params`), the person's login on the hosted pages
    in the browser (saved as `<shot>.png`), and the code redeemed by the app."""
    authorization = app.authorize(redirect_uri, **params)
    returned = sign_in_through_hosted_pages(
        page, authorization.url, callback, email=person.email, password=person.password, shot=shot
    )
    return SignedIn(authorization, returned, app.finish(authorization, returned))
