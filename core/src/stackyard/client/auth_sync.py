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

from . import auth_calls
from .admin_sync import AuthAdmin
from .auth_calls import ProfileLike, TokenLike

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
