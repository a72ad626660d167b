"""What the signed-in user's calls beyond `auth_calls` send: their organisations
(/v1/auth/orgs), their second factor (/v1/auth/mfa/totp, recovery codes), their passkeys
and their linked identities, and the OAuth calls a program makes (the providers offered, the
one-time code of the browser's round trip exchanged for a session). Each is sent with the
user's access token except `oauth_providers` and `oauth_exchange`.

The codes and passwords presented (`confirm_totp`, `disable_totp`, `recovery_codes`) and
the one-time OAuth code are credentials: never sent twice on their own (as `auth_calls`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from stackyard.auth.contract_mfa import (
    CodeRequest,
    Passkey,
    PasskeyList,
    PasskeyLoginOptionsRequest,
    PasskeyLoginRequest,
    PasskeyOptions,
    PasskeyRegisterRequest,
    PasskeyRename,
    ReauthRequest,
    RecoveryCodes,
    TotpEnrollment,
)
from stackyard.auth.contract_oauth import ExchangeRequest, IdentityList, ProviderList
from stackyard.auth.contract_orgs import (
    Member,
    MemberAdd,
    MemberList,
    Organization,
    OrganizationList,
    OrgCreate,
    OrgUpdate,
    Role,
    RoleChange,
)

from .auth_calls import CREDENTIAL_ANSWERS, LoginAnswer, bearer
from .calls import Call, NoContent, _segment

ORGS = "/v1/auth/orgs"
TOTP = "/v1/auth/mfa/totp"
PASSKEYS = "/v1/auth/passkeys"


def _body(request: BaseModel) -> dict[str, Any]:
    return request.model_dump(mode="json", by_alias=True, exclude_none=True)


def _org(org_id: str, *rest: str) -> str:
    return "/".join((ORGS, _segment(org_id), *rest))


# Organisations.


def list_orgs(token: str) -> Call[OrganizationList]:
    return Call("GET", ORGS, OrganizationList, headers=bearer(token), repeatable=True)


def create_org(token: str, name: str, slug: str | None, metadata: Mapping[str, Any] | None) -> Call[Organization]:
    """Not repeatable: each call makes another organisation."""
    body = _body(OrgCreate(name=name, slug=slug, metadata=dict(metadata or {})))
    return Call("POST", ORGS, Organization, json=body, headers=bearer(token))


def get_org(token: str, org_id: str) -> Call[Organization]:
    return Call("GET", _org(org_id), Organization, headers=bearer(token), repeatable=True)


def update_org(
    token: str, org_id: str, name: str | None, slug: str | None, metadata: Mapping[str, Any] | None
) -> Call[Organization]:
    body = _body(OrgUpdate(name=name, slug=slug, metadata=None if metadata is None else dict(metadata)))
    return Call("PATCH", _org(org_id), Organization, json=body, headers=bearer(token), repeatable=True)


def delete_org(token: str, org_id: str) -> Call[NoContent]:
    return Call("DELETE", _org(org_id), NoContent, headers=bearer(token), repeatable=True)


def list_members(token: str, org_id: str) -> Call[MemberList]:
    return Call("GET", _org(org_id, "members"), MemberList, headers=bearer(token), repeatable=True)


def add_member(token: str, org_id: str, user_id: str | None, email: str | None, role: Role) -> Call[Member]:
    """ValidationError unless exactly one of user_id and email is given."""
    body = _body(MemberAdd(user_id=user_id, email=email, role=role))
    return Call("POST", _org(org_id, "members"), Member, json=body, headers=bearer(token), repeatable=True)


def change_role(token: str, org_id: str, user_id: str, role: Role) -> Call[Member]:
    body = _body(RoleChange(role=role))
    path = _org(org_id, "members", _segment(user_id))
    return Call("PATCH", path, Member, json=body, headers=bearer(token), repeatable=True)


def remove_member(token: str, org_id: str, user_id: str) -> Call[NoContent]:
    path = _org(org_id, "members", _segment(user_id))
    return Call("DELETE", path, NoContent, headers=bearer(token), repeatable=True)


def leave_org(token: str, org_id: str) -> Call[NoContent]:
    return Call("POST", _org(org_id, "leave"), NoContent, headers=bearer(token), repeatable=True)


# The second factor.


def enroll_totp(token: str) -> Call[TotpEnrollment]:
    """Not repeatable: each call draws another secret."""
    return Call("POST", f"{TOTP}/enroll", TotpEnrollment, headers=bearer(token))


def confirm_totp(token: str, code: str) -> Call[RecoveryCodes]:
    body = _body(CodeRequest(code=code))
    return Call(
        "POST", f"{TOTP}/confirm", RecoveryCodes, json=body, headers=bearer(token), never_retry=CREDENTIAL_ANSWERS
    )


def disable_totp(token: str, code: str | None, password: str | None) -> Call[NoContent]:
    body = _body(ReauthRequest(code=code, password=password))
    return Call("DELETE", TOTP, NoContent, json=body, headers=bearer(token), never_retry=CREDENTIAL_ANSWERS)


def recovery_codes(token: str, code: str | None, password: str | None) -> Call[RecoveryCodes]:
    """New recovery codes; the old ones stop working. Not repeatable."""
    body = _body(ReauthRequest(code=code, password=password))
    return Call(
        "POST",
        "/v1/auth/mfa/recovery-codes",
        RecoveryCodes,
        json=body,
        headers=bearer(token),
        never_retry=CREDENTIAL_ANSWERS,
    )


# Passkeys: the ceremonies' options go to a WebAuthn authenticator (navigator.credentials in
# a browser) and its credential comes back to be verified; listed, renamed and deleted from anywhere.


def passkey_register_options(token: str) -> Call[PasskeyOptions]:
    """Not repeatable: each call makes another single-use challenge."""
    return Call("POST", f"{PASSKEYS}/register/options", PasskeyOptions, headers=bearer(token))


def register_passkey(
    token: str, challenge_token: str, credential: Mapping[str, Any], name: str | None
) -> Call[Passkey]:
    body = _body(PasskeyRegisterRequest(challenge_token=challenge_token, credential=dict(credential), name=name))
    return Call("POST", f"{PASSKEYS}/register/verify", Passkey, json=body, headers=bearer(token))


def passkey_login_options(email: str | None) -> Call[PasskeyOptions]:
    body = _body(PasskeyLoginOptionsRequest(email=email))
    return Call("POST", f"{PASSKEYS}/login/options", PasskeyOptions, json=body)


def passkey_login(challenge_token: str, credential: Mapping[str, Any]) -> Call[LoginAnswer]:
    body = _body(PasskeyLoginRequest(challenge_token=challenge_token, credential=dict(credential)))
    return Call("POST", f"{PASSKEYS}/login/verify", LoginAnswer, json=body, never_retry=CREDENTIAL_ANSWERS)


def list_passkeys(token: str) -> Call[PasskeyList]:
    return Call("GET", PASSKEYS, PasskeyList, headers=bearer(token), repeatable=True)


def rename_passkey(token: str, passkey_id: str, name: str) -> Call[Passkey]:
    body = _body(PasskeyRename(name=name))
    path = f"{PASSKEYS}/{_segment(passkey_id)}"
    return Call("PATCH", path, Passkey, json=body, headers=bearer(token), repeatable=True)


def delete_passkey(token: str, passkey_id: str) -> Call[NoContent]:
    path = f"{PASSKEYS}/{_segment(passkey_id)}"
    return Call("DELETE", path, NoContent, headers=bearer(token), repeatable=True)


# Identities and OAuth.


def list_identities(token: str) -> Call[IdentityList]:
    return Call("GET", "/v1/auth/identities", IdentityList, headers=bearer(token), repeatable=True)


def unlink_identity(token: str, provider: str) -> Call[NoContent]:
    path = f"/v1/auth/identities/{_segment(provider)}"
    return Call("DELETE", path, NoContent, headers=bearer(token), repeatable=True)


def oauth_providers() -> Call[ProviderList]:
    return Call("GET", "/v1/auth/oauth/providers", ProviderList, repeatable=True)


def oauth_exchange(code: str, code_verifier: str | None) -> Call[LoginAnswer]:
    """The one-time code the callback put in the app's URL, for a Session (bearer mode)."""
    body = _body(ExchangeRequest(code=code, code_verifier=code_verifier))
    return Call("POST", "/v1/auth/oauth/exchange", LoginAnswer, json=body, never_retry=CREDENTIAL_ANSWERS)
