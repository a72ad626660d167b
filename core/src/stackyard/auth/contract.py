"""The auth API's request and response bodies (camelCase on the wire), shared by the api
and the SDK."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

Email = Annotated[str, StringConstraints(min_length=3, max_length=320)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
Token = Annotated[str, StringConstraints(min_length=1, max_length=2048)]
Mode = Literal["bearer", "cookie"]

METADATA_MAX_BYTES = 8192
METADATA_MAX_DEPTH = 5
_INT64 = 2**63


def _check_metadata_value(value: Any, depth: int, where: str) -> None:
    if depth > METADATA_MAX_DEPTH:
        raise ValueError(f"{where}: nested deeper than {METADATA_MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not key or key.startswith("$") or "." in key or "\x00" in key or len(key) > 100:
                raise ValueError(
                    f"{where}: key {key[:40]!r} must be 1-100 characters without '.', NUL or a leading '$'"
                )
            _check_metadata_value(item, depth + 1, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, list):  # FerretDB, a supported store, refuses arrays in arrays
                raise ValueError(f"{where}[{index}]: a list directly in a list (wrap it in an object)")
            _check_metadata_value(item, depth + 1, f"{where}[{index}]")
    elif isinstance(value, bool) or value is None or isinstance(value, str):
        return
    elif isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise ValueError(f"{where}: integers must fit in 64 bits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: numbers must be finite")
    else:
        raise ValueError(f"{where}: not a JSON value")


def check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    """What MongoDB and FerretDB can store and the API can answer: JSON of bounded size and
    depth, keys without '.' or a leading '$', no list directly in a list, 64-bit integers,
    finite numbers."""
    _check_metadata_value(value, 1, "metadata")
    if len(json.dumps(value, ensure_ascii=False).encode()) > METADATA_MAX_BYTES:
        raise ValueError(f"metadata: at most {METADATA_MAX_BYTES} bytes of JSON")
    return value


Metadata = Annotated[dict[str, Any], AfterValidator(check_metadata)]


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_lone_surrogate(v) for v in value)
    return False


class Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        """JSON may escape lone UTF-16 surrogates ("\\ud800"); no text stored or compared is
        made of them, and MongoDB cannot store them: refuse them at the edge (422)."""
        if _has_lone_surrogate(data):
            raise ValueError("text must be valid Unicode (no lone surrogate code points)")
        return data


class Profile(Wire):
    name: str | None = Field(default=None, max_length=200)
    given_name: str | None = Field(default=None, max_length=100)
    family_name: str | None = Field(default=None, max_length=100)
    picture: str | None = Field(default=None, max_length=2000, pattern=r"^https://")
    locale: str | None = Field(default=None, max_length=35, pattern=r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")


class SignUpRequest(Wire):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": "ana@example.com", "password": "a long passphrase of yours"}]}
    )
    email: Email
    password: Password
    profile: Profile = Field(default_factory=Profile)
    metadata: Metadata = Field(default_factory=dict, max_length=50, description="Yours; the user may edit it.")
    mode: Mode = Field(default="bearer", description="cookie: session in HttpOnly cookies (when sign-up logs in).")


class Accepted(Wire):
    status: Literal["accepted"] = "accepted"
    detail: str


class LoginRequest(Wire):
    email: Email
    password: Password
    mode: Mode = "bearer"


class TokenRequest(Wire):
    token: Token


class RefreshRequest(Wire):
    refresh_token: Token | None = Field(default=None, description="Omit in cookie mode (the cookie carries it).")
    mode: Mode = "bearer"


class EmailRequest(Wire):
    email: Email


class MagicLinkVerify(Wire):
    token: Token
    mode: Mode = "bearer"


class ResetPasswordRequest(Wire):
    token: Token
    password: Password


class ChangePasswordRequest(Wire):
    current_password: Password | None = Field(default=None, description="Required when the account has a password.")
    new_password: Password


class ChangeEmailRequest(Wire):
    new_email: Email
    password: Password | None = Field(default=None, description="Required when the account has a password.")


class UpdateUserRequest(Wire):
    profile: Profile | None = None
    metadata: Metadata | None = Field(default=None, max_length=50)


class Session(Wire):
    """A login: tokens in bearer mode; in cookie mode the tokens are in cookies and only the
    CSRF token is here."""

    access_token: str | None = None
    refresh_token: str | None = None
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    session_id: str
    csrf_token: str | None = None


class MfaRequired(Wire):
    mfa_required: Literal[True] = True
    mfa_token: str
    methods: list[str]
    expires_in: int


class Me(Wire):
    """Who the access token says the caller is (no database read)."""

    id: str
    email: str | None
    email_verified: bool
    name: str | None
    session_id: str
    amr: list[str]
    orgs: dict[str, str]
    expires_at: datetime


class User(Wire):
    id: str
    email: str
    email_verified: bool
    profile: dict[str, Any]
    metadata: dict[str, Any]
    has_password: bool
    mfa_enabled: bool
    passkeys: int
    identities: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None = Field(default=None, description="Left out until the first login.")
    app_metadata: dict[str, Any] | None = None
    disabled: bool | None = None


class SessionView(Wire):
    id: str
    device: str
    ip: str | None
    user_agent: str | None
    amr: list[str]
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    current: bool


class SessionList(Wire):
    items: list[SessionView]


class JsonWebKey(BaseModel):
    """A public signing key (RFC 7517): Ed25519 (kty OKP, RFC 8037), P-256 (kty EC) or RSA
    (kty RSA, RFC 7518 §6.3), as the Stack's `signingAlgorithm` makes them."""

    kty: Literal["OKP", "EC", "RSA"]
    crv: Literal["Ed25519", "P-256"] | None = Field(default=None, description="OKP and EC keys only.")
    x: str | None = Field(default=None, description="OKP and EC keys only.")
    y: str | None = Field(default=None, description="EC keys only.")
    n: str | None = Field(default=None, description="RSA keys only: the modulus, base64url.")
    e: str | None = Field(default=None, description="RSA keys only: the public exponent, base64url.")
    kid: str
    alg: Literal["EdDSA", "ES256", "RS256"]
    use: Literal["sig"] = "sig"


class JsonWebKeySet(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "keys": [
                        {
                            "kty": "OKP",
                            "crv": "Ed25519",
                            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
                            "kid": "20260301-9f2c1a7b",
                            "alg": "EdDSA",
                            "use": "sig",
                        }
                    ]
                }
            ]
        }
    )
    keys: list[JsonWebKey]


class OpenIdConfiguration(BaseModel):
    """The discovery document (OpenID Connect Discovery 1.0) of the Stack's issuer; other
    parts of stackyard may add members (social login adds its endpoints)."""

    model_config = ConfigDict(extra="allow")
    issuer: str
    jwks_uri: str
    userinfo_endpoint: str
    token_endpoint: str
    response_types_supported: list[str]
    subject_types_supported: list[str]
    id_token_signing_alg_values_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    claims_supported: list[str]
