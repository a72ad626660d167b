"""Passkeys: WebAuthn registration and login, verified by py_webauthn.

- Relying party: spec.auth.passkeys.rpId (default: appUrl's host) and .origins (default:
  appUrl's origin); without either the ceremonies answer 503.
- Registration (a signed-in user): options exclude the user's passkeys, prefer a discoverable
  credential (residentKey "preferred") and user verification ("preferred"), accept EdDSA,
  ES256 and RS256, ask for no attestation. The verified credential is stored in the user's
  document: credential id, COSE public key, sign count, transports, AAGUID, a name.
- Login: options without allowCredentials (the browser offers the passkeys it holds for the
  RP: "discoverable", usernameless) or, given an email with passkeys, with that user's
  credentials. The credential id in the answer finds the user; the signature, the challenge,
  the origin and the RP id are verified, and a sign count that does not grow (a cloned
  authenticator) is refused, unless both counts are 0 (authenticators that keep no count).
- Challenges: 32 random bytes each, single use, held five minutes through `OneTimeTokens`
  (purpose "passkey-challenge"): the options answer a `challengeToken` that the verify call
  sends back; a challenge is spent by its first verification, good or bad.

A login with user verification (UV: a PIN or biometric on the device) is two factors in one
(amr ["webauthn"]) and skips TOTP. Without UV it proves possession only: an account with TOTP
on is then asked for its code, as after a password.

Sign counts are written with a compare-and-set on the credential's index in the array (the
MongoDB positional operator is not used: FerretDB 1.x lacks it); a concurrent use with the
same count loses and is refused."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import bytes_to_base64url, options_to_json_dict
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from ..problems import Conflict, NotFound, Problem, UnprocessableContent
from .errors import AccountDisabled, AuthNotConfigured, InvalidCredentials
from .flows import MfaChallenge, finish_first_factor
from .users import UserRecord, normalise_email

if TYPE_CHECKING:
    from .context import AuthContext
    from .sessions import ClientInfo, TokenPair

log = logging.getLogger(__name__)

PASSKEY_CHALLENGE = "passkey-challenge"
CHALLENGE_SECONDS = 300
MAX_PASSKEYS = 20
AMR_WEBAUTHN = "webauthn"
_KNOWN_TRANSPORTS = {t.value for t in AuthenticatorTransport}


class PasskeyChallengeInvalid(Problem):
    status, slug, title = 400, "passkey-challenge", "Passkey challenge unknown, expired or used"


class PasskeyRefused(UnprocessableContent):
    """A registration the relying party does not accept (wrong origin, RP id, challenge, ...)."""

    slug, title = "passkey-refused", "Passkey refused"


class PasskeyExists(Conflict):
    slug, title = "passkey-exists", "Passkey already registered"


class TooManyPasskeys(Conflict):
    slug, title = "too-many-passkeys", "Too many passkeys"


@dataclass(frozen=True)
class RelyingParty:
    id: str
    name: str
    origins: list[str]


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def relying_party(ctx: AuthContext) -> RelyingParty:
    """spec.auth.passkeys, with its defaults from appUrl."""
    settings = ctx.settings.passkeys
    app_url = ctx.settings.app_url
    rp_id = settings.rp_id or (urlsplit(app_url).hostname if app_url else None)
    if not rp_id:
        raise AuthNotConfigured("passkeys need spec.auth.passkeys.rpId or spec.auth.appUrl in the Stack")
    origins = list(settings.origins) or ([origin_of(app_url)] if app_url else [f"https://{rp_id}"])
    return RelyingParty(id=rp_id, name=settings.rp_name, origins=[o.rstrip("/") for o in origins])


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class PasskeyInfo:
    """A passkey as the API shows it (never its public key)."""

    id: str
    name: str
    transports: list[str]
    aaguid: str | None
    backed_up: bool
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, entry: dict[str, Any]) -> PasskeyInfo:
        return cls(
            id=entry["id"],
            name=entry.get("name") or "Passkey",
            transports=list(entry.get("transports") or []),
            aaguid=entry.get("aaguid"),
            backed_up=bool(entry.get("backedUp")),
            created_at=entry["createdAt"],
            last_used_at=entry.get("lastUsedAt"),
        )


def _passkeys(user: UserRecord) -> list[dict[str, Any]]:
    entries = user.raw.get("passkeys") or []
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)]


def _descriptors(entries: list[dict[str, Any]]) -> list[PublicKeyCredentialDescriptor]:
    return [
        PublicKeyCredentialDescriptor(
            id=b64url_decode(e["id"]),
            transports=[AuthenticatorTransport(t) for t in e.get("transports") or [] if t in _KNOWN_TRANSPORTS] or None,
        )
        for e in entries
    ]


def _response(credential: dict[str, Any]) -> dict[str, Any]:
    response = credential.get("response")
    return response if isinstance(response, dict) else {}


def _credential_id(credential: dict[str, Any]) -> str:
    raw = credential.get("rawId") or credential.get("id")
    if not isinstance(raw, str) or not raw or len(raw) > 1400:
        raise PasskeyRefused("the credential has no id")
    return raw


# --- registration ---------------------------------------------------------------------------


async def registration_options(ctx: AuthContext, user: UserRecord) -> tuple[str, dict[str, Any]]:
    """(challengeToken, PublicKeyCredentialCreationOptions as JSON) for navigator.credentials.create()."""
    rp = relying_party(ctx)
    existing = _passkeys(user)
    if len(existing) >= MAX_PASSKEYS:
        raise TooManyPasskeys(f"an account holds at most {MAX_PASSKEYS} passkeys; delete one first")
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_id=user.id.encode(),
        user_name=user.email,
        user_display_name=user.name or user.email,
        timeout=CHALLENGE_SECONDS * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=_descriptors(existing),
    )
    token = await ctx.onetime.issue(
        PASSKEY_CHALLENGE,
        {"ceremony": "register", "user": user.id, "challenge": bytes_to_base64url(options.challenge)},
        CHALLENGE_SECONDS,
    )
    return token, options_to_json_dict(options)


async def _challenge(ctx: AuthContext, token: str, ceremony: str) -> dict[str, Any]:
    subject = await ctx.onetime.consume(PASSKEY_CHALLENGE, token)
    if subject is None or subject.get("ceremony") != ceremony:
        raise PasskeyChallengeInvalid("the challenge is unknown, expired or already used; ask for new options")
    return subject


async def verify_registration(
    ctx: AuthContext,
    user: UserRecord,
    challenge_token: str,
    credential: dict[str, Any],
    name: str | None = None,
    client: ClientInfo | None = None,
) -> PasskeyInfo:
    """Store the passkey the browser created for the options of `challenge_token`."""
    rp = relying_party(ctx)
    subject = await _challenge(ctx, challenge_token, "register")
    if subject.get("user") != user.id:
        raise PasskeyChallengeInvalid("the challenge was issued to another account")
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=b64url_decode(subject["challenge"]),
            expected_rp_id=rp.id,
            expected_origin=rp.origins,
        )
    except WebAuthnException as exc:
        raise PasskeyRefused(f"the passkey was not accepted: {exc}") from None
    except Exception as exc:  # malformed CBOR, keys or encodings from a broken client
        log.info("unreadable passkey registration: %s", type(exc).__name__)
        raise PasskeyRefused("the passkey registration could not be read") from None
    credential_id = bytes_to_base64url(verified.credential_id)
    if await ctx.users.collection.find_one({"passkeys.id": credential_id}, {"_id": 1}):
        raise PasskeyExists("this passkey is already registered")
    fresh = await ctx.users.by_id(user.id)
    if fresh is None:
        raise NotFound("the account no longer exists")
    if len(_passkeys(fresh)) >= MAX_PASSKEYS:
        raise TooManyPasskeys(f"an account holds at most {MAX_PASSKEYS} passkeys; delete one first")
    reported = _response(credential).get("transports")
    transports = (
        [t for t in reported if isinstance(t, str) and t in _KNOWN_TRANSPORTS] if isinstance(reported, list) else []
    )
    now = ctx.clock()
    entry = {
        "id": credential_id,
        "publicKey": verified.credential_public_key,
        "signCount": verified.sign_count,
        "transports": transports,
        "name": (name or "").strip()[:100] or f"Passkey {len(_passkeys(fresh)) + 1}",
        "aaguid": verified.aaguid,
        "backedUp": verified.credential_backed_up,
        "userVerified": verified.user_verified,
        "createdAt": now,
        "lastUsedAt": None,
    }
    await ctx.users.collection.update_one({"_id": user.id}, {"$push": {"passkeys": entry}, "$set": {"updatedAt": now}})
    await ctx.audit.record("passkey.added", user_id=user.id, client=client, passkey=credential_id, name=entry["name"])
    return PasskeyInfo.of(entry)


# --- login ----------------------------------------------------------------------------------


async def authentication_options(ctx: AuthContext, email: str | None = None) -> tuple[str, dict[str, Any]]:
    """(challengeToken, PublicKeyCredentialRequestOptions as JSON) for navigator.credentials.get().

    Without an email, or for an address without passkeys, the options are discoverable (no
    allowCredentials). With an email whose account has passkeys, they list its credentials,
    and only that account can answer."""
    rp = relying_party(ctx)
    user: UserRecord | None = None
    if email:
        try:
            user = await ctx.users.by_email(normalise_email(email))
        except Problem:
            user = None
    entries = _passkeys(user) if user is not None and not user.disabled else []
    options = generate_authentication_options(
        rp_id=rp.id,
        timeout=CHALLENGE_SECONDS * 1000,
        allow_credentials=_descriptors(entries),
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    subject: dict[str, Any] = {"ceremony": "login", "challenge": bytes_to_base64url(options.challenge)}
    if entries and user is not None:
        subject["user"] = user.id
    token = await ctx.onetime.issue(PASSKEY_CHALLENGE, subject, CHALLENGE_SECONDS)
    return token, options_to_json_dict(options)


async def _refuse_login(ctx: AuthContext, client: ClientInfo, detail: str, user_id: str | None = None) -> Problem:
    await ctx.audit.record("login.failed", user_id=user_id, client=client, method=AMR_WEBAUTHN, reason=detail)
    return InvalidCredentials(f"the passkey was not accepted: {detail}")


@dataclass(frozen=True)
class PasskeyAssertion:
    """Who answered the challenge, and whether the authenticator verified them (UV)."""

    user: UserRecord
    passkey_id: str
    user_verified: bool


async def authenticate(
    ctx: AuthContext, challenge_token: str, credential: dict[str, Any], client: ClientInfo
) -> PasskeyAssertion:
    """The user whose passkey answered the challenge; its sign count and last use are stored.
    Refusals are `InvalidCredentials` (401) and `login.failed` events."""
    rp = relying_party(ctx)
    await ctx.attempts.check_ip(client.ip)
    subject = await _challenge(ctx, challenge_token, "login")
    credential_id = _credential_id(credential)
    doc = await ctx.users.collection.find_one({"passkeys.id": credential_id})
    if doc is None:
        raise await _refuse_login(ctx, client, "this passkey is not registered")
    user = UserRecord.from_document(doc)
    if subject.get("user") not in (None, user.id):
        raise await _refuse_login(ctx, client, "the passkey belongs to another account", user.id)
    handle = _response(credential).get("userHandle")
    if handle and (not isinstance(handle, str) or _b64url_text(handle) != user.id):
        raise await _refuse_login(ctx, client, "the user handle does not match the passkey", user.id)
    entries = _passkeys(user)
    index = next(i for i, e in enumerate(entries) if e["id"] == credential_id)
    entry = entries[index]
    stored_count = int(entry.get("signCount") or 0)
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=b64url_decode(subject["challenge"]),
            expected_rp_id=rp.id,
            expected_origin=rp.origins,
            credential_public_key=bytes(entry["publicKey"]),
            credential_current_sign_count=stored_count,
        )
    except WebAuthnException as exc:
        raise await _refuse_login(ctx, client, str(exc), user.id) from None
    except Exception as exc:
        log.info("unreadable passkey assertion: %s", type(exc).__name__)
        raise await _refuse_login(ctx, client, "the assertion could not be read", user.id) from None
    now = ctx.clock()
    # Compare-and-set on the entry's index: the array is unchanged there and the count is the
    # one verified against, else another login or a change came first.
    updated = await ctx.users.collection.update_one(
        {"_id": user.id, f"passkeys.{index}.id": credential_id, f"passkeys.{index}.signCount": stored_count},
        {"$set": {f"passkeys.{index}.signCount": verified.new_sign_count, f"passkeys.{index}.lastUsedAt": now}},
    )
    if updated.matched_count != 1:
        raise await _refuse_login(ctx, client, "the passkey was used concurrently; try again", user.id)
    return PasskeyAssertion(user=user, passkey_id=credential_id, user_verified=verified.user_verified)


def _b64url_text(value: str) -> str | None:
    try:
        return b64url_decode(value).decode()
    except ValueError:  # not base64url, or not UTF-8
        return None


async def login(
    ctx: AuthContext, challenge_token: str, credential: dict[str, Any], client: ClientInfo, *, session_kind: str = ""
) -> TokenPair | MfaChallenge:
    """A session (amr ["webauthn"]) from a passkey; without user verification an account with
    TOTP on is asked for its code (an MFA challenge, finished at POST /v1/auth/login/mfa).
    `session_kind` "op" makes it the OpenID Provider's browser session (the hosted pages)."""
    assertion = await authenticate(ctx, challenge_token, credential, client)
    user = assertion.user
    if user.disabled:
        raise AccountDisabled("this account is disabled")
    if user.mfa_enabled and not assertion.user_verified:
        return await finish_first_factor(ctx, user, client, AMR_WEBAUTHN, session_kind=session_kind)
    await ctx.audit.record(
        "login.succeeded", user_id=user.id, client=client, method=AMR_WEBAUTHN, passkey=assertion.passkey_id
    )
    return await ctx.sessions.start(user, client, [AMR_WEBAUTHN], kind=session_kind)


# --- management -----------------------------------------------------------------------------


def list_passkeys(user: UserRecord) -> list[PasskeyInfo]:
    return [PasskeyInfo.of(e) for e in _passkeys(user)]


async def rename(ctx: AuthContext, user: UserRecord, passkey_id: str, name: str) -> PasskeyInfo:
    for _ in range(3):
        fresh = await ctx.users.by_id(user.id)
        entries = _passkeys(fresh) if fresh else []
        index = next((i for i, e in enumerate(entries) if e["id"] == passkey_id), None)
        if index is None:
            raise NotFound("no passkey with this id on this account")
        clean = name.strip()[:100]
        if not clean:
            raise UnprocessableContent("name: must not be empty")
        result = await ctx.users.collection.update_one(
            {"_id": user.id, f"passkeys.{index}.id": passkey_id},
            {"$set": {f"passkeys.{index}.name": clean, "updatedAt": ctx.clock()}},
        )
        if result.matched_count == 1:
            return PasskeyInfo.of(entries[index] | {"name": clean})
    raise Conflict("the passkeys changed during the rename; try again")


async def delete(ctx: AuthContext, user: UserRecord, passkey_id: str, client: ClientInfo | None = None) -> None:
    """Remove a passkey (the array is rewritten without it, conditioned on the entry still
    being at its index: FerretDB 1.x ignores `$pull` with a document condition)."""
    for _ in range(3):
        fresh = await ctx.users.by_id(user.id)
        entries = _passkeys(fresh) if fresh else []
        index = next((i for i, e in enumerate(entries) if e["id"] == passkey_id), None)
        if index is None:
            raise NotFound("no passkey with this id on this account")
        raw_entries = (fresh.raw.get("passkeys") if fresh else None) or []
        remaining = [e for e in raw_entries if not (isinstance(e, dict) and e.get("id") == passkey_id)]
        result = await ctx.users.collection.update_one(
            {"_id": user.id, f"passkeys.{index}.id": passkey_id, "passkeys": {"$size": len(raw_entries)}},
            {"$set": {"passkeys": remaining, "updatedAt": ctx.clock()}},
        )
        if result.matched_count == 1:
            name = entries[index].get("name")
            await ctx.audit.record("passkey.removed", user_id=user.id, client=client, passkey=passkey_id, name=name)
            return
    raise Conflict("the passkeys changed during the removal; try again")
