"""The SMTP provider: sends an `OutgoingEmail` to any SMTP relay over pooled, reused connections.

One `SmtpSender` per EmailProvider of type smtp. It keeps up to `max_connections` open,
authenticated connections and hands each send one of them, so that a burst of sends costs
no TLS handshake or AUTH per message. A connection the server closed while idle is replaced
without the caller noticing; a send that fails before the server saw any of the message's
data is tried once more on a fresh connection.

How an outcome is classified (see `message` for what each kind means to the pipeline):

- 250 after the data: `Sent`, whose `provider_message_id` is the relay's queue id when its
  reply names one ("queued as ABC123"), else our Message-ID header.
- 530, 534, 535, 538 (authentication) at any step, a 5xx while connecting (EHLO, STARTTLS),
  a server without AUTH or STARTTLS when we need them, a certificate that does not verify:
  `ProviderMisconfigured`.
- 4xx at any step: `Retryable` (the status is the reply code).
- 5xx to MAIL, RCPT or the data: `Rejected` (bad sender or recipient, too large...). One
  refused recipient refuses the whole message: nothing is delivered to the others.
- refused or dropped connections, TLS errors, timeouts: `Retryable`.

`probe()` checks the relay without sending: a fresh connection (outside the pool), EHLO,
STARTTLS or TLS as configured, AUTH when a username is set, then QUIT. It raises the kinds a
send raises for the same faults.

Tags are not sent by default: SMTP has no provider-side tags, and a header would show them
to the recipient. With `tag_headers=True` each becomes an `X-Stackyard-Tag-<name>` header.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from typing import Literal

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPException,
    SMTPNotSupported,
    SMTPRecipientRefused,
    SMTPResponseException,
    SMTPServerDisconnected,
)

from .message import OutgoingEmail, ProviderMisconfigured, Rejected, Retryable, SendFailure, Sent
from .mime import MIME_POLICY as _POLICY
from .mime import build_mime
from .tracing import smtp_span

Security = Literal["starttls", "tls", "none"]

_AUTH_CODES = frozenset({530, 534, 535, 538})
_QUEUE_ID = re.compile(r"queued as\s+<?([^\s>]+)>?", re.IGNORECASE)


@dataclass(frozen=True)
class _Envelope:
    sender: str
    recipients: tuple[str, ...]
    data: bytes
    message_id: str


class _Failed(Exception):
    """A transaction step failed; `before_data` says the server saw none of the message's data."""

    def __init__(self, step: str, error: BaseException, *, before_data: bool) -> None:
        super().__init__(step)
        self.step = step
        self.error = error
        self.before_data = before_data


class SmtpSender:
    """Sends through one SMTP relay; call `aclose()` when done (or use `async with`)."""

    def __init__(
        self,
        *,
        host: str,
        port: int | None = None,
        security: Security = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        ca_file: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        provider: str = "smtp",
        max_connections: int = 4,
        local_hostname: str | None = None,
        tag_headers: bool = False,
    ) -> None:
        if security not in ("starttls", "tls", "none"):
            raise ValueError(f"security must be 'starttls', 'tls' or 'none', not {security!r}")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if (username is None) != (password is None):
            raise ValueError("username and password go together")
        self.host = host
        self.port = port if port is not None else {"starttls": 587, "tls": 465, "none": 25}[security]
        self.security: Security = security
        self.username = username
        self._password = password
        self.timeout = timeout
        self.provider = provider
        self.max_connections = max_connections
        self.local_hostname = local_hostname
        self.tag_headers = tag_headers
        self._tls_context = ssl_context
        if self._tls_context is None and security != "none":
            self._tls_context = ssl.create_default_context(cafile=ca_file)
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[aiosmtplib.SMTP] = []
        self._open: set[aiosmtplib.SMTP] = set()
        self._closed = False

    def __repr__(self) -> str:  # no password here
        return f"SmtpSender(provider={self.provider!r}, {self.security} {self.host}:{self.port})"

    async def __aenter__(self) -> SmtpSender:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def open_connections(self) -> int:
        return len(self._open)

    async def send(self, message: OutgoingEmail) -> Sent:
        """Deliver `message` to the relay; `Sent` or one of the `SendFailure` kinds, within `timeout`."""
        if self._closed:
            raise RuntimeError("SmtpSender is closed")
        envelope = self._envelope(message)
        with smtp_span(self.host, self.port):
            try:
                async with asyncio.timeout(self.timeout):
                    reply = await self._deliver(envelope)
            except TimeoutError:
                raise Retryable(f"{self._where}: no answer within {self.timeout:g}s", code="timeout") from None
        found = _QUEUE_ID.search(reply)
        return Sent(provider=self.provider, provider_message_id=found.group(1) if found else envelope.message_id)

    async def probe(self) -> None:
        """Connect, EHLO, STARTTLS or TLS, AUTH (as configured), then QUIT: the relay is
        reachable and takes our credentials. Raises a `SendFailure` kind as `send` does
        (`ProviderMisconfigured` for a refused AUTH or a bad certificate, `Retryable` for a
        refused connection or no answer within `timeout`). Uses one connection of its own,
        not one of the pool's."""
        if self._closed:
            raise RuntimeError("SmtpSender is closed")
        conn: aiosmtplib.SMTP | None = None
        try:
            async with asyncio.timeout(self.timeout):
                conn = await self._connect()
                if conn.is_ehlo_or_helo_needed:  # connect says EHLO only for STARTTLS or AUTH
                    try:
                        await conn.ehlo()
                    except (SMTPException, OSError) as exc:
                        raise self._classify(exc, "EHLO") from None
        except TimeoutError:
            if conn is not None:
                await self._discard(conn)
            raise Retryable(f"{self._where}: no answer within {self.timeout:g}s", code="timeout") from None
        except BaseException:
            if conn is not None:
                await self._discard(conn)
            raise
        await self._discard(conn, polite=True)  # QUIT

    async def aclose(self) -> None:
        """Close every connection (QUIT where the server still listens)."""
        self._closed = True
        connections, self._idle = list(self._open), []
        self._open.clear()
        for conn in connections:
            await self._discard(conn, polite=True)

    # the message

    def build(self, message: OutgoingEmail) -> EmailMessage:
        """The MIME message as sent (bcc only in the envelope): text and html as
        multipart/alternative, inline attachments next to the html, others attached."""
        return build_mime(message, tag_headers=self.tag_headers)

    def _envelope(self, message: OutgoingEmail) -> _Envelope:
        mime = self.build(message)
        sender = parseaddr(message.sender)[1]
        recipients = tuple(dict.fromkeys(addr for _, addr in getaddresses(list(message.recipients)) if addr))
        if not sender or not recipients:
            raise Rejected("the message needs a sender and at least one recipient")
        return _Envelope(sender, recipients, mime.as_bytes(policy=_POLICY), str(mime["Message-ID"]))

    # the transaction

    @property
    def _where(self) -> str:
        return f"SMTP {self.host}:{self.port}"

    async def _deliver(self, envelope: _Envelope) -> str:
        async with self._slots:
            conn, reused = await self._checkout()
            try:
                try:
                    reply = await self._transact(conn, envelope)
                except _Failed as failed:
                    if not (reused and failed.before_data and isinstance(failed.error, ConnectionError)):
                        raise
                    # the server dropped a connection we kept open: once more on a fresh one
                    await self._discard(conn)
                    conn, reused = await self._connect(), False
                    reply = await self._transact(conn, envelope)
            except _Failed as failed:
                await self._after_failure(conn, failed.error)
                raise self._classify(failed.error, failed.step) from None
            except BaseException:
                await self._discard(conn)
                raise
            self._checkin(conn)
            return reply

    async def _transact(self, conn: aiosmtplib.SMTP, envelope: _Envelope) -> str:
        step = "MAIL"
        try:
            await conn.mail(envelope.sender)
            step = "RCPT"
            for recipient in envelope.recipients:
                await conn.rcpt(recipient)
            step = "DATA"
            response = await conn.data(envelope.data)
        except (SMTPException, OSError) as exc:
            raise _Failed(step, exc, before_data=step != "DATA") from exc
        return response.message

    async def _after_failure(self, conn: aiosmtplib.SMTP, error: BaseException) -> None:
        """A refused command leaves the connection usable after RSET; anything else closes it."""
        if isinstance(error, SMTPResponseException) and error.code != 421 and conn.is_connected:
            try:
                await conn.rset()
            except (SMTPException, OSError):
                pass
            except BaseException:  # the send's timeout ran out during RSET
                await self._discard(conn)
                raise
            else:
                self._checkin(conn)
                return
        await self._discard(conn)

    # the pool

    async def _checkout(self) -> tuple[aiosmtplib.SMTP, bool]:
        while self._idle:
            conn = self._idle.pop()
            if conn.is_connected:
                return conn, True
            await self._discard(conn)
        return await self._connect(), False

    def _checkin(self, conn: aiosmtplib.SMTP) -> None:
        if self._closed or not conn.is_connected:
            self._open.discard(conn)
            conn.close()
        else:
            self._idle.append(conn)

    async def _connect(self) -> aiosmtplib.SMTP:
        conn = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self._password,
            local_hostname=self.local_hostname,
            timeout=self.timeout,
            use_tls=self.security == "tls",
            start_tls=self.security == "starttls",
            tls_context=self._tls_context,
        )
        try:
            await conn.connect()
        except (SMTPException, OSError) as exc:
            conn.close()
            raise self._classify(exc, "connect") from None
        except BaseException:
            conn.close()
            raise
        self._open.add(conn)
        return conn

    async def _discard(self, conn: aiosmtplib.SMTP, *, polite: bool = False) -> None:
        self._open.discard(conn)
        if polite and conn.is_connected:
            try:
                async with asyncio.timeout(min(self.timeout, 5.0)):
                    await conn.quit()
                return
            except (SMTPException, OSError, TimeoutError):
                pass
        conn.close()

    # outcomes

    def _classify(self, error: BaseException, step: str) -> SendFailure:
        where = self._where
        if _certificate_error(error) is not None:
            return ProviderMisconfigured(f"{where}: the server's TLS certificate does not verify", code="tls")
        if isinstance(error, SMTPResponseException):
            code, text = error.code, self._safe(error.message)
            said = f"{where} answered {code} to {step}: {text}"
            if code in _AUTH_CODES or isinstance(error, SMTPAuthenticationError):
                return ProviderMisconfigured(f"{said} (check the username and password)", status=code, code="auth")
            if 400 <= code < 500:
                return Retryable(said, status=code)
            if step in ("MAIL", "RCPT", "DATA"):
                code_name = "recipient" if isinstance(error, SMTPRecipientRefused) else None
                return Rejected(said, status=code, code=code_name)
            return ProviderMisconfigured(said, status=code)
        if isinstance(error, SMTPNotSupported) or (step == "connect" and type(error) is SMTPException):
            # the server lacks what the settings need: STARTTLS, AUTH
            return ProviderMisconfigured(f"{where}: {self._safe(str(error))}")
        if isinstance(error, SMTPServerDisconnected):
            return Retryable(f"{where}: the server closed the connection during {step}")
        if isinstance(error, ssl.SSLError):
            return Retryable(f"{where}: TLS failed during {step}: {self._safe(str(error))}")
        if isinstance(error, TimeoutError):
            return Retryable(f"{where}: timed out during {step}", code="timeout")
        return Retryable(f"{where}: {step} failed: {self._safe(str(error))}")

    def _safe(self, text: str) -> str:
        if self._password:
            text = text.replace(self._password, "***")
        return text


def _certificate_error(error: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
