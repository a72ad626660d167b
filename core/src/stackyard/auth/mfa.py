"""TOTP multi-factor authentication (RFC 6238) with single-use recovery codes.

The factor an authenticator app gives: a 6-digit code from a shared secret and the time, in
30-second steps, HMAC-SHA-1 (what Google Authenticator, 1Password, Authy and the rest accept).

- Window: a code of the step before or after the current one is accepted (a clock off by up
  to 30 s, or a code typed as it rolls over); two steps away is refused.
- Replay: the step of the last accepted code is stored (`mfa.totp.lastStep`); a code of that
  step or an earlier one is refused, so a code works once, even inside its window. The check
  and the write are one conditional update, so two requests racing with one code cannot both
  pass.
- At rest the secret is encrypted with AES-256-GCM under the Stack's AUTH_ENCRYPTION_KEY,
  with the user id as associated data (a ciphertext copied to another user does not decrypt).
  Without the key, enrolment answers 503 (`AuthNotConfigured`).
- Recovery codes: 10 of them, shown once at confirmation (and at each regeneration), each 80
  random bits written as 16 base32 characters. Only SHA-256 hashes are stored. A fast hash is
  enough here, unlike for passwords: a slow hash protects low-entropy secrets against
  guessing, and 2^80 guesses are out of reach at any hash speed. The user id salts the hash,
  so one precomputation cannot serve every account. A code is removed when used (`$pull`
  conditioned on its presence: single use under concurrency too).

Flow: `enroll` (secret + otpauth:// URI, not active yet) -> `confirm` with a code (active;
`mfa.enabled`; recovery codes returned) -> `disable` with a current code or the password
(`mfa.disabled`). At login, the password step answers an MFA challenge instead of tokens and
`complete_mfa_login` turns the challenge and a code into a session."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pyotp
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..problems import Conflict, UnprocessableContent
from .errors import AuthNotConfigured, InvalidCredentials, InvalidToken

if TYPE_CHECKING:
    from .context import AuthContext
    from .sessions import ClientInfo, TokenPair
    from .users import UserRecord

TOTP_DIGITS = 6
TOTP_PERIOD = 30
TOTP_WINDOW = 1
"""Steps accepted either side of the current one."""
RECOVERY_CODE_COUNT = 10
RECOVERY_CODE_LENGTH = 16
"""Base32 characters: 80 bits."""
MFA_CHALLENGE = "mfa-challenge"
AMR_TOTP = "otp"
AMR_RECOVERY_CODE = "rcode"
"""The amr value of a recovery code: not in RFC 8176, which has no method for it; "otp"
would tell a relying party that the authenticator app was used when it was not."""
_CIPHER_VERSION = "v1"
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"


class InvalidCode(UnprocessableContent):
    """A TOTP code (or recovery code, or password) that does not prove the second factor,
    answered on routes where the user is already signed in."""

    slug, title = "invalid-mfa-code", "Invalid or used code"


class MfaAlreadyEnabled(Conflict):
    slug, title = "mfa-already-enabled", "Two-factor authentication already on"


class MfaNotEnabled(Conflict):
    slug, title = "mfa-not-enabled", "Two-factor authentication not on"


class MfaNotEnrolled(Conflict):
    slug, title = "mfa-not-enrolled", "No authenticator app enrolment to confirm"


# --- the pure parts -------------------------------------------------------------------------


def new_totp_secret() -> str:
    """160 random bits in base32, the length RFC 4226 recommends for HMAC-SHA-1."""
    return pyotp.random_base32(length=32)


def totp_step(at: datetime) -> int:
    return int(at.timestamp()) // TOTP_PERIOD


def totp_code(secret: str, step: int) -> str:
    """The code of `step` (what an authenticator app shows during that step)."""
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD).at(step * TOTP_PERIOD)


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The otpauth:// URI that authenticator apps read from a QR code."""
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD).provisioning_uri(
        name=account, issuer_name=issuer
    )


def matching_step(secret: str, code: str, at: datetime, last_step: int | None) -> int | None:
    """The step within the window whose code is `code` and that is later than `last_step`,
    or None. Every candidate is compared in constant time."""
    code = code.strip().replace(" ", "")
    if len(code) != TOTP_DIGITS or not code.isdigit():
        return None
    now = totp_step(at)
    found: int | None = None
    for step in range(now - TOTP_WINDOW, now + TOTP_WINDOW + 1):
        if hmac.compare_digest(totp_code(secret, step), code) and (last_step is None or step > last_step):
            found = step if found is None else found
    return found


def encrypt_secret(key: bytes, secret: str, user_id: str) -> str:
    """AES-256-GCM with a random 96-bit nonce, the user id as associated data."""
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, secret.encode(), user_id.encode())
    return f"{_CIPHER_VERSION}:" + base64.urlsafe_b64encode(nonce + sealed).decode()


def decrypt_secret(key: bytes, stored: str, user_id: str) -> str:
    """The secret; ValueError when the key, the user or the ciphertext does not match."""
    version, _, body = stored.partition(":")
    if version != _CIPHER_VERSION:
        raise ValueError("unknown TOTP secret encoding")
    raw = base64.urlsafe_b64decode(body)
    try:
        return AESGCM(key).decrypt(raw[:12], raw[12:], user_id.encode()).decode()
    except InvalidTag:
        raise ValueError("the TOTP secret does not decrypt with this key") from None


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """Codes such as `k7qm-2xwd-p4ta-9cfh` (lower-case base32, in groups of four)."""
    codes = []
    for _ in range(count):
        raw = "".join(secrets.choice(_BASE32) for _ in range(RECOVERY_CODE_LENGTH))
        codes.append("-".join(raw[i : i + 4] for i in range(0, RECOVERY_CODE_LENGTH, 4)))
    return codes


def normalise_recovery_code(code: str) -> str:
    """What the user typed, without separators and case: `K7QM 2XWD-p4ta9cfh` matches."""
    return re.sub(r"[\s-]", "", code).lower()


def recovery_code_hash(user_id: str, code: str) -> str:
    return hashlib.sha256(f"{user_id}:{normalise_recovery_code(code)}".encode()).hexdigest()


def looks_like_recovery_code(code: str) -> bool:
    plain = normalise_recovery_code(code)
    return len(plain) == RECOVERY_CODE_LENGTH and all(c in _BASE32 for c in plain)


def totp_issuer(ctx: AuthContext) -> str:
    """What the authenticator app shows as the account's issuer: spec.auth.passkeys.rpName
    when set to something other than the default, else the issuer's host."""
    name = ctx.settings.passkeys.rp_name
    if name and name != "stackyard":
        return name
    return urlsplit(ctx.issuer).hostname or name or "stackyard"


# --- the flows ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TotpEnrollment:
    secret: str
    uri: str
    issuer: str
    account: str


def _key(ctx: AuthContext) -> bytes:
    if ctx.encryption_key is None:
        raise AuthNotConfigured(
            "two-factor authentication needs an encryption key for its secrets (stack.auth.encryptionKey); "
            "the operator sets it in the Stack's credentials"
        )
    return ctx.encryption_key


def _totp(user: UserRecord) -> dict[str, Any]:
    mfa = user.raw.get("mfa") or {}
    totp = mfa.get("totp") or {}
    return totp if isinstance(totp, dict) else {}


async def enroll(ctx: AuthContext, user: UserRecord) -> TotpEnrollment:
    """A new secret, stored encrypted and unconfirmed (an earlier unconfirmed one is
    replaced); MFA is not on until `confirm`."""
    key = _key(ctx)
    if user.mfa_enabled:
        raise MfaAlreadyEnabled("two-factor authentication is already on; turn it off before enrolling again")
    secret = new_totp_secret()
    issuer = totp_issuer(ctx)
    await ctx.users.set_fields(
        user.id,
        {"mfa.totp": {"secret": encrypt_secret(key, secret, user.id), "confirmed": False, "lastStep": None}},
        now=ctx.clock(),
    )
    return TotpEnrollment(
        secret=secret, uri=provisioning_uri(secret, user.email, issuer), issuer=issuer, account=user.email
    )


async def _accept_totp(ctx: AuthContext, user: UserRecord, code: str, *, confirmed: bool) -> bool:
    """Whether `code` is a fresh code of the user's secret; if so its step is now the last
    used one (one conditional update: a code is accepted once, even by racing requests)."""
    totp = _totp(user)
    if not totp.get("secret") or bool(totp.get("confirmed")) is not confirmed:
        return False
    try:
        secret = decrypt_secret(_key(ctx), totp["secret"], user.id)
    except ValueError:
        return False
    last = totp.get("lastStep")
    step = matching_step(secret, code, ctx.clock(), last if isinstance(last, int) else None)
    if step is None:
        return False
    result = await ctx.users.collection.update_one(
        {
            "_id": user.id,
            "mfa.totp.secret": totp["secret"],
            "$or": [{"mfa.totp.lastStep": None}, {"mfa.totp.lastStep": {"$lt": step}}],
        },
        {"$set": {"mfa.totp.lastStep": step}},
    )
    return result.matched_count == 1


async def _use_recovery_code(ctx: AuthContext, user: UserRecord, code: str) -> bool:
    if not looks_like_recovery_code(code):
        return False
    hashed = recovery_code_hash(user.id, code)
    result = await ctx.users.collection.update_one(
        {"_id": user.id, "mfa.recoveryCodes": hashed}, {"$pull": {"mfa.recoveryCodes": hashed}}
    )
    return result.matched_count == 1


async def _fresh(ctx: AuthContext, user: UserRecord) -> UserRecord:
    """The user as stored now (the record a request began with may predate a code's use)."""
    current = await ctx.users.by_id(user.id)
    if current is None:
        raise InvalidToken("the account no longer exists")
    return current


def _new_recovery_codes(user_id: str) -> tuple[list[str], list[str]]:
    codes = new_recovery_codes()
    return codes, [recovery_code_hash(user_id, c) for c in codes]


async def confirm(ctx: AuthContext, user: UserRecord, code: str, client: ClientInfo | None = None) -> list[str]:
    """Turn MFA on with a code from the enrolled secret; the recovery codes, shown once."""
    user = await _fresh(ctx, user)
    if user.mfa_enabled:
        raise MfaAlreadyEnabled("two-factor authentication is already on")
    if not _totp(user).get("secret"):
        raise MfaNotEnrolled("enrol first (POST /v1/auth/mfa/totp/enroll), then confirm with a code from the app")
    if not await _accept_totp(ctx, user, code, confirmed=False):
        await ctx.audit.record("mfa.failed", user_id=user.id, client=client, step="confirm")
        raise InvalidCode("the code does not match; check the authenticator app's clock and try the next code")
    codes, hashes = _new_recovery_codes(user.id)
    now = ctx.clock()
    await ctx.users.set_fields(
        user.id, {"mfa.totp.confirmed": True, "mfa.enabledAt": now, "mfa.recoveryCodes": hashes}, now=now
    )
    await ctx.audit.record("mfa.enabled", user_id=user.id, client=client, method="totp")
    return codes


async def _prove(
    ctx: AuthContext, user: UserRecord, *, code: str | None, password: str | None, client: ClientInfo | None, step: str
) -> None:
    """A signed-in user proves again who they are before an MFA change: a current TOTP code
    or the account's password. Failures count toward the account's lockout."""
    email = user.raw.get("emailNormalized") or user.email
    await ctx.attempts.check_account(email)
    proved = False
    if code:
        proved = await _accept_totp(ctx, user, code, confirmed=True)
    elif password and user.password_hash:
        proved, _ = await ctx.hasher.verify(password, user.password_hash)
    if not proved:
        await ctx.attempts.failed(email)
        await ctx.audit.record("mfa.failed", user_id=user.id, client=client, step=step)
        raise InvalidCode("a current code from the authenticator app (or the account's password) is needed")


async def disable(
    ctx: AuthContext,
    user: UserRecord,
    *,
    code: str | None = None,
    password: str | None = None,
    client: ClientInfo | None = None,
) -> None:
    """Turn MFA off: the secret and the recovery codes are deleted."""
    user = await _fresh(ctx, user)
    if not user.mfa_enabled:
        raise MfaNotEnabled("two-factor authentication is not on")
    await _prove(ctx, user, code=code, password=password, client=client, step="disable")
    await ctx.users.set_fields(user.id, {"mfa": {}}, now=ctx.clock())
    await ctx.audit.record("mfa.disabled", user_id=user.id, client=client, method="totp")


async def regenerate_recovery_codes(
    ctx: AuthContext,
    user: UserRecord,
    *,
    code: str | None = None,
    password: str | None = None,
    client: ClientInfo | None = None,
) -> list[str]:
    """Ten new recovery codes; the old ones stop working."""
    user = await _fresh(ctx, user)
    if not user.mfa_enabled:
        raise MfaNotEnabled("two-factor authentication is not on")
    await _prove(ctx, user, code=code, password=password, client=client, step="recovery-codes")
    codes, hashes = _new_recovery_codes(user.id)
    await ctx.users.set_fields(user.id, {"mfa.recoveryCodes": hashes}, now=ctx.clock())
    await ctx.audit.record("mfa.recovery_codes_regenerated", user_id=user.id, client=client)
    return codes


def recovery_codes_left(user: UserRecord) -> int:
    codes = (user.raw.get("mfa") or {}).get("recoveryCodes") or []
    return len(codes)


async def verify_second_factor(ctx: AuthContext, user: UserRecord, code_or_recovery: str) -> str | None:
    """The amr value of the factor `code_or_recovery` proves ("otp" for an authenticator
    app's code, "rcode" for a recovery code, now used up), or None."""
    if not user.mfa_enabled:
        return None
    if await _accept_totp(ctx, user, code_or_recovery, confirmed=True):
        return AMR_TOTP
    if await _use_recovery_code(ctx, user, code_or_recovery):
        return AMR_RECOVERY_CODE
    return None


async def complete_mfa_login(
    ctx: AuthContext, mfa_token: str, code: str, client: ClientInfo, *, session_kind: str = ""
) -> TokenPair:
    """The login's second step: the MFA challenge the password step answered, and a code; the
    session is of `session_kind` ("op": the OpenID Provider's browser session).

    The challenge stays usable after a wrong code (a typo does not send the user back to the
    password), but every wrong code counts toward the account's lockout and the client's IP
    budget, and is recorded as `mfa.failed`; the challenge is spent when a code is accepted."""
    await ctx.attempts.check_ip(client.ip)
    challenge = await ctx.onetime.peek(MFA_CHALLENGE, mfa_token)
    if challenge is None:
        raise InvalidToken("the MFA challenge is unknown, expired or used; log in again")
    user = await ctx.users.by_id(str(challenge.get("user")))
    if user is None or user.disabled:
        raise InvalidToken("the MFA challenge is unknown, expired or used; log in again")
    email = user.raw.get("emailNormalized") or user.email
    await ctx.attempts.check_account(email)
    method = await verify_second_factor(ctx, user, code)
    if method is None:
        locked = await ctx.attempts.failed(email)
        await ctx.audit.record("mfa.failed", user_id=user.id, client=client, step="login", locked=locked)
        raise InvalidCredentials("the code is wrong or was already used")
    if await ctx.onetime.consume(MFA_CHALLENGE, mfa_token) is None:
        raise InvalidToken("the MFA challenge is unknown, expired or used; log in again")
    await ctx.attempts.succeeded(email)
    first = challenge.get("amr") or ["pwd"]
    amr = [*(first if isinstance(first, list) else [first]), method]
    await ctx.audit.record("login.succeeded", user_id=user.id, client=client, method=method, amr=amr)
    return await ctx.sessions.start(user, client, amr=amr, kind=session_kind)
