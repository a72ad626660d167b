"""The second-factor and passkey API's request and response bodies (/v1/auth/mfa,
/v1/auth/login/mfa, /v1/auth/passkeys), shared by the api's router and the SDK."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from .contract import Email, Mode, Password, Wire

Code = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ChallengeToken = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class TotpEnrollment(Wire):
    """Show `otpauthUri` as a QR code (or `secret` for typing); then confirm with a code."""

    secret: str = Field(description="Base32 secret, for typing into the app by hand.")
    otpauth_uri: str = Field(description="otpauth://totp/... for a QR code.")
    issuer: str
    account: str
    algorithm: Literal["SHA1"] = "SHA1"
    digits: int
    period: int = Field(description="Seconds each code is valid for.")


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
    email: Email | None = Field(default=None, description="Omit for a discoverable (usernameless) login.")


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


class PasskeyList(Wire):
    items: list[Passkey]


class PasskeyRename(Wire):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
