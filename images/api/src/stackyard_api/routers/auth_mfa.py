"""/v1/auth second factors and passkeys: TOTP (authenticator apps) with recovery codes, the
login's second step, and WebAuthn passkeys (register, log in, list, rename, delete).

POST   /v1/auth/mfa/totp/enroll              a new TOTP secret and its otpauth:// URI (not on yet)
POST   /v1/auth/mfa/totp/confirm             turn TOTP on with a code; the recovery codes, once
DELETE /v1/auth/mfa/totp                     turn it off (a current code or the password)
POST   /v1/auth/mfa/recovery-codes           ten new recovery codes (a current code or the password)
POST   /v1/auth/login/mfa                    the login's second step: MFA challenge + code -> session
POST   /v1/auth/passkeys/register/options    options for navigator.credentials.create()
POST   /v1/auth/passkeys/register/verify     store the passkey the browser created
POST   /v1/auth/passkeys/login/options       options for navigator.credentials.get()
POST   /v1/auth/passkeys/login/verify        a session from a passkey
GET    /v1/auth/passkeys                     your passkeys
PATCH  /v1/auth/passkeys/{id}                rename one
DELETE /v1/auth/passkeys/{id}                delete one
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from stackyard.auth import flows, mfa, passkeys
from stackyard.auth.contract import MfaRequired, Session
from stackyard.auth.contract_mfa import (
    CodeRequest,
    MfaLoginRequest,
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

from ..auth_deps import AuthDep, ClaimsDep, ClientDep
from ..errors import problem_responses
from .auth import login_answer, session_body

router = APIRouter(tags=["auth"])

PasskeyId = Annotated[str, Path(min_length=1, max_length=1400, pattern=r"^[A-Za-z0-9_-]+$")]
NO_STORE = {"Cache-Control": "no-store"}


def passkey_view(info: passkeys.PasskeyInfo) -> Passkey:
    return Passkey.model_validate(info, from_attributes=True)


# --- TOTP -----------------------------------------------------------------------------------


@router.post(
    "/v1/auth/mfa/totp/enroll",
    response_model=TotpEnrollment,
    response_model_by_alias=True,
    summary="Start TOTP enrolment",
    description=(
        "A new secret for an authenticator app, stored encrypted and not yet in force: confirm it with a "
        "code at POST /v1/auth/mfa/totp/confirm. Enrolling again before confirming replaces the secret. "
        "503 when the Stack has no encryption key for secrets."
    ),
    responses=problem_responses(401, 403, 409, 503),
)
async def enroll_totp(claims: ClaimsDep, context: AuthDep, response: Response) -> TotpEnrollment:
    user = await flows.current_user(context, claims)
    enrollment = await mfa.enroll(context, user)
    response.headers.update(NO_STORE)
    return TotpEnrollment(
        secret=enrollment.secret,
        otpauth_uri=enrollment.uri,
        issuer=enrollment.issuer,
        account=enrollment.account,
        digits=mfa.TOTP_DIGITS,
        period=mfa.TOTP_PERIOD,
    )


@router.post(
    "/v1/auth/mfa/totp/confirm",
    response_model=RecoveryCodes,
    response_model_by_alias=True,
    summary="Turn TOTP on",
    description=(
        "With a code from the enrolled secret, two-factor authentication is on (event mfa.enabled): "
        "logins then ask for a code. Answers ten single-use recovery codes, shown only this once."
    ),
    responses=problem_responses(400, 401, 403, 409, 422, 503),
)
async def confirm_totp(
    body: CodeRequest, claims: ClaimsDep, context: AuthDep, client: ClientDep, response: Response
) -> RecoveryCodes:
    user = await flows.current_user(context, claims)
    codes = await mfa.confirm(context, user, body.code, client)
    response.headers.update(NO_STORE)
    return RecoveryCodes(recovery_codes=codes)


@router.delete(
    "/v1/auth/mfa/totp",
    status_code=204,
    summary="Turn TOTP off",
    description=(
        "Needs a current code from the app or the account's password (failures count toward the account's "
        "lockout). The secret and the recovery codes are deleted (event mfa.disabled)."
    ),
    responses=problem_responses(400, 401, 403, 409, 422, 429, 503),
)
async def disable_totp(body: ReauthRequest, claims: ClaimsDep, context: AuthDep, client: ClientDep) -> Response:
    user = await flows.current_user(context, claims)
    await mfa.disable(context, user, code=body.code, password=body.password, client=client)
    return Response(status_code=204)


@router.post(
    "/v1/auth/mfa/recovery-codes",
    response_model=RecoveryCodes,
    response_model_by_alias=True,
    summary="New recovery codes",
    description="Ten new single-use recovery codes; the earlier ones stop working. Needs a code or the password.",
    responses=problem_responses(400, 401, 403, 409, 422, 429, 503),
)
async def regenerate_recovery_codes(
    body: ReauthRequest, claims: ClaimsDep, context: AuthDep, client: ClientDep, response: Response
) -> RecoveryCodes:
    user = await flows.current_user(context, claims)
    codes = await mfa.regenerate_recovery_codes(context, user, code=body.code, password=body.password, client=client)
    response.headers.update(NO_STORE)
    return RecoveryCodes(recovery_codes=codes)


@router.post(
    "/v1/auth/login/mfa",
    response_model=Session,
    response_model_by_alias=True,
    response_model_exclude_none=True,
    summary="Finish a login with a second factor",
    description=(
        'The mfaToken of the login\'s answer and a code from the authenticator app (amr [..., "otp"]) or a '
        'recovery code (amr [..., "rcode"]; it is used up). A wrong code leaves the challenge usable for '
        "its five minutes but counts toward the account's lockout (429 then) and is recorded as mfa.failed."
    ),
    responses=problem_responses(400, 401, 403, 422, 429, 503),
)
async def login_mfa(body: MfaLoginRequest, context: AuthDep, client: ClientDep, response: Response) -> Session:
    pair = await mfa.complete_mfa_login(context, body.mfa_token, body.code, client)
    return session_body(pair, body.mode, response, context)


# --- passkeys -------------------------------------------------------------------------------


@router.post(
    "/v1/auth/passkeys/register/options",
    response_model=PasskeyOptions,
    response_model_by_alias=True,
    summary="Options to create a passkey",
    description=(
        "For navigator.credentials.create({publicKey}): the relying party (spec.auth.passkeys), the user, "
        "a single-use challenge, the account's passkeys to exclude; a discoverable credential and user "
        "verification are preferred."
    ),
    responses=problem_responses(401, 403, 409, 503),
)
async def passkey_register_options(claims: ClaimsDep, context: AuthDep, response: Response) -> PasskeyOptions:
    user = await flows.current_user(context, claims)
    token, options = await passkeys.registration_options(context, user)
    response.headers.update(NO_STORE)
    return PasskeyOptions(challenge_token=token, public_key=options)


@router.post(
    "/v1/auth/passkeys/register/verify",
    status_code=201,
    response_model=Passkey,
    response_model_by_alias=True,
    summary="Store a new passkey",
    description=(
        "The credential navigator.credentials.create() answered, verified (challenge, origin, RP id, "
        "attestation 'none' or a known format) and stored (event passkey.added)."
    ),
    responses=problem_responses(400, 401, 403, 409, 422, 503),
)
async def passkey_register_verify(
    body: PasskeyRegisterRequest, claims: ClaimsDep, context: AuthDep, client: ClientDep
) -> Passkey:
    user = await flows.current_user(context, claims)
    info = await passkeys.verify_registration(context, user, body.challenge_token, body.credential, body.name, client)
    return passkey_view(info)


@router.post(
    "/v1/auth/passkeys/login/options",
    response_model=PasskeyOptions,
    response_model_by_alias=True,
    summary="Options to log in with a passkey",
    description=(
        "For navigator.credentials.get({publicKey}). Without an email the options are discoverable (the "
        "browser offers the passkeys it holds for this site); with the email of an account that has passkeys "
        "they list its credentials."
    ),
    responses=problem_responses(400, 422, 503),
)
async def passkey_login_options(
    body: PasskeyLoginOptionsRequest, context: AuthDep, response: Response
) -> PasskeyOptions:
    token, options = await passkeys.authentication_options(context, body.email)
    response.headers.update(NO_STORE)
    return PasskeyOptions(challenge_token=token, public_key=options)


@router.post(
    "/v1/auth/passkeys/login/verify",
    response_model=Session | MfaRequired,
    response_model_by_alias=True,
    response_model_exclude_none=True,
    summary="Log in with a passkey",
    description=(
        "The assertion navigator.credentials.get() answered: signature, challenge (single use), origin, RP id "
        'and a growing sign count are verified. A session with amr ["webauthn"]; when the authenticator did '
        "not verify the user and the account has TOTP on, an MFA challenge instead."
    ),
    responses=problem_responses(400, 401, 403, 422, 429, 503),
)
async def passkey_login_verify(
    body: PasskeyLoginRequest, context: AuthDep, client: ClientDep, response: Response
) -> Session | MfaRequired:
    result = await passkeys.login(context, body.challenge_token, body.credential, client)
    return login_answer(result, body.mode, response, context)


@router.get(
    "/v1/auth/passkeys",
    response_model=PasskeyList,
    response_model_by_alias=True,
    summary="Your passkeys",
    responses=problem_responses(401, 403),
)
async def list_passkeys(claims: ClaimsDep, context: AuthDep) -> PasskeyList:
    user = await flows.current_user(context, claims)
    return PasskeyList(items=[passkey_view(p) for p in passkeys.list_passkeys(user)])


@router.patch(
    "/v1/auth/passkeys/{passkey_id}",
    response_model=Passkey,
    response_model_by_alias=True,
    summary="Rename a passkey",
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def rename_passkey(passkey_id: PasskeyId, body: PasskeyRename, claims: ClaimsDep, context: AuthDep) -> Passkey:
    user = await flows.current_user(context, claims)
    return passkey_view(await passkeys.rename(context, user, passkey_id, body.name))


@router.delete(
    "/v1/auth/passkeys/{passkey_id}",
    status_code=204,
    summary="Delete a passkey",
    description="It can no longer log in (event passkey.removed); remove it from the device too.",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def delete_passkey(passkey_id: PasskeyId, claims: ClaimsDep, context: AuthDep, client: ClientDep) -> Response:
    user = await flows.current_user(context, claims)
    await passkeys.delete(context, user, passkey_id, client)
    return Response(status_code=204)
