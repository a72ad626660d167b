"""`Stackyard.auth`: sign-up, login and the emailed-link flows; `with_token` for the
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
from .admin_sync import AuthAdmin
from .auth_calls import ProfileLike, TokenLike
from .orgs_sync import Orgs

if TYPE_CHECKING:
    from .sync_client import Stackyard


class Auth:
    """The calls anyone may make; `with_token(session)` for those of a logged-in user;
    `admin` for the admin API (with the client's admin key)."""

    def __init__(self, client: Stackyard, admin_key: str | None = None) -> None:
        self._client = client
        self.admin = AuthAdmin(client, admin_key)

    def __repr__(self) -> str:
        return f"Auth({self._client.base_url!r})"

    def sign_up(
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
        return (self._client.send(auth_calls.sign_up(email, password, profile, metadata))).root

    def verify_email(self, token: str) -> User:
        """Confirm the address with the token of the emailed link. InvalidToken."""
        return self._client.send(auth_calls.verify_email(token))

    def resend_verification(self, email: str) -> Accepted:
        return self._client.send(auth_calls.resend_verification(email))

    def login(self, email: str, password: str) -> Session | MfaRequired:
        """A Session, or an MfaRequired challenge when the account has a second factor
        (finish with `login_mfa`). InvalidCredentials, EmailNotVerified, AccountDisabled,
        TooManyAttempts (with `retry_after`); none of them is retried."""
        return (self._client.send(auth_calls.login(email, password))).root

    def login_mfa(self, challenge: str | MfaRequired, code: str) -> Session:
        """Finish a login with a code from the authenticator app, or a recovery code."""
        return self._client.send(auth_calls.login_mfa(challenge, code))

    def refresh(self, refresh_token: str | Session) -> Session:
        """A new access token and a new refresh token; the old refresh token stops working.
        RefreshTokenReused when it had already been used: the session is revoked."""
        return self._client.send(auth_calls.refresh(refresh_token))

    def forgot_password(self, email: str) -> Accepted:
        return self._client.send(auth_calls.forgot_password(email))

    def reset_password(self, token: str, password: str) -> None:
        """Set a new password with the token of the emailed link; every session ends."""
        self._client.send(auth_calls.reset_password(token, password))

    def confirm_email_change(self, token: str) -> User:
        return self._client.send(auth_calls.confirm_email_change(token))

    def magic_link(self, email: str) -> Accepted:
        return self._client.send(auth_calls.magic_link(email))

    def verify_magic_link(self, token: str) -> Session | MfaRequired:
        return (self._client.send(auth_calls.verify_magic_link(token))).root

    def oauth_providers(self) -> list[ProviderInfo]:
        """The IdentityProviders a login page offers (its buttons). The login itself is a
        browser's round trip (/v1/auth/oauth/{provider}/authorize), which ends at the app's
        URL with a one-time code: `oauth_exchange` turns it into a session."""
        return (self._client.send(account_calls.oauth_providers())).items

    def oauth_exchange(self, code: str, code_verifier: str | None = None) -> Session | MfaRequired:
        """A Session (or an MfaRequired challenge) for the one-time code of an OAuth login;
        `code_verifier` when the app started it with a PKCE code_challenge. InvalidToken for
        a code used, expired or unknown; never retried."""
        return (self._client.send(account_calls.oauth_exchange(code, code_verifier))).root

    def passkey_login_options(self, email: str | None = None) -> PasskeyOptions:
        """The options of a passkey login, for a WebAuthn authenticator (navigator.credentials.get
        in the browser); `email` None: a discoverable (usernameless) login. Send the
        authenticator's credential and the `challenge_token` to `passkey_login`."""
        return self._client.send(account_calls.passkey_login_options(email))

    def passkey_login(self, challenge_token: str, credential: Mapping[str, Any]) -> Session | MfaRequired:
        """A Session for the credential the authenticator answered (PublicKeyCredential.toJSON()).
        InvalidCredentials when it does not verify; never retried."""
        return (self._client.send(account_calls.passkey_login(challenge_token, credential))).root

    def jwks(self) -> JsonWebKeySet:
        return self._client.send(auth_calls.jwks())

    def openid_configuration(self) -> OpenIdConfiguration:
        return self._client.send(auth_calls.openid_configuration())

    def with_token(self, token: TokenLike) -> Account:
        """The calls of the user whose access token (or Session) this is."""
        return Account(self._client, auth_calls.access_token(token))


class Account:
    """A logged-in user's calls, each sent with their access token. InvalidToken once the
    token has expired or its session has ended: refresh, then `with_token` the new one."""

    def __init__(self, client: Stackyard, token: str) -> None:
        self._client = client
        self._token = token
        self.orgs = Orgs(client, token)

    def __repr__(self) -> str:
        return f"Account({self._client.base_url!r})"

    def me(self) -> Me:
        """Who the token says the user is (no database read)."""
        return self._client.send(auth_calls.me(self._token))

    def user(self) -> User:
        return self._client.send(auth_calls.get_user(self._token))

    def update_user(self, *, profile: ProfileLike | None = None, metadata: Mapping[str, Any] | None = None) -> User:
        """Change the profile fields given (None clears one) and/or replace the metadata."""
        return self._client.send(auth_calls.update_user(self._token, profile, metadata))

    def logout(self) -> None:
        """End this session: its refresh token and access token stop working."""
        self._client.send(auth_calls.logout(self._token))

    def change_password(self, current_password: str | None, new_password: str) -> None:
        """Every other session of the account ends. InvalidCredentials, WeakPassword."""
        self._client.send(auth_calls.change_password(self._token, current_password, new_password))

    def change_email(self, new_email: str, password: str | None = None) -> Accepted:
        """Mail a confirmation link to the new address (`auth.confirm_email_change`)."""
        return self._client.send(auth_calls.change_email(self._token, new_email, password))

    def sessions(self) -> list[SessionView]:
        return (self._client.send(auth_calls.list_sessions(self._token))).items

    def revoke_session(self, session_id: str) -> None:
        self._client.send(auth_calls.revoke_session(self._token, session_id))

    def revoke_other_sessions(self) -> None:
        self._client.send(auth_calls.revoke_other_sessions(self._token))

    def enroll_totp(self) -> TotpEnrollment:
        """Start turning on a second factor: the secret (and its otpauth:// URI for a QR
        code) for an authenticator app. Nothing changes until `confirm_totp`."""
        return self._client.send(account_calls.enroll_totp(self._token))

    def confirm_totp(self, code: str) -> list[str]:
        """Turn the second factor on with a code the app shows; the answer is the recovery
        codes, shown this once."""
        return (self._client.send(account_calls.confirm_totp(self._token, code))).recovery_codes

    def disable_totp(self, *, code: str | None = None, password: str | None = None) -> None:
        """Turn the second factor off, with a current code or the password."""
        self._client.send(account_calls.disable_totp(self._token, code, password))

    def new_recovery_codes(self, *, code: str | None = None, password: str | None = None) -> list[str]:
        """New recovery codes (the old ones stop working), with a current code or the password."""
        answer = self._client.send(account_calls.recovery_codes(self._token, code, password))
        return answer.recovery_codes

    def passkey_register_options(self) -> PasskeyOptions:
        """The options to register a passkey, for a WebAuthn authenticator
        (navigator.credentials.create in the browser); then `register_passkey`."""
        return self._client.send(account_calls.passkey_register_options(self._token))

    def register_passkey(
        self, challenge_token: str, credential: Mapping[str, Any], *, name: str | None = None
    ) -> Passkey:
        """Store the credential the authenticator made (PublicKeyCredential.toJSON())."""
        return self._client.send(account_calls.register_passkey(self._token, challenge_token, credential, name))

    def passkeys(self) -> list[Passkey]:
        """The account's passkeys (registered from a browser with WebAuthn)."""
        return (self._client.send(account_calls.list_passkeys(self._token))).items

    def rename_passkey(self, passkey_id: str, name: str) -> Passkey:
        return self._client.send(account_calls.rename_passkey(self._token, passkey_id, name))

    def delete_passkey(self, passkey_id: str) -> None:
        self._client.send(account_calls.delete_passkey(self._token, passkey_id))

    def identities(self) -> list[IdentityView]:
        """The identity providers linked to the account (Google, GitHub, OIDC)."""
        return (self._client.send(account_calls.list_identities(self._token))).items

    def unlink_identity(self, provider: str) -> None:
        """Unlink a provider. Conflict when it is the account's only way to log in."""
        self._client.send(account_calls.unlink_identity(self._token, provider))
