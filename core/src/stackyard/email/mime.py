"""The MIME form of an `OutgoingEmail`, as the SMTP provider sends it and SES's raw send takes it.

Text and HTML as multipart/alternative; inline attachments (with a Content-ID) related to the
HTML; the others attached; no Bcc header (the envelope carries those recipients); a
Message-ID made from the message's id and the sender's domain, the same on every attempt,
so that a receiving system can recognise a retried message. Custom headers may not replace
one that stackyard sets, nor hold a line break.
"""

from __future__ import annotations

import datetime as dt
import re
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime, parseaddr

from .message import Attachment, OutgoingEmail, Rejected

RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
    }
)


class _HeaderClasses(HeaderRegistry):
    """The standard header registry, making each header's class once: CPython 3.11's makes a
    new class for every header set or read, a fifth of the time a message takes to build."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


# 7bit: non-ASCII bodies get quoted-printable or base64, so no relay needs 8BITMIME
MIME_POLICY = policy.SMTP.clone(cte_type="7bit", header_factory=_HeaderClasses())
_MSG_ID_UNSAFE = re.compile(r"[^A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]")


def build_mime(message: OutgoingEmail, *, tag_headers: bool = False) -> EmailMessage:
    """The message as MIME; `Rejected` if it cannot be written (a reserved or broken header,
    a bad address). With `tag_headers`, each tag becomes an X-Stackyard-Tag-<name> header."""
    for name, value in message.headers.items():
        if "\r" in value or "\n" in value:
            raise Rejected(f"custom header {name!r} has a line break", code="InvalidHeader")
    try:
        return _build(message, tag_headers)
    except (ValueError, TypeError, IndexError) as exc:  # bad header value, address, content type
        raise Rejected(f"the message cannot be written as MIME: {exc}") from None


def _build(message: OutgoingEmail, tag_headers: bool) -> EmailMessage:
    msg = EmailMessage(policy=MIME_POLICY)
    msg["From"] = message.sender
    if message.to:
        msg["To"] = ", ".join(message.to)
    if message.cc:
        msg["Cc"] = ", ".join(message.cc)
    if message.reply_to:
        msg["Reply-To"] = ", ".join(message.reply_to)
    msg["Subject"] = message.subject
    msg["Date"] = format_datetime(dt.datetime.now(dt.UTC), usegmt=True)
    msg["Message-ID"] = message_id(message)
    for name, value in message.headers.items():
        if name.strip().lower() in RESERVED_HEADERS:
            raise ValueError(f"header {name!r} is set by the sender, not by custom headers")
        msg[name] = value
    if tag_headers:
        for tag, value in message.tags.items():
            msg[f"X-Stackyard-Tag-{_header_token(tag)}"] = value

    inline = [a for a in message.attachments if a.content_id is not None and message.html is not None]
    attached = [a for a in message.attachments if a not in inline]
    if message.text is not None or message.html is None:
        msg.set_content(message.text or "", subtype="plain", charset="utf-8")
        if message.html is not None:
            msg.add_alternative(message.html, subtype="html", charset="utf-8")
    else:
        msg.set_content(message.html, subtype="html", charset="utf-8")
    if inline:
        html_part = _html_part(msg)
        for attachment in inline:
            maintype, subtype = _content_type(attachment)
            html_part.add_related(
                attachment.content,
                maintype,
                subtype,
                cid=f"<{attachment.content_id}>",
                disposition="inline",
                filename=attachment.filename,
            )
    for attachment in attached:
        maintype, subtype = _content_type(attachment)
        cid = f"<{attachment.content_id}>" if attachment.content_id else None
        msg.add_attachment(attachment.content, maintype, subtype, filename=attachment.filename, cid=cid)
    return msg


def message_id(message: OutgoingEmail) -> str:
    domain = parseaddr(message.sender)[1].rpartition("@")[2] or "stackyard.invalid"
    return f"<{_MSG_ID_UNSAFE.sub('-', message.id)}@{domain}>"


def _header_token(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", name)


def _content_type(attachment: Attachment) -> tuple[str, str]:
    maintype, _, subtype = attachment.content_type.partition("/")
    if not maintype or not subtype or "/" in subtype:
        return "application", "octet-stream"
    return maintype.strip().lower(), subtype.strip().lower()


def _html_part(msg: EmailMessage) -> MIMEPart:
    if msg.get_content_type() == "text/html":
        return msg
    return next(p for p in msg.iter_parts() if p.get_content_type() == "text/html")
