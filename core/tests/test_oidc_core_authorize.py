"""The authorization endpoint's rules: which requests are refused and how (an error page
for an untrusted client or redirect URI, an error at the redirect URI with state and iss
otherwise), and the decision for the user's browser session (login, consent, a code)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from oidc_core_support import ISSUER, WEB_REDIRECT, Clock, auth_params, authorize_code, new_user, pkce, query, signed_in
from stackyard.auth.context import AuthContext
from stackyard.auth.oidc import authorize, consents, discovery
from stackyard.auth.oidc.errors import InvalidClientOrRedirect
from stackyard.auth.oidc.interaction import load_pending


def refused(ctx: AuthContext, **params: str) -> dict[str, str]:
    """The error the client gets at its redirect URI."""
    with pytest.raises(authorize.AuthorizeError) as error:
        authorize.validate(ctx, params)
    answer = query(error.value.response.url())
    assert error.value.response.redirect_uri == params.get("redirect_uri", WEB_REDIRECT)
    assert answer["iss"] == ISSUER
    assert answer.get("state") == params.get("state")
    return answer


def test_an_unknown_or_disabled_client_gets_an_error_page_not_a_redirect(ctx: AuthContext) -> None:
    for client_id in ("nobody", "old-app"):
        with pytest.raises(InvalidClientOrRedirect):
            authorize.validate(ctx, auth_params() | {"client_id": client_id})


def test_an_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(ctx: AuthContext) -> None:
    for uri in ("https://evil.example/cb", WEB_REDIRECT + "/", WEB_REDIRECT + "?next=/"):
        with pytest.raises(InvalidClientOrRedirect, match="redirect_uri"):
            authorize.validate(ctx, auth_params(redirect_uri=uri))
    # Even with other errors in the request, nothing goes to an unregistered address.
    with pytest.raises(InvalidClientOrRedirect):
        authorize.validate(ctx, auth_params(redirect_uri="https://evil.example/cb", response_type="token"))


def test_only_the_code_response_type_is_supported(ctx: AuthContext) -> None:
    _, challenge = pkce()
    params = auth_params(code_challenge=challenge, code_challenge_method="S256")
    assert refused(ctx, **params | {"response_type": "token"})["error"] == "unsupported_response_type"
    assert refused(ctx, **params | {"response_type": "code id_token"})["error"] == "unsupported_response_type"
    missing = {k: v for k, v in params.items() if k != "response_type"}
    assert refused(ctx, **missing)["error"] == "invalid_request"


def test_pkce_is_required_and_plain_is_refused(ctx: AuthContext) -> None:
    verifier, challenge = pkce()
    answer = refused(ctx, **auth_params())
    assert answer["error"] == "invalid_request" and "PKCE" in answer["error_description"]
    answer = refused(ctx, **auth_params(code_challenge=verifier[:43], code_challenge_method="plain"))
    assert answer["error"] == "invalid_request" and "S256" in answer["error_description"]
    assert refused(ctx, **auth_params(code_challenge=challenge))["error"] == "invalid_request"
    assert refused(ctx, **auth_params("spa"))["error"] == "invalid_request"
    assert authorize.validate(ctx, auth_params(code_challenge=challenge, code_challenge_method="S256"))


def test_a_client_without_require_pkce_may_skip_it(ctx: AuthContext) -> None:
    ctx.oidc_clients["webapp"] = ctx.oidc_clients["webapp"].model_copy(update={"require_pkce": False})
    assert authorize.validate(ctx, auth_params()).code_challenge is None


def test_scopes_outside_the_clients_list_are_invalid_scope(ctx: AuthContext) -> None:
    _, challenge = pkce()
    pkce_params = {"code_challenge": challenge, "code_challenge_method": "S256"}
    answer = refused(ctx, **auth_params("partner", scope="openid email offline_access") | pkce_params)
    assert answer["error"] == "invalid_scope" and "offline_access" in answer["error_description"]
    assert refused(ctx, **auth_params(scope="") | pkce_params)["error"] == "invalid_scope"


def test_prompt_none_cannot_be_combined_and_max_age_must_be_a_number(ctx: AuthContext) -> None:
    _, challenge = pkce()
    base = auth_params(code_challenge=challenge, code_challenge_method="S256")
    assert refused(ctx, **base | {"prompt": "none login"})["error"] == "invalid_request"
    assert refused(ctx, **base | {"prompt": "sometimes"})["error"] == "invalid_request"
    assert refused(ctx, **base | {"max_age": "-1"})["error"] == "invalid_request"
    assert refused(ctx, **base | {"request": "eyJ..."})["error"] == "request_not_supported"
    pending = authorize.validate(ctx, base | {"prompt": "login consent", "max_age": "300"})
    assert pending.prompt == ["login", "consent"] and pending.max_age == 300


def test_a_machine_client_cannot_use_the_code_flow(ctx: AuthContext) -> None:
    with pytest.raises(InvalidClientOrRedirect):
        authorize.validate(ctx, auth_params() | {"client_id": "reports-bot"})


async def test_without_a_browser_session_the_user_signs_in_and_the_request_waits(ctx: AuthContext) -> None:
    _, challenge = pkce()
    pending = authorize.validate(ctx, auth_params(code_challenge=challenge, code_challenge_method="S256"))
    decision = await authorize.decide(ctx, pending, None)
    assert isinstance(decision, authorize.Login)
    assert decision.location == f"{ISSUER}/oauth2/ui/login?ar={decision.pending.id}"
    saved = await load_pending(ctx, decision.pending.id)
    assert saved is not None and saved.code_challenge == challenge and saved.state == pending.state
    # After the login, the same request (continue) ends in a code, and is forgotten.
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user)
    done = await authorize.decide(ctx, saved, browser)
    assert isinstance(done, authorize.Respond)
    assert set(query(done.response.url())) == {"code", "state", "iss"}
    assert await load_pending(ctx, saved.id) is None


async def test_prompt_none_without_a_session_is_login_required(ctx: AuthContext) -> None:
    _, challenge = pkce()
    pending = authorize.validate(
        ctx, auth_params(code_challenge=challenge, code_challenge_method="S256", prompt="none")
    )
    decision = await authorize.decide(ctx, pending, None)
    assert isinstance(decision, authorize.Respond)
    answer = query(decision.response.url())
    assert answer["error"] == "login_required" and answer["state"] == pending.state and answer["iss"] == ISSUER


async def test_max_age_and_prompt_login_ask_for_a_fresh_login(ctx: AuthContext, clock: Clock) -> None:
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user)
    clock.advance(600)
    _, challenge = pkce()
    base = auth_params(code_challenge=challenge, code_challenge_method="S256")
    assert isinstance(await authorize.decide(ctx, authorize.validate(ctx, base), browser), authorize.Respond)
    old = authorize.validate(ctx, base | {"max_age": "300"})
    assert isinstance(await authorize.decide(ctx, old, browser), authorize.Login)
    again = authorize.validate(ctx, base | {"prompt": "login"})
    decision = await authorize.decide(ctx, again, browser)
    assert isinstance(decision, authorize.Login)
    clock.advance(5)
    _, fresh = await signed_in(ctx, user)
    assert isinstance(await authorize.decide(ctx, decision.pending, fresh), authorize.Respond)


async def test_prompt_create_opens_the_sign_up_page_while_sign_up_is_open(ctx: AuthContext, clock: Clock) -> None:
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user)
    clock.advance(5)
    _, challenge = pkce()
    base = auth_params(code_challenge=challenge, code_challenge_method="S256")
    assert refused(ctx, **base | {"prompt": "create none"})["error"] == "invalid_request"
    create = await authorize.decide(ctx, authorize.validate(ctx, base | {"prompt": "create"}), browser)
    assert isinstance(create, authorize.Login), "even with a browser session: the request asks for a new account"
    assert create.location == f"{ISSUER}/oauth2/ui/signup?ar={create.pending.id}"
    clock.advance(5)
    _, fresh = await signed_in(ctx, user)  # the account made (or a sign-in) after the request
    assert isinstance(await authorize.decide(ctx, create.pending, fresh), authorize.Respond)

    closed = replace(ctx, settings=ctx.settings.model_copy(update={"allow_signup": False}))
    login = await authorize.decide(closed, authorize.validate(closed, base | {"prompt": "create"}), None)
    assert isinstance(login, authorize.Login)
    assert login.location == f"{ISSUER}/oauth2/ui/login?ar={login.pending.id}"
    assert "create" in discovery.metadata(ctx)["prompt_values_supported"]
    assert "create" not in discovery.metadata(closed)["prompt_values_supported"]


async def test_a_login_hint_for_someone_else_asks_for_a_login(ctx: AuthContext) -> None:
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user)
    _, challenge = pkce()
    base = auth_params(code_challenge=challenge, code_challenge_method="S256")
    mine = authorize.validate(ctx, base | {"login_hint": "ANA@example.com"})
    assert isinstance(await authorize.decide(ctx, mine, browser), authorize.Respond)
    other = authorize.validate(ctx, base | {"login_hint": "bo@example.com"})
    assert isinstance(await authorize.decide(ctx, other, browser), authorize.Login)


async def test_a_third_party_client_asks_consent_once_per_scope(ctx: AuthContext) -> None:
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user)
    _, challenge = pkce()
    base = auth_params("partner", code_challenge=challenge, code_challenge_method="S256")
    silent = await authorize.decide(ctx, authorize.validate(ctx, base | {"prompt": "none"}), browser)
    assert isinstance(silent, authorize.Respond)
    assert query(silent.response.url())["error"] == "consent_required"
    decision = await authorize.decide(ctx, authorize.validate(ctx, base), browser)
    assert isinstance(decision, authorize.Consent)
    assert decision.location == f"{ISSUER}/oauth2/ui/consent?ar={decision.pending.id}"
    approved = await authorize.approve_consent(ctx, decision.pending, user.id)
    reloaded = await load_pending(ctx, approved.id)
    assert reloaded is not None
    assert isinstance(await authorize.decide(ctx, reloaded, browser), authorize.Respond)
    assert await consents.granted_scopes(ctx, user.id, "partner") == {"openid", "email"}
    # The same scopes later: no consent page; a new scope: the page again.
    _, challenge = pkce()
    base = auth_params("partner", code_challenge=challenge, code_challenge_method="S256")
    assert isinstance(await authorize.decide(ctx, authorize.validate(ctx, base), browser), authorize.Respond)
    more = authorize.validate(ctx, base | {"scope": "openid email profile"})
    assert isinstance(await authorize.decide(ctx, more, browser), authorize.Consent)


async def test_a_first_party_client_asks_consent_only_with_prompt_consent(ctx: AuthContext) -> None:
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user)
    await authorize_code(ctx, browser)
    _, challenge = pkce()
    pending = authorize.validate(
        ctx, auth_params(code_challenge=challenge, code_challenge_method="S256", prompt="consent")
    )
    assert isinstance(await authorize.decide(ctx, pending, browser), authorize.Consent)


async def test_a_denied_consent_is_access_denied_for_the_client(ctx: AuthContext) -> None:
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user)
    _, challenge = pkce()
    pending = authorize.validate(ctx, auth_params("partner", code_challenge=challenge, code_challenge_method="S256"))
    decision = await authorize.decide(ctx, pending, browser)
    assert isinstance(decision, authorize.Consent)
    response = await authorize.deny_consent(ctx, decision.pending)
    answer = query(response.url())
    assert answer["error"] == "access_denied" and answer["state"] == pending.state
    assert await load_pending(ctx, decision.pending.id) is None


async def test_form_post_answers_with_an_escaped_self_submitting_form(ctx: AuthContext) -> None:
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user)
    _, challenge = pkce()
    params = auth_params(code_challenge=challenge, code_challenge_method="S256", response_mode="form_post")
    params["state"] = '"><script>alert(1)</script>'
    decision = await authorize.decide(ctx, authorize.validate(ctx, params), browser)
    assert isinstance(decision, authorize.Respond) and decision.response.response_mode == "form_post"
    page = authorize.form_post_html(decision.response)
    assert f'action="{WEB_REDIRECT}"' in page and 'name="code"' in page
    assert "<script>alert" not in page and "&lt;script&gt;" in page


async def test_a_client_disabled_while_the_user_signs_in_gets_no_code(ctx: AuthContext) -> None:
    _, challenge = pkce()
    pending = authorize.validate(ctx, auth_params(code_challenge=challenge, code_challenge_method="S256"))
    decision = await authorize.decide(ctx, pending, None)
    ctx.oidc_clients["webapp"] = ctx.oidc_clients["webapp"].model_copy(update={"enabled": False})
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user)
    with pytest.raises(InvalidClientOrRedirect):
        await authorize.decide(ctx, decision.pending, browser)
