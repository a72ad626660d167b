"""Email addresses as senders and recipients write them: "Ana <ana@example.com>" or a bare
address, validated with email-validator (syntax, internationalised domains and local parts;
no DNS lookup unless asked) and normalised (the domain lower-cased, Unicode NFC).

`suppression_key` is what the suppression list matches on: the whole normalised address,
lower-cased (mailbox local parts are case-sensitive by the RFC, case-insensitive in practice,
and a suppression must not be dodged by a capital letter)."""

from __future__ import annotations

from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import getaddresses

from email_validator import EmailNotValidError, validate_email

MAX_RECIPIENTS = 50
"""To, cc and bcc together, as Resend, Postmark and SES allow per message."""


class InvalidAddress(ValueError):
    def __init__(self, field: str, value: str, reason: str) -> None:
        super().__init__(f"{field}: {value!r} is not a valid email address: {reason}")
        self.field = field
        self.value = value
        self.reason = reason


@dataclass(frozen=True)
class Mailbox:
    address: str
    """The normalised address."""
    name: str = ""

    def __str__(self) -> str:
        """For a header: the display name quoted or encoded as needed."""
        if not self.name:
            return self.address
        local, _, domain = self.address.rpartition("@")
        return str(Address(display_name=self.name, username=local, domain=domain))

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    @property
    def suppression_key(self) -> str:
        return self.address.lower()


def parse_mailbox(value: str, field: str = "address", *, check_deliverability: bool = False) -> Mailbox:
    """One mailbox from "Name <address>" or "address"; raises InvalidAddress saying why."""
    if "\n" in value or "\r" in value:
        raise InvalidAddress(field, value, "it contains a line break")
    if "<" not in value and "," not in value:
        name, address = "", value.strip()  # a bare address: email-validator says what is wrong with it
    else:
        parsed = getaddresses([value])
        if len(parsed) != 1 or not parsed[0][1]:
            raise InvalidAddress(field, value, "give one address, as name@example.com or Name <name@example.com>")
        name, address = parsed[0]
    try:
        valid = validate_email(address, check_deliverability=check_deliverability)
    except EmailNotValidError as exc:
        raise InvalidAddress(field, value, str(exc)) from None
    return Mailbox(valid.normalized, name.strip())


def parse_mailboxes(values: list[str], field: str, **options: bool) -> tuple[Mailbox, ...]:
    """Several mailboxes, each validated; a repeated address is kept once."""
    seen: dict[str, Mailbox] = {}
    for i, value in enumerate(values):
        mailbox = parse_mailbox(value, f"{field}[{i}]", **options)
        seen.setdefault(mailbox.suppression_key, mailbox)
    return tuple(seen.values())
