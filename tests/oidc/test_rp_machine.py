"""The machine client demo-worker gets an access token with client credentials, from Authlib
and from openid-client, and introspection says it is active; revoked (RFC 7009), it is not."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from . import jose_header
from .authlib_rp import AuthlibApp, OAuthError
from .node_rp import NodeRelyingParty, OpenIdClientError

if TYPE_CHECKING:
    from .conftest import Client

STANDARD = {"openid", "profile", "email", "offline_access"}


def machine_scope(client: Client) -> str | None:
    """The client's own scopes (e.g. reports:read), or None when it has only standard ones."""
    own = [scope for scope in client.scopes if scope not in STANDARD]
    return " ".join(own) or None


def test_authlib_client_credentials_token_is_active(issuer: str, stack_clients: dict[str, Client]) -> None:
    worker = stack_clients["demo-worker"]
    assert worker.type == "machine" and worker.secret
    app = AuthlibApp(issuer, worker.client_id, worker.secret)
    scope = machine_scope(worker)
    token = app.client_credentials(scope)
    assert token["token_type"].lower() == "bearer" and token["expires_in"] > 0
    assert "refresh_token" not in token and "id_token" not in token, sorted(token)

    # The access token is a JWT (at+jwt) signed with the Stack's keys, naming the client.
    header = jose_header(token["access_token"])
    assert header["typ"].lower() in ("at+jwt", "application/at+jwt"), header
    keys = KeySet.import_key_set(app.fetch_jwk_set())
    decoded = jwt.decode(token["access_token"], keys, registry=JWSRegistry(algorithms=[header["alg"]]))
    assert decoded.claims["client_id"] == worker.client_id and decoded.claims["iss"] == issuer
    assert "sid" not in decoded.claims, "no user, no session"

    described = app.introspect(token["access_token"])
    assert described["active"] is True and described["client_id"] == worker.client_id, described
    if scope:
        assert set(scope.split()) <= set(described["scope"].split()), described

    with pytest.raises(OAuthError) as refused:
        AuthlibApp(issuer, worker.client_id, "not-the-secret").client_credentials(scope)
    assert refused.value.error == "invalid_client"


def test_openid_client_client_credentials_token_is_active(
    issuer: str, stack_clients: dict[str, Client], node_rp: NodeRelyingParty
) -> None:
    worker = stack_clients["demo-worker"]
    node_rp.call("discover", client="worker", issuer=issuer, clientId=worker.client_id, clientSecret=worker.secret)
    scope = machine_scope(worker)
    tokens = node_rp.call("clientCredentials", client="worker", scope=scope)["tokens"]
    assert tokens["access_token"] and "refresh_token" not in tokens
    described = node_rp.call("introspect", client="worker", token=tokens["access_token"])
    assert described["active"] is True and described["client_id"] == worker.client_id, described

    with pytest.raises(OpenIdClientError) as refused:
        node_rp.call("clientCredentials", client="worker", scope="a-scope-it-was-never-given")
    assert refused.value.error == "invalid_scope", refused.value.fields


def test_revoked_client_credentials_token_is_inactive(issuer: str, stack_clients: dict[str, Client]) -> None:
    worker = stack_clients["demo-worker"]
    app = AuthlibApp(issuer, worker.client_id, worker.secret)
    token = app.client_credentials(machine_scope(worker))
    assert app.introspect(token["access_token"])["active"] is True
    assert app.revoke(token["access_token"]) == 200
    assert app.introspect(token["access_token"])["active"] is False, "revoked, the token must be inactive"
