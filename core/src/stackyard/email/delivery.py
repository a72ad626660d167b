"""Delivery with failover: one message tried on the EmailProviders in priority order.

- `build_sender(name, spec, credentials, http_client)`: the sender an EmailProviderSpec
  describes (SMTP or one of the HTTP APIs), with its credentials.
- `Providers`: the senders of the current config, rebuilt only where a spec or a
  credential changed; `candidates(message)` are those that may send it, in order
  (priority, then name; enabled; sending for the message's sender domain).
- `deliver(message, providers, breakers, rate_limiter)`: tries the candidates one after the
  other, each behind its circuit breaker and its own send rate, and answers a
  `DeliveryReport`: sent, rejected (no provider can help), or retry (with the earliest
  time a retry makes sense), and the timeline of every attempt.

The rules (docs/email-delivery.md):

| outcome of a provider        | breaker   | next                                      |
|------------------------------|-----------|-------------------------------------------|
| `Sent`                       | success   | stop: sent                                |
| `Rejected`                   | success   | stop: rejected (no failover)              |
| `Retryable`, timeout         | failure   | next provider                             |
| `RateLimited`                | failure   | next provider; its retry_after is a hint  |
| `ProviderMisconfigured`      | failure   | next provider                             |
| breaker open                 | untouched | next provider; its retry_in is a hint     |
| over its send rate           | untouched | next provider; the rate's retry is a hint |

Texts in a report come from the senders' failure messages, which never hold a credential,
or are written here from names and numbers only.

Telemetry: each provider considered is a `send email` span; each call of a provider counts
in `stackyard.email.sends`, each move to the next provider in `stackyard.email.failovers`,
and every breaker state seen feeds `stackyard.email.breaker.state` (see metrics.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Literal, Protocol

import httpx

from ..clients import AnyRedis
from ..config import credential_key
from ..ratelimit import Policy, RateLimiter
from ..resources.base import duration_seconds
from ..resources.email import EmailProviderSpec
from .breaker import BreakerSettings, CircuitBreaker
from .http_providers import PostmarkSender, ResendSender, SendGridSender, SesSender
from .message import OutgoingEmail, ProviderMisconfigured, RateLimited, Rejected, SendFailure, Sent
from .metrics import EmailMetrics, email_metrics
from .smtp import SmtpSender
from .tracing import CALLED, attempt_span, attempted, outcome

__all__ = [
    "CREDENTIAL_NAMES",
    "RATE_KEY_PREFIX",
    "AttemptOutcome",
    "AttemptRecord",
    "Breakers",
    "DeliveryOutcome",
    "DeliveryReport",
    "MissingCredential",
    "Provider",
    "Providers",
    "Sender",
    "build_sender",
    "deliver",
]

log = logging.getLogger(__name__)

CREDENTIAL_NAMES = ("apiKey", "password", "accessKeyId", "secretAccessKey")
"""The credentials an EmailProvider can have, as `credential_key` names them."""

RATE_KEY_PREFIX = "sy:email:rate"
"""Prefix of the Redis keys of the providers' send rates (for a `RateLimiter`)."""

_RATE_POLICY = "email-send"
_RATE_REDIS_BUDGET = 0.25
"""Seconds a send-rate decision may take in Redis; past it the send goes ahead (fail open)."""


class Sender(Protocol):
    """What `deliver` needs of a provider's sender."""

    @property
    def name(self) -> str: ...

    async def send(self, message: OutgoingEmail) -> Sent: ...

    async def probe(self) -> None:
        """Check the provider without sending (raises a `SendFailure` kind as `send` does)."""
        ...

    async def aclose(self) -> None: ...


class MissingCredential(ValueError):
    """An EmailProvider's credential is not in the credentials; says which key, never a value."""

    def __init__(self, provider: str, key: str) -> None:
        super().__init__(f"EmailProvider {provider}: the credentials have no key {key!r}")
        self.provider = provider
        self.key = key


class _SmtpProvider(SmtpSender):
    """An `SmtpSender` that answers to `name` like the HTTP senders."""

    @property
    def name(self) -> str:
        return self.provider


class _HttpProvider(Protocol):
    name: str

    async def send(self, message: OutgoingEmail) -> Sent: ...

    async def probe(self) -> None: ...


class _SharedClientSender:
    """An HTTP sender: the client is shared, so closing the sender closes nothing."""

    def __init__(self, sender: _HttpProvider) -> None:
        self._sender = sender

    def __repr__(self) -> str:
        return repr(self._sender)

    @property
    def name(self) -> str:
        return self._sender.name

    async def send(self, message: OutgoingEmail) -> Sent:
        return await self._sender.send(message)

    async def probe(self) -> None:
        await self._sender.probe()

    async def aclose(self) -> None:
        return None


def _credential(credentials: Mapping[str, str], provider: str, name: str) -> str:
    key = credential_key("EmailProvider", provider, name)
    value = credentials.get(key)
    if not value:
        raise MissingCredential(provider, key)
    return value


def build_sender(
    name: str, spec: EmailProviderSpec, credentials: Mapping[str, str], http_client: httpx.AsyncClient
) -> Sender:
    """The sender for EmailProvider `name`; raises `MissingCredential` or `ValueError` (settings
    missing for its type) with a message that names keys, never credential values."""
    timeout = duration_seconds(spec.timeout)
    if spec.type == "smtp":
        if spec.smtp is None:
            raise ValueError(f"EmailProvider {name}: spec.smtp must be set when type is smtp")
        smtp = spec.smtp
        password = _credential(credentials, name, "password") if smtp.username is not None else None
        return _SmtpProvider(
            host=smtp.host,
            port=smtp.port,
            security=smtp.security,
            username=smtp.username,
            password=password,
            timeout=timeout,
            provider=name,
        )
    sender: _HttpProvider
    if spec.type == "resend" and spec.resend is not None:
        api_key = _credential(credentials, name, "apiKey")
        sender = ResendSender(name, api_key, client=http_client, base_url=spec.resend.base_url, timeout=timeout)
    elif spec.type == "sendgrid" and spec.sendgrid is not None:
        api_key = _credential(credentials, name, "apiKey")
        sender = SendGridSender(name, api_key, client=http_client, base_url=spec.sendgrid.base_url, timeout=timeout)
    elif spec.type == "postmark" and spec.postmark is not None:
        token = _credential(credentials, name, "apiKey")
        sender = PostmarkSender(
            name,
            token,
            client=http_client,
            base_url=spec.postmark.base_url,
            timeout=timeout,
            message_stream=spec.postmark.message_stream,
        )
    elif spec.type == "ses" and spec.ses is not None:
        sender = SesSender(
            name,
            access_key_id=_credential(credentials, name, "accessKeyId"),
            secret_access_key=_credential(credentials, name, "secretAccessKey"),
            region=spec.ses.region,
            client=http_client,
            configuration_set=spec.ses.configuration_set,
            base_url=spec.ses.base_url,
            timeout=timeout,
        )
    else:
        raise ValueError(f"EmailProvider {name}: spec.{spec.type} must be set when type is {spec.type}")
    return _SharedClientSender(sender)


@dataclass(frozen=True)
class Provider:
    """One EmailProvider ready to send: its sender and the numbers `deliver` uses."""

    name: str
    spec: EmailProviderSpec
    sender: Sender
    timeout: float
    """Seconds one send may take before failing over."""
    breaker: BreakerSettings
    rate: Policy | None
    """Its own send rate (GCRA, a burst of `messages`), or None for no limit."""

    @property
    def order(self) -> tuple[int, str]:
        return (self.spec.priority, self.name)

    def sends_for(self, domain: str) -> bool:
        return not self.spec.from_domains or domain.lower() in self.spec.from_domains


def _provider(name: str, spec: EmailProviderSpec, sender: Sender) -> Provider:
    timeout = duration_seconds(spec.timeout)
    cb = spec.circuit_breaker
    breaker = BreakerSettings(
        failure_threshold=cb.failure_threshold,
        open_duration=duration_seconds(cb.open_duration),
        half_open_probes=cb.half_open_probes,
        probe_lease=timeout,
    )
    rate = None
    if spec.rate_limit is not None:
        rate = Policy(
            name=_RATE_POLICY,
            algorithm="gcra",
            limit=spec.rate_limit.messages,
            window_us=max(1, round(duration_seconds(spec.rate_limit.period) * 1_000_000)),
            capacity=spec.rate_limit.messages,
            mode="enforce",
            failure_mode="open",
            timeout=_RATE_REDIS_BUDGET,
            key_type="global",
            key_header=None,
            enforce_in_api=False,
            paths=None,
            methods=None,
            hosts=None,
        )
    return Provider(name, spec, sender, timeout, breaker, rate)


def _credentials_of(name: str, credentials: Mapping[str, str]) -> dict[str, str]:
    keys = (credential_key("EmailProvider", name, c) for c in CREDENTIAL_NAMES)
    return {key: credentials[key] for key in keys if key in credentials}


class Providers:
    """The EmailProviders of the current config, each with its sender.

    `update` rebuilds only the senders whose spec or credentials changed (an SMTP sender
    keeps its open connections otherwise) and closes those replaced or removed. A provider
    whose sender cannot be built (a credential missing) is left out and its reason kept in
    `problems`, so one broken provider does not stop the others."""

    def __init__(
        self,
        specs: Mapping[str, EmailProviderSpec],
        credentials: Mapping[str, str],
        http_client: httpx.AsyncClient,
    ) -> None:
        self.http_client = http_client
        self._providers: dict[str, Provider] = {}
        self._seen: dict[str, tuple[EmailProviderSpec, dict[str, str]]] = {}
        self.problems: dict[str, str] = {}
        """Provider name -> why it is left out (safe to show: names keys, never values)."""
        self._ordered: list[Provider] = []
        self._apply(specs, credentials)

    def _apply(self, specs: Mapping[str, EmailProviderSpec], credentials: Mapping[str, str]) -> list[Sender]:
        """Rebuild what changed; answers the senders no longer used (to close)."""
        retired: list[Sender] = []
        for name in list(self._seen):
            if name not in specs:
                del self._seen[name]
                self.problems.pop(name, None)
                email_metrics().forget(name)
                old = self._providers.pop(name, None)
                if old is not None:
                    retired.append(old.sender)
        for name, spec in specs.items():
            fingerprint = (spec, _credentials_of(name, credentials))
            if self._seen.get(name) == fingerprint:
                continue
            self._seen[name] = fingerprint
            old = self._providers.pop(name, None)
            if old is not None:
                retired.append(old.sender)
            try:
                sender = build_sender(name, spec, credentials, self.http_client)
            except ValueError as exc:
                self.problems[name] = str(exc)
                log.warning("%s", exc)
                continue
            self.problems.pop(name, None)
            self._providers[name] = _provider(name, spec, sender)
        self._ordered = sorted(self._providers.values(), key=lambda p: p.order)
        return retired

    async def update(self, specs: Mapping[str, EmailProviderSpec], credentials: Mapping[str, str]) -> None:
        """Take a new config's providers and credentials."""
        for sender in self._apply(specs, credentials):
            await sender.aclose()

    def __getitem__(self, name: str) -> Provider:
        return self._providers[name]

    def __len__(self) -> int:
        return len(self._providers)

    @property
    def all(self) -> list[Provider]:
        """Every provider that could be built, in the order they are tried."""
        return list(self._ordered)

    def candidates(self, message: OutgoingEmail) -> list[Provider]:
        """The providers that may send `message`, in the order to try them."""
        domain = sender_domain(message)
        return [p for p in self._ordered if p.spec.enabled and p.sends_for(domain)]

    async def aclose(self) -> None:
        senders = [p.sender for p in self._providers.values()]
        self._providers.clear()
        self._seen.clear()
        self._ordered = []
        for sender in senders:
            await sender.aclose()


def sender_domain(message: OutgoingEmail) -> str:
    """The domain of the From address, lower-cased ("" when there is none)."""
    return parseaddr(message.sender)[1].rpartition("@")[2].lower()


class Breakers:
    """The providers' circuit breakers, on one Redis shared by every replica; every state
    they answer is noted for the breaker-state gauge."""

    def __init__(self, redis: AnyRedis, metrics: EmailMetrics | None = None) -> None:
        self.redis = redis
        self.metrics = metrics or email_metrics()

    def of(self, provider: Provider) -> CircuitBreaker:
        return CircuitBreaker(self.redis, provider.name, provider.breaker, on_state=self.metrics.breaker)


AttemptOutcome = Literal[
    "sent",
    "already_sent",
    "skipped_unknown",
    "rejected",
    "retryable",
    "rate_limited",
    "misconfigured",
    "skipped_breaker_open",
    "skipped_rate_limit",
]
DeliveryOutcome = Literal["sent", "rejected", "retry"]


@dataclass(frozen=True)
class AttemptRecord:
    """One provider's part in a delivery: what the delivery log stores."""

    provider: str
    started_at: datetime
    duration: float
    """Seconds, breaker and rate checks included."""
    outcome: AttemptOutcome
    error: str | None = None
    """Why it did not send (the provider's words, never a credential)."""
    status: int | None = None
    """The provider's HTTP status or SMTP reply code, when it gave one."""
    retry_after: float | None = None
    """Seconds before this provider is worth asking again, when known."""
    error_type: str | None = None
    """A short kind of failure for telemetry when the outcome does not say it (timeout, an
    unexpected exception's type)."""


@dataclass(frozen=True)
class DeliveryReport:
    outcome: DeliveryOutcome
    attempts: tuple[AttemptRecord, ...]
    provider: str | None = None
    """The provider that sent it (or rejected it)."""
    provider_message_id: str | None = None
    reason: str | None = None
    """Why it was rejected, or why it must be retried."""
    retry_after: float | None = None
    """For `retry`: seconds from `finished_at` before a retry makes sense (0: at once, with
    the caller's backoff)."""
    finished_at: datetime | None = None

    @property
    def retry_at(self) -> datetime | None:
        if self.retry_after is None or self.finished_at is None:
            return None
        return datetime.fromtimestamp(self.finished_at.timestamp() + self.retry_after, UTC)


Claim = Literal["go", "already_sent", "unknown"]


class Ledger(Protocol):
    """What a message's earlier attempts did on each provider, kept where a retry after a
    crash finds it (the email job's steps): `claim` before a send, `settle` after it."""

    async def claim(self, provider: Provider) -> tuple[Claim, str | None]:
        """ "go" (and the send is now recorded as in flight), "already_sent" (with the
        provider's message id), or "unknown": a send through this provider was cut off
        and the provider takes no idempotency key, so it must not be asked again."""
        ...

    async def settle(self, provider: Provider, sent: Sent | None) -> None: ...


async def deliver(
    message: OutgoingEmail,
    providers: Providers,
    breakers: Breakers,
    rate_limiter: RateLimiter | None = None,
    ledger: Ledger | None = None,
) -> DeliveryReport:
    """Send `message` through the first provider that takes it (see the module's table).
    Never raises a `SendFailure`: every outcome is in the report. Without a `rate_limiter`
    the providers' send rates are not enforced; without a `ledger` nothing guards against
    sending twice after a crash."""
    attempts: list[AttemptRecord] = []
    candidates = providers.candidates(message)
    for index, provider in enumerate(candidates):
        with attempt_span(provider.name, provider.spec.type) as span:
            attempt, sent = await _attempt(message, provider, breakers.of(provider), rate_limiter, ledger)
            attempted(span, attempt)
        attempts.append(attempt)
        _measure(breakers.metrics, provider, attempt, candidates[index + 1 :])
        if sent is not None:
            return DeliveryReport(
                "sent",
                tuple(attempts),
                provider=provider.name,
                provider_message_id=sent.provider_message_id,
                finished_at=datetime.now(UTC),
            )
        if attempt.outcome == "rejected":
            return DeliveryReport(
                "rejected", tuple(attempts), provider=provider.name, reason=attempt.error, finished_at=datetime.now(UTC)
            )
    if not candidates:
        domain = sender_domain(message) or "(none)"
        reason = f"no enabled EmailProvider sends for the sender domain {domain}"
    else:
        reason = "every provider failed: " + "; ".join(
            f"{a.provider} {a.outcome}" + (f" ({a.error})" if a.error else "") for a in attempts
        )
    return DeliveryReport(
        "retry",
        tuple(attempts),
        reason=reason,
        retry_after=min((a.retry_after or 0.0 for a in attempts), default=0.0),
        finished_at=datetime.now(UTC),
    )


def _measure(metrics: EmailMetrics, provider: Provider, attempt: AttemptRecord, rest: list[Provider]) -> None:
    """A provider call counts as a send; a provider that did not send nor reject fails over."""
    result, error = outcome(attempt)
    if attempt.outcome in CALLED:
        metrics.sent(provider.name, provider.spec.type, result, attempt.duration, error)
    if result == "failed" and rest:
        metrics.failover(provider.name, rest[0].name)


async def _attempt(
    message: OutgoingEmail,
    provider: Provider,
    breaker: CircuitBreaker,
    rate_limiter: RateLimiter | None,
    ledger: Ledger | None,
) -> tuple[AttemptRecord, Sent | None]:
    """One provider's try: its breaker, its send rate, then the send within its timeout,
    recorded in the ledger before and after."""
    started_at, start = datetime.now(UTC), time.monotonic()

    def record(
        outcome: AttemptOutcome,
        error: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        error_type: str | None = None,
    ) -> AttemptRecord:
        took = time.monotonic() - start
        return AttemptRecord(provider.name, started_at, took, outcome, error, status, retry_after, error_type)

    if ledger is not None:
        claim, earlier_id = await ledger.claim(provider)
        if claim == "already_sent":
            return record("already_sent", "sent by an earlier attempt"), Sent(provider.name, earlier_id)
        if claim == "unknown":
            why = (
                f"an earlier send through {provider.name} was cut off (its worker stopped) and {provider.spec.type} "
                "takes no idempotency key: it may have been sent, so it is not sent through it again"
            )
            return record("skipped_unknown", why), None
    attempt, sent = await _guarded_send(message, provider, breaker, rate_limiter, record)
    if ledger is not None:  # not on a cancellation: a send cut off stays "in flight"
        await ledger.settle(provider, sent)
    return attempt, sent


async def _guarded_send(
    message: OutgoingEmail,
    provider: Provider,
    breaker: CircuitBreaker,
    rate_limiter: RateLimiter | None,
    record: Callable[..., AttemptRecord],
) -> tuple[AttemptRecord, Sent | None]:
    permit = await breaker.allow()
    if not permit.allowed:
        why = "breaker open" if permit.state == "open" else "breaker half-open, a probe is in flight"
        return record("skipped_breaker_open", f"{why}; next try in {permit.retry_in:.3g}s", None, permit.retry_in), None
    if provider.rate is not None and rate_limiter is not None:
        decision = await rate_limiter.decide(provider.rate, provider.name)
        if decision.blocks:
            why = f"over its send rate of {provider.rate.limit} per {provider.rate.window:g}s"
            return record("skipped_rate_limit", why, None, decision.retry_after), None
    return await _send(message, provider, breaker, record)


async def _send(
    message: OutgoingEmail, provider: Provider, breaker: CircuitBreaker, record: Callable[..., AttemptRecord]
) -> tuple[AttemptRecord, Sent | None]:
    try:
        async with asyncio.timeout(provider.timeout):
            sent = await provider.sender.send(message)
    except TimeoutError:
        await breaker.failure()
        why = f"{provider.name}: no answer within {provider.timeout:g}s"
        return record("retryable", why, error_type="timeout"), None
    except Rejected as exc:
        await breaker.success()  # the provider worked: the message is what is wrong
        return record("rejected", str(exc), exc.status), None
    except RateLimited as exc:
        await breaker.failure()
        return record("rate_limited", str(exc), exc.status, exc.retry_after), None
    except ProviderMisconfigured as exc:
        await breaker.failure()
        return record("misconfigured", str(exc), exc.status), None
    except SendFailure as exc:
        await breaker.failure()
        return record("retryable", str(exc), exc.status, error_type="timeout" if exc.code == "timeout" else None), None
    except Exception as exc:  # a sender's bug: fail over, and say only what kind of error it was
        log.exception("email provider %s failed unexpectedly", provider.name)
        await breaker.failure()
        kind = type(exc).__name__
        return record("retryable", f"{provider.name}: unexpected {kind}", error_type=kind), None
    await breaker.success()
    return record("sent"), sent
