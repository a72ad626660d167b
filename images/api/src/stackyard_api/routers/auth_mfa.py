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

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from pydantic import Field, StringConstraints, model_validator
from stackyard.auth import flows, mfa, passkeys
from stackyard.auth.contract import MfaRequired, Mode, Password, Session, Wire

from ..auth_deps import AuthDep, ClaimsDep, ClientDep
from ..errors import problem_responses
from .auth import login_answer, session_body

router = APIRouter(tags=["auth"])

Code = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ChallengeToken = Annotated[str, StringConstraints(min_length=1, max_length=200)]
PasskeyId = Annotated[str, Path(min_length=1, max_length=1400, pattern=r"^[A-Za-z0-9_-]+$")]
NO_STORE = {"Cache-Control": "no-store"}


# --- bodies ---------------------------------------------------------------------------------


class TotpEnrollment(Wire):
    """Show `otpauthUri` as a QR code (or `secret` for typing); then confirm with a code."""

    secret: str = Field(description="Base32 secret, for typing into the app by hand.")
    otpauth_uri: str = Field(description="otpauth://totp/... for a QR code.")
    issuer: str
    account: str
    algorithm: Literal["SHA1"] = "SHA1"
    digits: int = mfa.TOTP_DIGITS
    period: int = mfa.TOTP_PERIOD


class CodeRequest(Wire):
    model_config = Wire.model_config | {"json_schema_extra": {"examples": [{"code": "123456"}]}}
    code: Code = Field(description="The 6-digit code the authenticator app shows now.")


class ReauthRequest(Wire):
    """Proof for an MFA change: a current code from the app, or the account's password."""

    code: Code | None = None
    password: Password | None = None

    @model_validator(mode="after")
    def one_proof(self) -> ReauthRequest:
        if not self.code and not self.password:
            raise ValueError("give code (from the authenticator app) or password")
        return self


class RecoveryCodes(Wire):
    recovery_codes: list[str] = Field(
        description="Single-use codes for when the app is not at hand; shown only now, store them safely."
    )


class MfaLoginRequest(Wire):
    model_config = Wire.model_config | {
        "json_schema_extra": {"examples": [{"mfaToken": "from POST /v1/auth/login", "code": "123456"}]}
    }
    mfa_token: ChallengeToken = Field(description="mfaToken of the login's answer (mfaRequired).")
    code: Code = Field(description="A code from the authenticator app, or a recovery code.")
    mode: Mode = "bearer"


class PasskeyOptions(Wire):
    """Pass `publicKey` to navigator.credentials (after decoding its base64url fields, or with
    PublicKeyCredential.parseCreationOptionsFromJSON / parseRequestOptionsFromJSON), and send
    `challengeToken` back with the result."""

    challenge_token: str = Field(description="Send back with the verify call; single use, 5 minutes.")
    public_key: dict[str, Any] = Field(description="PublicKeyCredentialCreationOptions or RequestOptions as JSON.")


class PasskeyLoginOptionsRequest(Wire):
    email: Annotated[str, StringConstraints(min_length=3, max_length=320)] | None = Field(
        default=None, description="Omit for a discoverable (usernameless) login."
    )


class PasskeyRegisterRequest(Wire):
    challenge_token: ChallengeToken
    credential: dict[str, Any] = Field(description="The PublicKeyCredential, as PublicKeyCredential.toJSON() gives it.")
    name: Annotated[str, StringConstraints(max_length=100)] | None = Field(
        default=None, description="A name to tell it apart, e.g. 'MacBook Touch ID'."
    )


class PasskeyLoginRequest(Wire):
    challenge_token: ChallengeToken
    credential: dict[str, Any] = Field(description="The PublicKeyCredential, as PublicKeyCredential.toJSON() gives it.")
    mode: Mode = "bearer"


class Passkey(Wire):
    id: str = Field(description="The credential id (base64url).")
    name: str
    transports: list[str]
    aaguid: str | None = Field(description="The authenticator model's AAGUID (all zeros when it does not say).")
    backed_up: bool = Field(description="Synced to a cloud keychain (survives the loss of the device).")
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, info: passkeys.PasskeyInfo) -> Passkey:
        return cls(
            id=info.id,
            name=info.name,
            transports=info.transports,
            aaguid=info.aaguid,
            backed_up=info.backed_up,
            created_at=info.created_at,
            last_used_at=info.last_used_at,
        )


class PasskeyList(Wire):
    items: list[Passkey]


class PasskeyRename(Wire):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]


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
        secret=enrollment.secret, otpauth_uri=enrollment.uri, issuer=enrollment.issuer, account=enrollment.account
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
    responses=problem_responses(401, 403, 409, 422, 503),
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
    responses=problem_responses(401, 403, 409, 422, 429, 503),
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
    responses=problem_responses(401, 403, 409, 422, 429, 503),
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
    responses=problem_responses(401, 403, 422, 429, 503),
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
    return Passkey.of(info)


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
    responses=problem_responses(422, 503),
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
    return PasskeyList(items=[Passkey.of(p) for p in passkeys.list_passkeys(user)])


@router.patch(
    "/v1/auth/passkeys/{passkey_id}",
    response_model=Passkey,
    response_model_by_alias=True,
    summary="Rename a passkey",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def rename_passkey(passkey_id: PasskeyId, body: PasskeyRename, claims: ClaimsDep, context: AuthDep) -> Passkey:
    user = await flows.current_user(context, claims)
    return Passkey.of(await passkeys.rename(context, user, passkey_id, body.name))


@router.delete(
    "/v1/auth/passkeys/{passkey_id}",
    status_code=204,
    summary="Delete a passkey",
    description="It can no longer log in (event passkey.removed); remove it from the device too.",
    responses=problem_responses(401, 403, 404, 409),
)
async def delete_passkey(passkey_id: PasskeyId, claims: ClaimsDep, context: AuthDep, client: ClientDep) -> Response:
    user = await flows.current_user(context, claims)
    await passkeys.delete(context, user, passkey_id, client)
    return Response(status_code=204)
