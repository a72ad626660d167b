"""The problems the auth flows answer (RFC 9457 via `stackyard.problems.Problem`).

Details never say whether an email address has an account, and never hold a secret."""

from __future__ import annotations

import re

from ..problems import Conflict, Problem, ServiceUnavailable, TooManyRequests, UnprocessableContent


class InvalidCredentials(Problem):
    status, slug, title = 401, "invalid-credentials", "Invalid credentials"


class InvalidToken(Problem):
    """A missing, malformed, expired or revoked token (access, refresh or one-time)."""

    status, slug, title = 401, "invalid-token", "Invalid or expired token"

    def __init__(self, detail: str, **extensions: object) -> None:
        super().__init__(detail, **extensions)
        # A header is latin-1 and this one a quoted string: the detail may echo a token's
        # header (its alg), so anything but plain printable ASCII becomes "?".
        description = re.sub(r'[^\x20-\x7e]|["\\]', "?", detail[:120])
        self.headers["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{description}"'


class RefreshTokenReused(InvalidToken):
    """A refresh token presented after it was rotated: its session is revoked."""

    slug, title = "refresh-token-reused", "Refresh token reused; the session is revoked"


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Forbidden"


class EmailNotVerified(Forbidden):
    slug, title = "email-not-verified", "Email address not verified"


class AccountDisabled(Forbidden):
    slug, title = "account-disabled", "Account disabled"


class EmailTaken(Conflict):
    slug, title = "email-taken", "Email address already in use"


class InvalidEmail(UnprocessableContent):
    slug, title = "invalid-email", "Invalid email address"


class WeakPassword(UnprocessableContent):
    slug, title = "weak-password", "Password refused by the password policy"


class TooManyAttempts(TooManyRequests):
    """Too many failed attempts for an account or from an address; `Retry-After` says when."""

    slug, title = "too-many-attempts", "Too many attempts"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, retryAfter=retry_after)
        self.headers["Retry-After"] = str(retry_after)


class AuthNotConfigured(ServiceUnavailable):
    """Something the flow needs is not set up (the auth capability, signing keys, email)."""

    slug, title = "auth-not-configured", "Authentication not configured"


class SignupDisabled(Forbidden):
    slug, title = "signup-disabled", "Sign-up is closed"


class CsrfRefused(Forbidden):
    slug, title = "csrf", "Cross-site request refused"
