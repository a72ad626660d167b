"""The password and email-link flows: sign up, verify, log in, reset, change, magic link.

Each is a function of an AuthContext, so the api's router only translates HTTP. Answers
that could tell whether an address has an account (sign-up with email verification,
resend, forgot password, magic link) are the same either way, and an unknown address at
login costs the same argon2 work as a known one. Those four check what may be refused for
anyone (the per-IP budget, email being set up, the address's syntax, the password policy)
and hand the rest (looking the address up, making the account, sending the mail) to
`later`, which the api runs after answering: otherwise the answer's timing tells (a reset
mail took 15 ms more to queue than nothing)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..resources.base import duration_seconds
from .context import AuthContext
from .errors import (
    AccountDisabled,
    AuthNotConfigured,
    EmailNotVerified,
    EmailTaken,
    InvalidCredentials,
    InvalidToken,
    SignupDisabled,
)
from .mail import AuthMailer
from .passwords import check_policy
from .sessions import ClientInfo, TokenPair
from .tokens import AccessClaims
from .users import UserRecord, normalise_email

log = logging.getLogger(__name__)
MFA_CHALLENGE_SECONDS = 300
MFA_METHODS = ["totp", "recovery_code"]

Work = Callable[[], Awaitable[None]]
Later = Callable[[Work], None]
"""Runs a flow's remaining work after the answer (the api: in a task of its own)."""


async def _finish(later: Later | None, work: Work) -> None:
    if later is None:
        await work()
    else:
        later(work)


@dataclass(frozen=True)
class MfaChallenge:
    """Login's answer when the account has a second factor: finish at POST /v1/auth/login/mfa."""

    token: str
    methods: list[str]

    def body(self) -> dict[str, Any]:
        return {
            "mfaRequired": True,
            "mfaToken": self.token,
            "methods": self.methods,
            "expiresIn": MFA_CHALLENGE_SECONDS,
        }


def mailer(ctx: AuthContext, flow: str) -> AuthMailer:
    if ctx.mailer is None:
        raise AuthNotConfigured(
            f"{flow} sends an email: turn on the email capability, add an EmailProvider and set spec.auth.emailFrom"
        )
    return ctx.mailer


def human_duration(duration: str) -> str:
    seconds = int(duration_seconds(duration))
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = max(1, seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def password_stamp(user: UserRecord) -> str:
    """Changes whenever the password or the email address does: a reset link dies once the
    password changes, or once the address it was sent to is no longer the account's."""
    material = f"{user.password_hash or '-'}\n{normalise_email(user.email)}"
    return hashlib.sha256(material.encode()).hexdigest()[:16]


async def within_mail_budget(ctx: AuthContext, address: str) -> bool:
    """Whether one more auth email may go to `address` this hour (lockout.mailsPerAddress)."""
    if await ctx.attempts.mail_allowed(normalise_email(address)):
        return True
    log.warning("auth email not sent: the address had its hourly allowance (lockout.mailsPerAddress)")
    return False


async def send_verification(ctx: AuthContext, user: UserRecord, link_template: str | None = None) -> None:
    """The confirmation mail; `link_template` (a URL with {token}) replaces the Stack's link
    (the hosted pages send their own)."""
    settings = ctx.settings
    if not await within_mail_budget(ctx, user.email):
        return
    token = await ctx.onetime.issue(
        "verify-email",
        {"user": user.id, "email": normalise_email(user.email)},
        duration_seconds(settings.verification_token_lifetime),
    )
    await mailer(ctx, "email verification").send_link(
        "verify-email",
        user.email,
        token=token,
        name=user.name,
        expires_in=human_duration(settings.verification_token_lifetime),
        link_template=link_template,
    )


async def sign_up(
    ctx: AuthContext,
    email: str,
    password: str,
    client: ClientInfo,
    *,
    profile: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    later: Later | None = None,
    link_template: str | None = None,
    session_kind: str = "",
) -> TokenPair | None:
    """With email verification on, None (the same answer whether or not the address had an
    account: the owner of an existing one gets a notice; the mails go by `later`, the
    confirmation link by `link_template` when given); else the new session, of
    `session_kind` (EmailTaken for an address in use)."""
    settings = ctx.settings
    if not settings.allow_signup:
        raise SignupDisabled("sign-up is closed on this Stack; an admin creates accounts")
    await ctx.attempts.check_ip(client.ip)
    normalise_email(email)
    check_policy(password, settings.password_policy, email=email)

    async def create() -> UserRecord:
        password_hash = await ctx.hasher.hash(password)
        return await ctx.users.create(
            email, password_hash=password_hash, profile=profile, metadata=metadata, now=ctx.clock()
        )

    if not settings.require_email_verification:
        user = await create()
        await ctx.audit.record("user.created", user_id=user.id, client=client, method="password")
        if ctx.mailer is not None:
            await send_verification(ctx, user, link_template)
        return await ctx.sessions.start(user, client, ["pwd"], kind=session_kind)
    send = mailer(ctx, "sign-up")
    # The account exists when the answer goes (a login right after sign-up finds it); both
    # paths pay the same argon2 hash and insert, and only the mail waits for after the answer.
    try:
        user = await create()
    except EmailTaken:

        async def notify_owner() -> None:
            existing = await ctx.users.by_email(email)
            if existing is not None and await within_mail_budget(ctx, existing.email):
                await send.send_notice("already-registered", existing.email, key=existing.id, name=existing.name)

        await _finish(later, notify_owner)
        return None

    async def verify_new_account() -> None:
        await ctx.audit.record("user.created", user_id=user.id, client=client, method="password")
        await send_verification(ctx, user, link_template)

    await _finish(later, verify_new_account)
    return None


async def verify_email(ctx: AuthContext, token: str, client: ClientInfo) -> UserRecord:
    subject = await ctx.onetime.consume("verify-email", token)
    if subject is None:
        raise InvalidToken("the verification link is invalid, expired or already used")
    user = await ctx.users.by_id(subject["user"])
    if user is None or normalise_email(user.email) != subject["email"]:
        raise InvalidToken("the verification link no longer matches the account's email address")
    updated = await ctx.users.set_fields(user.id, {"emailVerified": True}, now=ctx.clock())
    await ctx.audit.record("email.verified", user_id=user.id, client=client, email=user.email)
    assert updated is not None
    return updated


async def resend_verification(
    ctx: AuthContext, email: str, client: ClientInfo, later: Later | None = None, *, link_template: str | None = None
) -> None:
    await ctx.attempts.check_ip(client.ip)
    mailer(ctx, "email verification")  # before the lookup: the answer must not depend on the address
    normalise_email(email)

    async def resend() -> None:
        user = await ctx.users.by_email(email)
        if user is not None and not user.email_verified and not user.disabled:
            await send_verification(ctx, user, link_template)

    await _finish(later, resend)


async def login(
    ctx: AuthContext, email: str, password: str, client: ClientInfo, *, session_kind: str = ""
) -> TokenPair | MfaChallenge:
    """A password login; `session_kind` "op" makes the session the OpenID Provider's browser
    session (the hosted login page; see `Sessions.start`)."""
    await ctx.attempts.check_ip(client.ip)
    normalised = normalise_email(email)
    await ctx.attempts.check_account(normalised)
    user = await ctx.users.by_email(normalised)
    if user is None or user.password_hash is None:
        await ctx.hasher.dummy_verify(password)
        ok, new_hash = False, None
    else:
        ok, new_hash = await ctx.hasher.verify(password, user.password_hash)
    if not ok or user is None:
        locked_for = await ctx.attempts.failed(normalised)
        await ctx.audit.record("login.failed", user_id=user.id if user else None, client=client, method="password")
        if locked_for and user is not None:
            await ctx.audit.record("login.locked", user_id=user.id, client=client, seconds=locked_for)
        raise InvalidCredentials("the email address or the password is wrong")
    await ctx.attempts.succeeded(normalised)
    if new_hash:
        await ctx.users.set_fields(user.id, {"passwordHash": new_hash}, now=ctx.clock())
    return await finish_first_factor(ctx, user, client, "pwd", session_kind=session_kind)


async def finish_first_factor(
    ctx: AuthContext, user: UserRecord, client: ClientInfo, method: str, *, session_kind: str = ""
) -> TokenPair | MfaChallenge:
    """After a password or an email link: refuse disabled and unverified accounts, ask for the
    second factor when the account has one, else start the session (of `session_kind`)."""
    if user.disabled:
        raise AccountDisabled("this account is disabled")
    if method == "pwd" and ctx.settings.require_email_verification and not user.email_verified:
        raise EmailNotVerified("confirm your email address first (POST /v1/auth/verify-email/resend sends a new link)")
    if user.mfa_enabled:
        token = await ctx.onetime.issue("mfa-challenge", {"user": user.id, "amr": [method]}, MFA_CHALLENGE_SECONDS)
        return MfaChallenge(token, MFA_METHODS)
    await ctx.audit.record("login.succeeded", user_id=user.id, client=client, method=method)
    return await ctx.sessions.start(user, client, [method], kind=session_kind)


async def forgot_password(
    ctx: AuthContext, email: str, client: ClientInfo, later: Later | None = None, *, link_template: str | None = None
) -> None:
    """A reset link for the address's account, if it has one (the same answer either way).
    `link_template` (a URL with {token}) is where the mail's link points instead of the app's
    (spec.auth.links.resetPassword): the OpenID Provider's hosted reset page."""
    await ctx.attempts.check_ip(client.ip)
    send = mailer(ctx, "password reset")
    normalise_email(email)

    async def send_reset_link() -> None:
        user = await ctx.users.by_email(email)
        if user is None or user.disabled or not await within_mail_budget(ctx, user.email):
            return
        lifetime = ctx.settings.reset_token_lifetime
        token = await ctx.onetime.issue(
            "reset-password", {"user": user.id, "stamp": password_stamp(user)}, duration_seconds(lifetime)
        )
        await send.send_link(
            "reset-password",
            user.email,
            token=token,
            name=user.name,
            expires_in=human_duration(lifetime),
            link_template=link_template,
        )

    await _finish(later, send_reset_link)


async def reset_password(ctx: AuthContext, token: str, new_password: str, client: ClientInfo) -> None:
    """A new password from a reset link; every session of the account ends."""
    subject = await ctx.onetime.peek("reset-password", token)
    user = await ctx.users.by_id(subject["user"]) if subject else None
    if subject is None or user is None or subject.get("stamp") != password_stamp(user):
        raise InvalidToken("the reset link is invalid, expired or already used")
    check_policy(new_password, ctx.settings.password_policy, email=user.email)
    if await ctx.onetime.consume("reset-password", token) is None:
        raise InvalidToken("the reset link is invalid, expired or already used")
    password_hash = await ctx.hasher.hash(new_password)
    # The link proved the mailbox is the user's: the address counts as verified.
    await ctx.users.set_fields(user.id, {"passwordHash": password_hash, "emailVerified": True}, now=ctx.clock())
    await ctx.attempts.succeeded(normalise_email(user.email))
    revoked = await ctx.sessions.revoke_all(user.id, "password reset", client=client)
    await ctx.audit.record("password.reset", user_id=user.id, client=client, sessionsRevoked=revoked)


async def current_user(ctx: AuthContext, claims: AccessClaims) -> UserRecord:
    user = await ctx.users.by_id(claims.sub)
    if user is None:
        raise InvalidToken("the token's account no longer exists")
    if user.disabled:
        raise AccountDisabled("this account is disabled")
    return user


async def change_password(
    ctx: AuthContext, claims: AccessClaims, current: str | None, new_password: str, client: ClientInfo
) -> None:
    """Needs the current password (when the account has one); ends every other session."""
    user = await current_user(ctx, claims)
    normalised = normalise_email(user.email)
    if user.password_hash is not None:
        await ctx.attempts.check_account(normalised)
        ok, _ = await ctx.hasher.verify(current or "", user.password_hash)
        if not ok:
            await ctx.attempts.failed(normalised)
            await ctx.audit.record("login.failed", user_id=user.id, client=client, method="password-change")
            raise InvalidCredentials("the current password is wrong")
    check_policy(new_password, ctx.settings.password_policy, email=user.email)
    await ctx.users.set_fields(user.id, {"passwordHash": await ctx.hasher.hash(new_password)}, now=ctx.clock())
    revoked = await ctx.sessions.revoke_all(user.id, "password changed", except_session=claims.sid, client=client)
    await ctx.audit.record("password.changed", user_id=user.id, client=client, sessionsRevoked=revoked)
    if ctx.mailer is not None:
        await ctx.mailer.send_notice(
            "password-changed", user.email, key=f"{user.id}-{ctx.clock().timestamp():.0f}", name=user.name
        )


async def request_email_change(
    ctx: AuthContext, claims: AccessClaims, new_email: str, password: str | None, client: ClientInfo
) -> None:
    """Sends a confirmation link to the new address; the change happens when it is opened."""
    user = await current_user(ctx, claims)
    if user.password_hash is not None:
        await ctx.attempts.check_account(normalise_email(user.email))
        ok, _ = await ctx.hasher.verify(password or "", user.password_hash)
        if not ok:
            await ctx.attempts.failed(normalise_email(user.email))
            raise InvalidCredentials("the password is wrong")
    normalised = normalise_email(new_email)
    if normalised == normalise_email(user.email):
        return
    if await ctx.users.by_email(normalised) is not None:
        raise EmailTaken("another account uses this email address")
    lifetime = ctx.settings.verification_token_lifetime
    token = await ctx.onetime.issue(
        "change-email", {"user": user.id, "email": new_email.strip()}, duration_seconds(lifetime)
    )
    await mailer(ctx, "changing the email address").send_link(
        "change-email", new_email.strip(), token=token, name=user.name, expires_in=human_duration(lifetime)
    )


async def confirm_email_change(ctx: AuthContext, token: str, client: ClientInfo) -> UserRecord:
    subject = await ctx.onetime.consume("change-email", token)
    user = await ctx.users.by_id(subject["user"]) if subject else None
    if subject is None or user is None:
        raise InvalidToken("the confirmation link is invalid, expired or already used")
    new_email = subject["email"]
    updated = await ctx.users.set_fields(
        user.id,
        {"email": new_email, "emailNormalized": normalise_email(new_email), "emailVerified": True},
        now=ctx.clock(),
    )
    assert updated is not None
    await ctx.audit.record("email.changed", user_id=user.id, client=client, old=user.email, new=new_email)
    if ctx.mailer is not None:
        await ctx.mailer.send_notice(
            "email-changed", user.email, key=f"{user.id}-{token[:8]}", name=user.name, new_email=new_email
        )
    return updated


async def request_magic_link(
    ctx: AuthContext, email: str, client: ClientInfo, later: Later | None = None, *, link_template: str | None = None
) -> None:
    """A sign-in link; for an unknown address (when sign-up is open) the account is made when
    the link is opened. The answer is the same either way. `link_template` (a URL with
    {token}) is where the mail's link points instead of the app's (spec.auth.links.magicLink):
    the OpenID Provider's hosted pages give their own callback."""
    await ctx.attempts.check_ip(client.ip)
    send = mailer(ctx, "magic-link login")
    normalise_email(email)

    async def send_sign_in_link() -> None:
        user = await ctx.users.by_email(email)
        if user is not None and user.disabled:
            return
        if user is None and not ctx.settings.allow_signup:
            return
        if not await within_mail_budget(ctx, email):
            return
        lifetime = ctx.settings.magic_link_lifetime
        subject = {"user": user.id, "email": normalise_email(user.email)} if user else {"email": email.strip()}
        token = await ctx.onetime.issue("magic-link", subject, duration_seconds(lifetime))
        await send.send_link(
            "magic-link",
            user.email if user else email.strip(),
            token=token,
            name=user.name if user else None,
            expires_in=human_duration(lifetime),
            link_template=link_template,
        )

    await _finish(later, send_sign_in_link)


async def verify_magic_link(
    ctx: AuthContext, token: str, client: ClientInfo, *, session_kind: str = ""
) -> TokenPair | MfaChallenge:
    """Signs in with a sign-in link (`session_kind` "op": the OpenID Provider's browser session)."""
    user = await magic_link_user(ctx, token, client)
    return await finish_first_factor(ctx, user, client, "email", session_kind=session_kind)


async def magic_link_address(ctx: AuthContext, token: str) -> str | None:
    """The address a sign-in link was sent to, without spending it; None when it is invalid,
    expired or used (a page can ask "continue as ...?" before the link is spent)."""
    subject = await ctx.onetime.peek("magic-link", token)
    email = subject.get("email") if subject else None
    return email if isinstance(email, str) else None


async def magic_link_user(ctx: AuthContext, token: str, client: ClientInfo) -> UserRecord:
    """Spends a sign-in link: the account it signs in (made now for a new address); no session
    yet (`finish_first_factor`, or the OpenID Provider's browser session, comes next)."""
    subject = await ctx.onetime.consume("magic-link", token)
    if subject is None:
        raise InvalidToken("the sign-in link is invalid, expired or already used")
    if "user" in subject:
        user = await ctx.users.by_id(subject["user"])
        if user is None:
            raise InvalidToken("the sign-in link's account no longer exists")
        if "email" in subject and normalise_email(user.email) != subject["email"]:
            raise InvalidToken("the sign-in link was sent to the account's former email address")
        if not user.email_verified:
            # The link proves the mailbox; the password and sessions made before anyone did
            # may be someone else's (account pre-hijacking: a sign-up with another's address).
            fields = {"emailVerified": True, "passwordHash": None}
            user = await ctx.users.set_fields(user.id, fields, now=ctx.clock()) or user
            await ctx.sessions.revoke_all(user.id, "email verified by a sign-in link", client=client)
    else:
        try:
            user = await ctx.users.create(subject["email"], email_verified=True, now=ctx.clock())
            await ctx.audit.record("user.created", user_id=user.id, client=client, method="magic-link")
        except EmailTaken:  # made since the link was sent
            found = await ctx.users.by_email(subject["email"])
            if found is None:
                raise
            user = found
    return user
