"""The emails of the auth flows, sent through the email capability (as jobs, with
failover and the delivery log like any other message).

Each kind has a built-in subject and body; an `EmailTemplate` named `auth-<kind>` (for
example `auth-verify-email`) replaces it, with the variables link, email, name, expiresIn
and appName (the notices, which have no link: email, name, appName, and newEmail for
email-changed). Links point at your app (spec.auth.links or <appUrl>/auth/<flow>), which posts
the token back to the api: a link that acts on GET would be spent by mail scanners."""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from typing import Protocol

from pydantic.alias_generators import to_camel

from ..email.contract import SendEmailRequest, TemplateRef
from ..problems import Problem
from ..resources.stack import AuthSettings
from .onetime import token_hash

log = logging.getLogger(__name__)

KINDS = {
    # kind: (subject, what the link does, setting of AuthLinks, path under appUrl)
    "verify-email": ("Confirm your email address", "confirm your email address", "verify_email", "verify-email"),
    "reset-password": ("Reset your password", "choose a new password", "reset_password", "reset-password"),
    "magic-link": ("Your sign-in link", "sign in", "magic_link", "magic-link"),
    "change-email": (
        "Confirm your new email address",
        "confirm your new email address",
        "change_email",
        "change-email",
    ),
}
NOTICES = {
    "already-registered": (
        "You already have an account",
        "Someone tried to sign up with this address, which already has an account. If it was you, log in "
        "or reset your password. If not, you can ignore this message.",
    ),
    "email-changed": (
        "Your email address was changed",
        "The email address of your account was changed to {new_email}. If you did not do this, reset your "
        "password and contact support.",
    ),
    "password-changed": (
        "Your password was changed",
        "The password of your account was changed and your other sessions were ended. If you did not do this, "
        "reset your password now.",
    ),
}


class Sender(Protocol):
    async def send(self, request: SendEmailRequest, idempotency_key: str | None = None) -> object: ...


@dataclass
class AuthMailer:
    sender: Sender
    settings: AuthSettings
    templates: frozenset[str]
    app_name: str

    def link(self, kind: str, token: str) -> str:
        _, _, setting, path = KINDS[kind]
        template = getattr(self.settings.links, setting)
        if template:
            return str(template).replace("{token}", token)
        base = (self.settings.app_url or self.settings.issuer or "").rstrip("/")
        return f"{base}/auth/{path}?token={token}"

    async def send_link(
        self, kind: str, to: str, *, token: str, name: str | None, expires_in: str, link_template: str | None = None
    ) -> None:
        """`link_template` (a URL with {token}) replaces the Stack's link for this one mail (the
        OpenID Provider's hosted pages send their own magic-link callback)."""
        subject, action, _, _ = KINDS[kind]
        link = link_template.replace("{token}", token) if link_template else self.link(kind, token)
        variables = {"link": link, "email": to, "name": name or "", "expiresIn": expires_in, "appName": self.app_name}
        greeting = f"Hello {name}," if name else "Hello,"
        text = f"{greeting}\n\nOpen this link to {action}:\n{link}\n\nIt works once and expires in {expires_in}.\n"
        page = (
            f'<p>{html.escape(greeting)}</p><p><a href="{html.escape(link)}">'
            f"Click here to {html.escape(action)}</a>.</p>"
            f"<p>The link works once and expires in {html.escape(expires_in)}.</p>"
        )
        request = self._request(kind, to, variables, subject=subject, text=text, page=page)
        await self._send(request, f"auth-{kind}-{token_hash(token)[:32]}")

    async def send_notice(self, kind: str, to: str, *, key: str, name: str | None = None, **values: str) -> None:
        """A notice without a link; `values` fill its text (new_email) and reach an
        `auth-<kind>` template in camelCase (newEmail) next to email, name and appName."""
        subject, body = NOTICES[kind]
        text = body.format(**values)
        variables = {"email": to, "name": name or "", "appName": self.app_name} | {
            to_camel(k): v for k, v in values.items()
        }
        request = self._request(
            kind, to, variables, subject=subject, text=text + "\n", page=f"<p>{html.escape(text)}</p>"
        )
        await self._send(request, f"auth-{kind}-{key}")

    def _request(
        self, kind: str, to: str, variables: dict[str, str], *, subject: str, text: str, page: str
    ) -> SendEmailRequest:
        """The Stack's `auth-<kind>` EmailTemplate with the variables when it has one, else the
        built-in subject, text and HTML; tagged with the kind either way."""
        message: dict[str, object] = {"from": self.settings.email_from, "to": [to], "tags": {"auth": kind}}
        if f"auth-{kind}" in self.templates:
            message["template"] = TemplateRef(name=f"auth-{kind}", variables=variables)
        else:
            message |= {"subject": subject, "html": page, "text": text}
        return SendEmailRequest.model_validate(message)

    async def _send(self, request: SendEmailRequest, key: str) -> None:
        try:
            await self.sender.send(request, key)
        except Problem as exc:  # a suppressed address: the flow answers as usual, the log says why
            log.warning("auth email not sent: %s", exc.title)
