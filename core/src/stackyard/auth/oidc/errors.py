"""Errors of the OpenID Provider's protocol endpoints, as RFC 6749 §5.2 and OpenID Connect
Core §3.1.2.6 define them: a code (`invalid_grant`, `login_required`...) and a description
for the developer. They are not problem+json: client libraries read `error`.

- `OAuthError`: answered as JSON by the token, introspection and revocation endpoints, or
  sent back to the client's redirect URI by the authorize endpoint (`authorize.error_response`).
- `BearerError`: the userinfo endpoint's answer to a bad access token (RFC 6750 §3).
- `InvalidClientOrRedirect`: an authorization request that must not be redirected (unknown or
  disabled client, redirect URI not registered): the api shows an HTML error page.

Descriptions never hold a secret or a token."""

from __future__ import annotations

import re

INVALID_REQUEST = "invalid_request"
INVALID_CLIENT = "invalid_client"
INVALID_GRANT = "invalid_grant"
UNAUTHORIZED_CLIENT = "unauthorized_client"
UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"
INVALID_SCOPE = "invalid_scope"
ACCESS_DENIED = "access_denied"
UNSUPPORTED_RESPONSE_TYPE = "unsupported_response_type"
SERVER_ERROR = "server_error"
TEMPORARILY_UNAVAILABLE = "temporarily_unavailable"
LOGIN_REQUIRED = "login_required"
CONSENT_REQUIRED = "consent_required"
INTERACTION_REQUIRED = "interaction_required"
INVALID_TOKEN = "invalid_token"
INSUFFICIENT_SCOPE = "insufficient_scope"
UNSUPPORTED_TOKEN_TYPE = "unsupported_token_type"


def _header_text(text: str) -> str:
    # A header value is latin-1 and this one a quoted string.
    return re.sub(r'[^\x20-\x7e]|["\\]', "?", text[:200])


class OAuthError(Exception):
    """An RFC 6749 error: `error` (the code), `description` (for the developer), the HTTP
    `status` (400, or 401 for invalid_client and bad bearer tokens) and extra `headers`."""

    def __init__(self, error: str, description: str, status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, str]:
        """The JSON body: {"error", "error_description"}."""
        return {"error": self.error, "error_description": self.description}

    @classmethod
    def invalid_client(cls, description: str, *, basic: bool) -> OAuthError:
        """invalid_client: 401 with `WWW-Authenticate: Basic` when the client tried the
        Authorization header (RFC 6749 §5.2), else 400."""
        if basic:
            return cls(INVALID_CLIENT, description, 401, {"WWW-Authenticate": 'Basic realm="oauth2", charset="UTF-8"'})
        return cls(INVALID_CLIENT, description, 400)


class BearerError(OAuthError):
    """A protected resource's refusal (RFC 6750 §3): 401 invalid_token (missing, expired,
    revoked) or 403 insufficient_scope, with the `WWW-Authenticate: Bearer` header."""

    def __init__(self, error: str, description: str) -> None:
        status = 403 if error == INSUFFICIENT_SCOPE else 401
        header = f'Bearer error="{error}", error_description="{_header_text(description)}"'
        super().__init__(error, description, status, {"WWW-Authenticate": header})


class InvalidClientOrRedirect(Exception):
    """An authorization request whose client or redirect URI cannot be trusted: unknown or
    disabled client_id, or a redirect_uri not registered. Never redirected (that would make
    the provider an open redirector); the api shows `title` and `description` on an HTML page."""

    def __init__(self, description: str, title: str = "This sign-in link is not valid") -> None:
        super().__init__(description)
        self.title = title
        self.description = description
