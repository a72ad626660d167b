"""`AsyncStackyard.auth`: sign-up, login and the emailed-link flows; `with_token` for the
calls a user makes with their access token. What each call sends is in `auth_calls`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stackyard.auth.contract import (
    Accepted,
    JsonWebKeySet,
    Me,
    MfaRequired,
    OpenIdConfiguration,
    Session,
    SessionView,
    User,
)
from stackyard.auth.contract_mfa import Passkey, PasskeyOptions, TotpEnrollment
from stackyard.auth.contract_oauth import IdentityView, ProviderInfo

from . import account_calls, auth_calls
from .admin_async import AsyncAuthAdmin
from .auth_calls import ProfileLike, TokenLike
from .orgs_async import AsyncOrgs

if TYPE_CHECKING:
    from .async_client import AsyncStackyard


class AsyncAuth:
    """The calls anyone may make; `with_token(session)` for those of a logged-in user;
    `admin` for the admin API (with the client's admin key)."""

    def __init__(self, client: AsyncStackyard, admin_key: str | None = None) -> None:
        self._client = client
        self.admin = AsyncAuthAdmin(client, admin_key)

    def __repr__(self) -> str:
        return f"AsyncAuth({self._client.base_url!r})"

    async def sign_up(
        self,
        email: str,
        password: str,
        *,
        profile: ProfileLike | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Accepted | Session:
        """Create an account. Accepted when the Stack verifies addresses (a link is mailed,
        and the answer is the same for an address already registered); a Session when it does
        not. WeakPassword, EmailTaken (without verification), SignupDisabled."""
        return (await self._client.send(auth_calls.sign_up(email, password, profile, metadata))).root

    async def verify_email(self, token: str) -> User:
        """Confirm the address with the token of the emailed link. InvalidToken."""
        return await self._client.send(auth_calls.verify_email(token))

    async def resend_verification(self, email: str) -> Accepted:
        return await self._client.send(auth_calls.resend_verification(email))

    async def login(self, email: str, password: str) -> Session | MfaRequired:
        """A Session, or an MfaRequired challenge when the account has a second factor
        (finish with `login_mfa`). InvalidCredentials, EmailNotVerified, AccountDisabled,
        TooManyAttempts (with `retry_after`); none of them is retried."""
        return (await self._client.send(auth_calls.login(email, password))).root

    async def login_mfa(self, challenge: str | MfaRequired, code: str) -> Session:
        """Finish a login with a code from the authenticator app, or a recovery code."""
        return await self._client.send(auth_calls.login_mfa(challenge, code))

    async def refresh(self, refresh_token: str | Session) -> Session:
        """A new access token and a new refresh token; the old refresh token stops working.
        RefreshTokenReused when it had already been used: the session is revoked."""
        return await self._client.send(auth_calls.refresh(refresh_token))

    async def forgot_password(self, email: str) -> Accepted:
        return await self._client.send(auth_calls.forgot_password(email))

    async def reset_password(self, token: str, password: str) -> None:
        """Set a new password with the token of the emailed link; every session ends."""
        await self._client.send(auth_calls.reset_password(token, password))

    async def confirm_email_change(self, token: str) -> User:
        return await self._client.send(auth_calls.confirm_email_change(token))

    async def magic_link(self, email: str) -> Accepted:
        return await self._client.send(auth_calls.magic_link(email))

    async def verify_magic_link(self, token: str) -> Session | MfaRequired:
        return (await self._client.send(auth_calls.verify_magic_link(token))).root

    async def oauth_providers(self) -> list[ProviderInfo]:
        """The IdentityProviders a login page offers (its buttons). The login itself is a
        browser's round trip (/v1/auth/oauth/{provider}/authorize), which ends at the app's
        URL with a one-time code: `oauth_exchange` turns it into a session."""
        return (await self._client.send(account_calls.oauth_providers())).items

    async def oauth_exchange(self, code: str, code_verifier: str | None = None) -> Session | MfaRequired:
        """A Session (or an MfaRequired challenge) for the one-time code of an OAuth login;
        `code_verifier` when the app started it with a PKCE code_challenge. InvalidToken for
        a code used, expired or unknown; never retried."""
        return (await self._client.send(account_calls.oauth_exchange(code, code_verifier))).root

    async def passkey_login_options(self, email: str | None = None) -> PasskeyOptions:
        """The options of a passkey login, for a WebAuthn authenticator (navigator.credentials.get
        in the browser); `email` None: a discoverable (usernameless) login. Send the
        authenticator's credential and the `challenge_token` to `passkey_login`."""
        return await self._client.send(account_calls.passkey_login_options(email))

    async def passkey_login(self, challenge_token: str, credential: Mapping[str, Any]) -> Session | MfaRequired:
        """A Session for the credential the authenticator answered (PublicKeyCredential.toJSON()).
        InvalidCredentials when it does not verify; never retried."""
        return (await self._client.send(account_calls.passkey_login(challenge_token, credential))).root

    async def jwks(self) -> JsonWebKeySet:
        return await self._client.send(auth_calls.jwks())

    async def openid_configuration(self) -> OpenIdConfiguration:
        return await self._client.send(auth_calls.openid_configuration())

    def with_token(self, token: TokenLike) -> AsyncAccount:
        """The calls of the user whose access token (or Session) this is."""
        return AsyncAccount(self._client, auth_calls.access_token(token))


class AsyncAccount:
    """A logged-in user's calls, each sent with their access token. InvalidToken once the
    token has expired or its session has ended: refresh, then `with_token` the new one."""

    def __init__(self, client: AsyncStackyard, token: str) -> None:
        self._client = client
        self._token = token
        self.orgs = AsyncOrgs(client, token)

    def __repr__(self) -> str:
        return f"AsyncAccount({self._client.base_url!r})"

    async def me(self) -> Me:
        """Who the token says the user is (no database read)."""
        return await self._client.send(auth_calls.me(self._token))

    async def user(self) -> User:
        return await self._client.send(auth_calls.get_user(self._token))

    async def update_user(
        self, *, profile: ProfileLike | None = None, metadata: Mapping[str, Any] | None = None
    ) -> User:
        """Change the profile fields given (None clears one) and/or replace the metadata."""
        return await self._client.send(auth_calls.update_user(self._token, profile, metadata))

    async def logout(self) -> None:
        """End this session: its refresh token and access token stop working."""
        await self._client.send(auth_calls.logout(self._token))

    async def change_password(self, current_password: str | None, new_password: str) -> None:
        """Every other session of the account ends. InvalidCredentials, WeakPassword."""
        await self._client.send(auth_calls.change_password(self._token, current_password, new_password))

    async def change_email(self, new_email: str, password: str | None = None) -> Accepted:
        """Mail a confirmation link to the new address (`auth.confirm_email_change`)."""
        return await self._client.send(auth_calls.change_email(self._token, new_email, password))

    async def sessions(self) -> list[SessionView]:
        return (await self._client.send(auth_calls.list_sessions(self._token))).items

    async def revoke_session(self, session_id: str) -> None:
        await self._client.send(auth_calls.revoke_session(self._token, session_id))

    async def revoke_other_sessions(self) -> None:
        await self._client.send(auth_calls.revoke_other_sessions(self._token))

    async def enroll_totp(self) -> TotpEnrollment:
        """Start turning on a second factor: the secret (and its otpauth:// URI for a QR
        code) for an authenticator app. Nothing changes until `confirm_totp`."""
        return await self._client.send(account_calls.enroll_totp(self._token))

    async def confirm_totp(self, code: str) -> list[str]:
        """Turn the second factor on with a code the app shows; the answer is the recovery
        codes, shown this once."""
        return (await self._client.send(account_calls.confirm_totp(self._token, code))).recovery_codes

    async def disable_totp(self, *, code: str | None = None, password: str | None = None) -> None:
        """Turn the second factor off, with a current code or the password."""
        await self._client.send(account_calls.disable_totp(self._token, code, password))

    async def new_recovery_codes(self, *, code: str | None = None, password: str | None = None) -> list[str]:
        """New recovery codes (the old ones stop working), with a current code or the password."""
        answer = await self._client.send(account_calls.recovery_codes(self._token, code, password))
        return answer.recovery_codes

    async def passkey_register_options(self) -> PasskeyOptions:
        """The options to register a passkey, for a WebAuthn authenticator
        (navigator.credentials.create in the browser); then `register_passkey`."""
        return await self._client.send(account_calls.passkey_register_options(self._token))

    async def register_passkey(
        self, challenge_token: str, credential: Mapping[str, Any], *, name: str | None = None
    ) -> Passkey:
        """Store the credential the authenticator made (PublicKeyCredential.toJSON())."""
        return await self._client.send(account_calls.register_passkey(self._token, challenge_token, credential, name))

    async def passkeys(self) -> list[Passkey]:
        """The account's passkeys (registered from a browser with WebAuthn)."""
        return (await self._client.send(account_calls.list_passkeys(self._token))).items

    async def rename_passkey(self, passkey_id: str, name: str) -> Passkey:
        return await self._client.send(account_calls.rename_passkey(self._token, passkey_id, name))

    async def delete_passkey(self, passkey_id: str) -> None:
        await self._client.send(account_calls.delete_passkey(self._token, passkey_id))

    async def identities(self) -> list[IdentityView]:
        """The identity providers linked to the account (Google, GitHub, OIDC)."""
        return (await self._client.send(account_calls.list_identities(self._token))).items

    async def unlink_identity(self, provider: str) -> None:
        """Unlink a provider. Conflict when it is the account's only way to log in."""
        await self._client.send(account_calls.unlink_identity(self._token, provider))
