"""The pure parts of social login: the IdentityProvider model, redirect checks, PKCE and the
id_token checks (with keys made here, signed as a provider would)."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError
from stackyard.auth import federation
from stackyard.auth.federation import (
    OAuthLoginFailed,
    check_id_token,
    pick_key,
    pkce_challenge,
    redirect_allowed,
    token_auth_method,
    with_query,
)
from stackyard.resources.auth import GOOGLE_ISSUER, IdentityProviderSpec
from stackyard.resources.stack import AuthSettings

ISSUER = "https://id.acme.dev"
CLIENT = "stackyard-app"
NONCE = "n-0123456789"
BASE = {"stackRef": {"name": "demo"}, "clientId": CLIENT, "clientSecretSecretRef": {"name": "s", "key": "k"}}


def spec(**fields: Any) -> IdentityProviderSpec:
    return IdentityProviderSpec.model_validate(BASE | fields)


# -- the model ------------------------------------------------------------------------------


def test_default_scopes_follow_the_type():
    assert spec(type="github").requested_scopes() == ["read:user", "user:email"]
    assert spec(type="google").requested_scopes() == ["openid", "email", "profile"]
    assert spec(type="oidc", issuer=ISSUER, scopes=["email"]).requested_scopes() == ["openid", "email"]


def test_google_issuer_is_fixed_and_oidc_needs_one():
    assert spec(type="google").issuer_url() == GOOGLE_ISSUER
    with pytest.raises(ValidationError, match="issuer is required"):
        spec(type="oidc")
    with pytest.raises(ValidationError, match=r"accounts\.google\.com"):
        spec(type="google", issuer="https://evil.example")
    with pytest.raises(ValidationError, match="not github"):
        spec(type="github", issuer=ISSUER)


def test_endpoint_overrides_are_for_github_enterprise_only():
    ghe = spec(type="github", apiUrl="https://ghe.acme.dev/api/v3", tokenUrl="https://ghe.acme.dev/login/oauth/token")
    assert ghe.api_url == "https://ghe.acme.dev/api/v3"
    with pytest.raises(ValidationError, match="GitHub Enterprise"):
        spec(type="oidc", issuer=ISSUER, tokenUrl="https://id.acme.dev/token")


def test_client_secret_is_a_reference_and_its_credential_name():
    assert spec(type="github").secret_refs()["clientSecret"].name == "s"
    assert federation.client_secret_key("github") == "identityprovider.github.clientSecret"


def test_token_endpoint_auth_follows_the_provider():
    basic_and_post = federation.Endpoints("a", "t", auth_methods=("client_secret_basic", "client_secret_post"))
    post_only = federation.Endpoints("a", "t", auth_methods=("client_secret_post",))
    assert token_auth_method(spec(type="oidc", issuer=ISSUER), basic_and_post) == "client_secret_basic"
    assert token_auth_method(spec(type="oidc", issuer=ISSUER), post_only) == "client_secret_post"
    assert token_auth_method(spec(type="google"), basic_and_post) == "client_secret_post"
    chosen = spec(type="oidc", issuer=ISSUER, tokenEndpointAuthMethod="client_secret_post")
    assert token_auth_method(chosen, basic_and_post) == "client_secret_post"


# -- redirects ------------------------------------------------------------------------------

SETTINGS = AuthSettings.model_validate(
    {"appUrl": "https://app.acme.dev", "allowedRedirectUrls": ["https://partner.acme.dev/cb", "http://localhost:3000/"]}
)


@pytest.mark.parametrize(
    "url",
    [
        "https://app.acme.dev",
        "https://app.acme.dev/",
        "https://APP.acme.dev:443/welcome?x=1",
        "https://partner.acme.dev/cb",
        "https://partner.acme.dev/cb/done",
        "http://localhost:3000/anything",
    ],
)
def test_redirects_under_the_app_or_an_allowed_url_pass(url):
    assert redirect_allowed(url, SETTINGS)


@pytest.mark.parametrize(
    "url",
    [
        "https://app.acme.dev.evil.example/",
        "https://app.acme.dev@evil.example/",
        "https://user:pw@app.acme.dev/",
        "http://app.acme.dev/",
        "https://app.acme.dev:8443/",
        "https://partner.acme.dev/cbx",
        "https://partner.acme.dev/",
        "http://localhost:3001/",
        "javascript:alert(1)",
        "//app.acme.dev/",
        "/welcome",
        "https://app.acme.dev\\@evil.example/",
    ],
)
def test_redirects_elsewhere_are_refused(url):
    assert not redirect_allowed(url, SETTINGS)


def test_with_query_keeps_the_query_and_drops_the_fragment():
    assert with_query("https://a.dev/x?y=1#f", {"code": "c d"}) == "https://a.dev/x?y=1&code=c+d"


def test_pkce_s256_matches_rfc_7636_appendix_b():
    assert (
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


# -- id_token -------------------------------------------------------------------------------

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(private: Any, kid: str) -> jwt.PyJWK:
    data = jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True) | {"kid": kid, "alg": "RS256"}
    return jwt.PyJWK(data)


KEY = public_jwk(RSA_KEY, "k1")


def id_token(private: Any = RSA_KEY, alg: str = "RS256", kid: str | None = "k1", **changes: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "u-1", "aud": CLIENT, "exp": now + 300, "iat": now, "nonce": NONCE} | changes
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, private, algorithm=alg, headers={"kid": kid} if kid else None)


def check(token: str) -> dict[str, Any]:
    return check_id_token(token, KEY, issuer=ISSUER, client_id=CLIENT, nonce=NONCE)


def test_a_good_id_token_passes():
    assert check(id_token())["sub"] == "u-1"
    assert check(id_token(aud=[CLIENT, "api"], azp=CLIENT))["sub"] == "u-1"


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"iss": "https://evil.example"}, "issuer"),
        ({"aud": "another-app"}, "(?i)audience"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"nonce": "another"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"aud": [CLIENT, "api"]}, "azp"),
        ({"aud": [CLIENT, "api"], "azp": "api"}, "azp"),
        ({"iat": None}, "iat"),
    ],
)
def test_a_bad_id_token_is_refused(changes, words):
    with pytest.raises(OAuthLoginFailed, match=words):
        check(id_token(**changes))


def test_an_issuer_among_several_passes():
    token = id_token(iss="accounts.google.com")
    claims = check_id_token(token, KEY, issuer=[GOOGLE_ISSUER, "accounts.google.com"], client_id=CLIENT, nonce=NONCE)
    assert claims["iss"] == "accounts.google.com"


def test_an_id_token_signed_by_another_key_is_refused():
    with pytest.raises(OAuthLoginFailed, match=r"(?i)signature"):
        check(id_token(OTHER_KEY))


def test_symmetric_and_unsigned_id_tokens_are_refused():
    keys = jwt.PyJWKSet([jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key(), as_dict=True) | {"kid": "k1"}])
    hs256 = jwt.encode({"sub": "u-1"}, "the-client-secret-0123456789abcdef", algorithm="HS256", headers={"kid": "k1"})
    with pytest.raises(OAuthLoginFailed, match="HS256"):
        pick_key(keys, hs256)
    unsigned = jwt.encode({"sub": "u-1"}, None, algorithm="none", headers={"kid": "k1"})  # type: ignore[arg-type]
    with pytest.raises(OAuthLoginFailed, match="none"):
        pick_key(keys, unsigned)


def test_the_key_is_picked_by_kid_and_an_unknown_kid_asks_for_a_refresh():
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_jwk = jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True) | {"kid": "k2"}
    rsa_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key(), as_dict=True) | {"kid": "k1"}
    keys = jwt.PyJWKSet([rsa_jwk, ec_jwk])
    assert pick_key(keys, id_token(ec_key, "ES256", "k2")).key_id == "k2"
    with pytest.raises(KeyError):
        pick_key(keys, id_token(kid="rotated"))
    with pytest.raises(OAuthLoginFailed, match="names no key"):
        pick_key(keys, id_token(kid=None))
