"""The auth notices (already-registered, email-changed, password-changed) use the Stack's
`auth-<kind>` EmailTemplate when it has one, as the link emails do, else the built-in text."""

from __future__ import annotations

import asyncio

from stackyard.auth.mail import AuthMailer
from stackyard.email.contract import SendEmailRequest
from stackyard.resources.stack import AuthSettings


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[SendEmailRequest, str | None]] = []

    async def send(self, request: SendEmailRequest, idempotency_key: str | None = None) -> object:
        self.sent.append((request, idempotency_key))
        return None


def mailer(*templates: str) -> tuple[AuthMailer, Recorder]:
    recorder = Recorder()
    settings = AuthSettings.model_validate({"emailFrom": "auth@acme.dev", "appUrl": "https://app.acme.dev"})
    return AuthMailer(recorder, settings, frozenset(templates), "Acme"), recorder


def test_an_email_changed_notice_uses_its_template_with_the_new_address():
    auth_mail, recorder = mailer("auth-email-changed")
    asyncio.run(
        auth_mail.send_notice("email-changed", "old@acme.dev", key="usr_1-ab", name="Ana", new_email="new@acme.dev")
    )
    [(request, key)] = recorder.sent
    assert request.template is not None and request.template.name == "auth-email-changed"
    assert request.template.variables == {
        "email": "old@acme.dev",
        "name": "Ana",
        "appName": "Acme",
        "newEmail": "new@acme.dev",
    }
    assert request.subject is None and request.text is None
    assert request.tags == {"auth": "email-changed"} and key == "auth-email-changed-usr_1-ab"


def test_a_notice_without_a_template_has_the_built_in_text():
    auth_mail, recorder = mailer("auth-verify-email")
    asyncio.run(auth_mail.send_notice("password-changed", "ana@acme.dev", key="usr_1-1"))
    [(request, _)] = recorder.sent
    assert request.template is None
    assert request.subject == "Your password was changed"
    assert request.text is not None and "password of your account was changed" in request.text
    assert request.tags == {"auth": "password-changed"}


def test_a_link_email_still_uses_its_template():
    auth_mail, recorder = mailer("auth-magic-link")
    asyncio.run(auth_mail.send_link("magic-link", "ana@acme.dev", token="t0k", name=None, expires_in="15 minutes"))
    [(request, _)] = recorder.sent
    assert request.template is not None and request.template.variables["link"].endswith("/auth/magic-link?token=t0k")
    assert request.tags == {"auth": "magic-link"}
