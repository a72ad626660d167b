"""A real SMTP server for tests: aiosmtpd in a background thread on a free loopback port.

    with SmtpSink(tls="starttls", auth={"app": "secret"}) as sink:
        ...  # send to 127.0.0.1:sink.port, trusting sink.ca_file
        received = sink.wait_for(1, timeout=5)

It records every message it accepts (envelope, parsed message, the connection it came on),
and can be told to answer the next commands with a failure (`fail_next`), to answer late
(`hang_next`) or to drop every open connection (`close_connections`), so that a client's
retries, timeouts and connection reuse can be tested against a server that speaks SMTP.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from .certs import CertificateAuthority
from .process import HarnessError, free_port

TlsMode = Literal["none", "starttls", "implicit"]
Stage = Literal["MAIL", "RCPT", "DATA"]


@dataclass(frozen=True)
class Received:
    """One message the sink accepted."""

    sender: str
    """The envelope sender (MAIL FROM)."""
    recipients: tuple[str, ...]
    """The envelope recipients (RCPT TO), bcc included."""
    message: EmailMessage
    raw: bytes
    connection: int
    """Which connection it came on: 1 for the first one a client opened, 2 for the next..."""
    username: str | None
    """Who authenticated on that connection, if AUTH was used."""


@dataclass
class _Failure:
    stage: Stage
    reply: str
    remaining: int


class _SinkSMTP(SMTP):
    connection_number = 0


class _Handler:
    """The aiosmtpd hooks; they run on the sink's thread."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if reply := await self.sink._injected("MAIL"):
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if reply := await self.sink._injected("RCPT"):
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if reply := await self.sink._injected("DATA"):
            return reply
        raw = envelope.original_content or b""
        if isinstance(envelope.content, bytes):
            raw = envelope.content
        parsed = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(parsed, EmailMessage)
        auth = session.auth_data
        username = None
        if isinstance(auth, LoginPassword):
            username = auth.login.decode()
        self.sink._record(
            Received(
                sender=envelope.mail_from or "",
                recipients=tuple(envelope.rcpt_tos),
                message=parsed,
                raw=raw,
                connection=getattr(server, "connection_number", 0),
                username=username,
            )
        )
        return "250 OK: queued"


class _Controller(Controller):
    def __init__(self, sink: SmtpSink, **kwargs: Any) -> None:
        super().__init__(_Handler(sink), **kwargs)
        self.sink = sink

    def factory(self) -> SMTP:
        with warnings.catch_warnings():  # AUTH without STARTTLS is what a test of tls='none' asks for
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
            server = _SinkSMTP(self.handler, **self.SMTP_kwargs)
        self.sink._opened(server)
        return server


class SmtpSink:
    """An SMTP server on 127.0.0.1 that keeps what it receives; a context manager."""

    def __init__(
        self,
        *,
        tls: TlsMode = "none",
        auth: dict[str, str] | None = None,
        idle_timeout: float = 300.0,
        data_size_limit: int | None = None,
        port: int | None = None,
        maildir: Path | None = None,
    ) -> None:
        """`port`: a fixed port (else a free one); `maildir`: also write each message
        received there, as <n>.eml (what `make up` shows a newcomer)."""
        if tls not in ("none", "starttls", "implicit"):
            raise ValueError(f"tls must be 'none', 'starttls' or 'implicit', not {tls!r}")
        self.tls: TlsMode = tls
        self.auth = dict(auth) if auth is not None else None
        self.idle_timeout = idle_timeout
        self.data_size_limit = data_size_limit
        self.host = "127.0.0.1"
        self.port = 0
        self.fixed_port = port
        self.maildir = maildir
        self.messages: list[Received] = []
        self._ca_file: Path | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._controller: _Controller | None = None
        self._changed = threading.Condition()
        self._failures: deque[_Failure] = deque()
        self._hangs: deque[float] = deque()
        self._servers: list[_SinkSMTP] = []
        self._connection_base = 0

    # lifecycle

    def start(self) -> SmtpSink:
        if self._controller is not None:
            return self
        server_context: ssl.SSLContext | None = None
        if self.tls != "none":
            self._tmp = tempfile.TemporaryDirectory(prefix="stackyard-smtp-")
            directory = Path(self._tmp.name)
            ca = CertificateAuthority("stackyard-harness-smtp-ca")
            self._ca_file = directory / "ca.crt"
            self._ca_file.write_bytes(ca.cert_pem)
            cert, key = ca.issue("localhost", server_names=["localhost"], server_ips=["127.0.0.1"]).write(
                directory, "smtp"
            )
            server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server_context.load_cert_chain(cert, key)
        kwargs: dict[str, Any] = {
            "hostname": self.host,
            "server_hostname": "localhost",
            "data_size_limit": self.data_size_limit,
            "timeout": self.idle_timeout,
            "ready_timeout": 10.0,
        }
        if self.tls == "starttls":
            kwargs.update(tls_context=server_context, require_starttls=True)
        elif self.tls == "implicit":
            kwargs.update(ssl_context=server_context)
        if self.auth is not None:
            kwargs.update(
                auth_required=True,
                auth_require_tls=self.tls == "starttls",  # implicit TLS is TLS from the first byte
                authenticator=self._authenticate,
            )
        last_error: Exception | None = None
        for _ in range(1 if self.fixed_port else 3):  # a free port can be taken between free_port() and bind
            self.port = self.fixed_port or free_port()
            controller = _Controller(self, port=self.port, **kwargs)
            try:
                controller.start()
            except Exception as exc:
                last_error = exc
                controller.stop(no_assert=True)
                continue
            self._controller = controller
            with self._changed:
                self._connection_base = len(self._servers)  # start() itself opened one to probe
            return self
        self._cleanup_files()
        raise HarnessError(f"the SMTP sink did not start on 127.0.0.1: {last_error}")

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop(no_assert=True)
        self._cleanup_files()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _cleanup_files(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # what clients need

    @property
    def ca_file(self) -> Path:
        """The PEM certificate a client trusts to verify this sink (tls 'starttls' or 'implicit')."""
        if self._ca_file is None:
            raise HarnessError("the SMTP sink has no certificate: it runs with tls='none' or is not started")
        return self._ca_file

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that trusts this sink's certificate."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    @property
    def connections(self) -> int:
        """How many connections clients have opened so far."""
        with self._changed:
            return len(self._servers) - self._connection_base

    # failure injection

    def fail_next(self, code: int, message: str = "injected failure", count: int = 1, *, at: Stage = "DATA") -> None:
        """Answer `code message` to the next `count` commands of stage `at` (DATA: the end of the data)."""
        with self._changed:
            self._failures.append(_Failure(at, f"{code} {message}", count))

    def hang_next(self, seconds: float) -> None:
        """Wait `seconds` before answering the next DATA (then answer it as usual)."""
        with self._changed:
            self._hangs.append(seconds)

    def close_connections(self) -> None:
        """Drop every open connection without a word, as a server that timed them out does."""
        controller = self._controller
        if controller is None:
            return
        done = threading.Event()

        def close_all() -> None:
            for server in self._servers:
                if server.transport is not None and not server.transport.is_closing():
                    server.transport.close()
            done.set()

        controller.loop.call_soon_threadsafe(close_all)
        done.wait(5)

    # received messages

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """The first `count` messages, once that many arrived; HarnessError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise HarnessError(f"the SMTP sink got {len(self.messages)} messages, not {count}, in {timeout}s")
                self._changed.wait(left)
            return list(self.messages[:count])

    def clear(self) -> None:
        """Forget the received messages and pending failures (between tests)."""
        with self._changed:
            self.messages.clear()
            self._failures.clear()
            self._hangs.clear()

    # hooks, on the sink's thread

    def _opened(self, server: _SinkSMTP) -> None:
        with self._changed:
            self._servers.append(server)
            server.connection_number = len(self._servers) - self._connection_base

    def _record(self, received: Received) -> None:
        with self._changed:
            self.messages.append(received)
            if self.maildir is not None:
                self.maildir.mkdir(parents=True, exist_ok=True)
                (self.maildir / f"{len(self.messages):05d}.eml").write_bytes(received.raw)
            self._changed.notify_all()

    async def _injected(self, stage: Stage) -> str | None:
        with self._changed:
            delay = self._hangs.popleft() if stage == "DATA" and self._hangs else 0.0
            reply = None
            for failure in self._failures:
                if failure.stage == stage:
                    failure.remaining -= 1
                    reply = failure.reply
                    if failure.remaining <= 0:
                        self._failures.remove(failure)
                    break
        if delay:
            await asyncio.sleep(delay)
        return reply

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword) or self.auth is None:
            return AuthResult(success=False, handled=False)
        username = auth_data.login.decode(errors="replace")
        expected = self.auth.get(username)
        ok = expected is not None and auth_data.password.decode(errors="replace") == expected
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)
