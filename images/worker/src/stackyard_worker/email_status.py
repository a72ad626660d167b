"""What workers know of each EmailProvider, written to its status: the Reachable condition,
the shared circuit breaker and the latest send or probe.

The send path calls `note(record)` after every provider attempt (it never waits); `run`
probes each provider when it first appears, whenever its spec or credentials change and
every 5 minutes, and writes a provider's status when its view changed: at most once per 2
seconds per provider, never when nothing changed. Several replicas write the same facts;
whichever writes last wins, which is fine since they share the breaker and see the same
providers.

    reporter = ProviderStatusReporter(runtime, lambda: email.providers, lambda: email.breakers)
    task = asyncio.create_task(reporter.run(stop))
    ...
    reporter.note(attempt)  # after each provider attempt of a delivery

Reachable (metav1.Condition):

| what happened                                   | status | reason             |
|-------------------------------------------------|--------|--------------------|
| a probe passed, a message was sent or rejected  | True   | Answered           |
| credentials refused (401, 403, SMTP 535...)     | False  | InvalidCredentials |
| other settings wrong (certificate, URL, account) | False  | Misconfigured      |
| told to slow down (429)                         | False  | RateLimited        |
| no answer within the provider's timeout         | False  | Timeout            |
| refused connection, 5xx, SMTP 4xx               | False  | Unreachable        |

A rejected message says the provider answered: Reachable stays True. Attempts that never
reached the provider (breaker open, over its send rate, already sent) only refresh the
breaker. Probes do not move the breaker. Every text comes from the senders' failures, which
hold no credential, and is scrubbed of the Stack's credential values once more here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from kubernetes_asyncio.client.exceptions import ApiException
from stackyard.email.delivery import AttemptRecord, Breakers, Provider, Providers
from stackyard.email.message import ProviderMisconfigured, RateLimited, Rejected, SendFailure
from stackyard.runtime import Runtime
from stackyard.status_reports import ClusterStatus, status_patch

__all__ = ["PROBE_INTERVAL", "WRITE_INTERVAL", "Patch", "ProviderStatusReporter", "Reachability"]

log = logging.getLogger(__name__)

PROBE_INTERVAL = 300.0
"""Seconds between probes of an unchanged provider."""
WRITE_INTERVAL = 2.0
"""Least seconds between two status writes for one provider."""
TICK = 1.0
"""Most seconds between two looks at the providers (a new config replaces them)."""
PATCH_TIMEOUT = 10.0
BREAKER_READ_TIMEOUT = 1.0
ERROR_LIMIT = 1024
"""LastAttempt.error's maxLength."""
CONFLICT_RETRIES = 3

Patch = Callable[[str, dict[str, Any]], Awaitable[None]]
"""patch(provider name, status fields): write them to the EmailProvider's status."""

_AUTH_STATUSES = frozenset({401, 403, 530, 534, 535, 538})
_CONTACT = frozenset({"sent", "rejected", "retryable", "rate_limited", "misconfigured"})
"""Attempt outcomes where the provider was asked (the others never reached it)."""


@dataclass(frozen=True)
class Reachability:
    status: Literal["True", "False"]
    reason: str
    message: str


def _reachability(kind: str, outcome: str, error: str | None, status: int | None, timed_out: bool) -> Reachability:
    what = "the probe" if kind == "probe" else "the last send"
    if outcome in ("ok", "sent"):
        return Reachability("True", "Answered", "a probe passed" if kind == "probe" else "the last send went through")
    if outcome == "rejected":
        return Reachability("True", "Answered", f"answered the last send by rejecting the message: {error or ''}")
    if outcome == "misconfigured":
        reason = "InvalidCredentials" if status in _AUTH_STATUSES else "Misconfigured"
        return Reachability("False", reason, f"{what} failed: {error or 'the provider refused our settings'}")
    if outcome == "rate_limited":
        return Reachability("False", "RateLimited", f"{what} was told to slow down: {error or ''}")
    reason = "Timeout" if timed_out else "Unreachable"
    return Reachability("False", reason, f"{what} failed: {error or 'no answer'}")


def _looks_timed_out(error: str | None) -> bool:
    return error is not None and ("no answer within" in error or "timed out" in error)


def _timestamp(at: datetime | float) -> str:
    when = at if isinstance(at, datetime) else datetime.fromtimestamp(at, UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Watch:
    """One provider as this worker sees it."""

    provider: Provider
    probe: asyncio.Task[None] | None = None
    next_probe: float = 0.0
    """time.monotonic() of the next probe."""
    reachable: Reachability | None = None
    since: str | None = None
    """lastTransitionTime of `reachable`: when its status last changed."""
    breaker: dict[str, Any] | None = None
    breaker_stale: bool = True
    last_attempt: dict[str, Any] | None = None
    written: dict[str, Any] | None = None
    """The view last written (or found to have no CR to write to)."""
    failed: dict[str, Any] | None = None
    """A view whose write failed: tried again only once the view changes."""
    written_at: float = float("-inf")

    def set_reachable(self, reachable: Reachability) -> None:
        if self.reachable is None or self.reachable.status != reachable.status:
            self.since = _timestamp(time.time())
        self.reachable = reachable

    def view(self) -> dict[str, Any]:
        status: dict[str, Any] = {}
        if self.reachable is not None:
            status["conditions"] = [
                {
                    "type": "Reachable",
                    "status": self.reachable.status,
                    "reason": self.reachable.reason,
                    "message": self.reachable.message,
                    "lastTransitionTime": self.since,
                }
            ]
        if self.breaker is not None:
            status["breaker"] = dict(self.breaker)
        if self.last_attempt is not None:
            status["lastAttempt"] = dict(self.last_attempt)
        return status


class ProviderStatusReporter:
    """Writes each EmailProvider's Reachable condition, breaker and lastAttempt (see the module)."""

    def __init__(
        self,
        runtime: Runtime,
        providers: Callable[[], Providers | None],
        breakers: Callable[[], Breakers | None],
        *,
        patch: Patch | None = None,
        cluster: ClusterStatus | None = None,
        probe_interval: float = PROBE_INTERVAL,
        write_interval: float = WRITE_INTERVAL,
    ) -> None:
        self.runtime = runtime
        self._providers = providers
        self._breakers = breakers
        self._patch: Patch = patch or self._patch_status
        self.probe_interval = probe_interval
        self.write_interval = write_interval
        self._watches: dict[str, _Watch] = {}
        self._noted: dict[str, AttemptRecord] = {}
        self._touched: set[str] = set()
        self._wake = asyncio.Event()
        self.cluster = cluster or ClusterStatus(runtime)

    # --- what the send path calls -------------------------------------------------------------

    def note(self, record: AttemptRecord) -> None:
        """Take one provider attempt of a delivery into account; never waits."""
        if record.outcome in _CONTACT:
            self._noted[record.provider] = record  # the latest is what the status shows
        self._touched.add(record.provider)
        self._wake.set()

    # --- the loop -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Probe and write until `stop` is set; then write what is still unwritten (briefly)."""
        waker = asyncio.create_task(self._wake_on(stop))
        try:
            while not stop.is_set():
                self._wake.clear()
                await self._follow_providers()
                await self._take_notes()
                await self._flush(force=False)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._idle_for()):
                        await self._wake.wait()
            await self._take_notes()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PATCH_TIMEOUT):
                    await self._flush(force=True)
        finally:
            waker.cancel()
            for watch in self._watches.values():
                await _cancel(watch.probe)

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    def _idle_for(self) -> float:
        now = time.monotonic()
        due = [TICK]
        for watch in self._watches.values():
            if watch.probe is None and watch.provider.spec.enabled:
                due.append(watch.next_probe - now)
            if self._dirty(watch):
                due.append(watch.written_at + self.write_interval - now)
        return max(0.0, min(due))

    async def _follow_providers(self) -> None:
        """Track the providers of the current config; probe the new, the changed and the due."""
        providers = self._providers()
        current = {p.name: p for p in providers.all} if providers is not None else {}
        for name in [n for n in self._watches if n not in current]:
            await _cancel(self._watches.pop(name).probe)
        now = time.monotonic()
        for name, provider in current.items():
            watch = self._watches.get(name)
            if watch is None:
                watch = self._watches[name] = _Watch(provider)
            elif watch.provider is not provider:  # rebuilt: its spec or credentials changed
                await _cancel(watch.probe)
                watch.probe, watch.provider, watch.next_probe, watch.breaker_stale = None, provider, now, True
            if watch.probe is None and provider.spec.enabled and now >= watch.next_probe:
                watch.probe = asyncio.create_task(self._probe(watch, provider), name=f"probe {name}")

    async def _probe(self, watch: _Watch, provider: Provider) -> None:
        failure: SendFailure | None = None
        try:
            async with asyncio.timeout(provider.timeout):
                await provider.sender.probe()
        except TimeoutError:
            failure = SendFailure(f"{provider.name}: no answer within {provider.timeout:g}s", code="timeout")
        except SendFailure as exc:
            failure = exc
        except Exception as exc:  # a sender's bug: say only what kind of error it was
            log.warning("probe of email provider %s failed unexpectedly: %s", provider.name, type(exc).__name__)
            failure = SendFailure(f"{provider.name}: the probe failed unexpectedly ({type(exc).__name__})")
        if watch.probe is asyncio.current_task():
            watch.probe = None
            watch.next_probe = time.monotonic() + self.probe_interval
        if self._watches.get(provider.name) is not watch or watch.provider is not provider:
            return  # replaced while it ran: its answer is about settings no longer in force
        if failure is None:
            outcome, error, status = "ok", None, None
        else:
            outcome, error, status = _outcome(failure), self._scrub(str(failure)), failure.status
        timed_out = failure is not None and failure.code == "timeout"
        watch.set_reachable(_reachability("probe", outcome, error, status, timed_out))
        watch.last_attempt = _last_attempt(_timestamp(time.time()), "probe", outcome, error)
        watch.breaker_stale = True
        self._wake.set()

    async def _take_notes(self) -> None:
        noted, self._noted = self._noted, {}
        touched, self._touched = self._touched, set()
        for name, record in noted.items():
            watch = self._watches.get(name)
            if watch is None:
                continue
            error = self._scrub(record.error) if record.error else None
            timed_out = record.outcome == "retryable" and _looks_timed_out(record.error)
            watch.set_reachable(_reachability("send", record.outcome, error, record.status, timed_out))
            ended = record.started_at.timestamp() + record.duration
            watch.last_attempt = _last_attempt(_timestamp(ended), "send", record.outcome, error)
        for name in touched:
            if (watch := self._watches.get(name)) is not None:
                watch.breaker_stale = True
        breakers = self._breakers()
        if breakers is None:
            return
        for watch in self._watches.values():
            if watch.breaker_stale:
                await self._read_breaker(watch, breakers)

    async def _read_breaker(self, watch: _Watch, breakers: Breakers) -> None:
        try:
            async with asyncio.timeout(BREAKER_READ_TIMEOUT):
                snapshot = await breakers.of(watch.provider).snapshot()
        except Exception as exc:  # Redis away: keep what we had, try again on the next change
            log.debug("breaker of email provider %s not read: %s", watch.provider.name, type(exc).__name__)
            return
        watch.breaker_stale = False
        watch.breaker = {
            "state": snapshot.state,
            "consecutiveFailures": snapshot.consecutive_failures,
            "timesOpened": snapshot.times_opened,
            "openedAt": _timestamp(snapshot.opened_at) if snapshot.opened_at is not None else None,
        }

    # --- writing ------------------------------------------------------------------------------

    @staticmethod
    def _dirty(watch: _Watch) -> bool:
        view = watch.view()
        return bool(view) and view != watch.written and view != watch.failed

    async def _flush(self, *, force: bool) -> None:
        now = time.monotonic()
        for name, watch in list(self._watches.items()):
            if not self._dirty(watch) or (not force and now - watch.written_at < self.write_interval):
                continue
            view = watch.view()
            watch.written_at = now
            try:
                async with asyncio.timeout(PATCH_TIMEOUT):
                    await self._patch(name, view)
            except Exception as exc:
                watch.failed = view
                code = getattr(exc, "status", None)
                log.warning(
                    "status of EmailProvider %s not written (%s%s); trying again on its next change",
                    name,
                    type(exc).__name__,
                    f" {code}" if code else "",
                )
            else:
                watch.written, watch.failed = view, None

    async def _patch_status(self, name: str, status: dict[str, Any]) -> None:
        """Merge `status` into emailproviders/<name>/status in the config's namespace (only
        where the config comes from a cluster). The Reachable condition replaces its own
        entry in the conditions the operator wrote, keeping its lastTransitionTime while its
        status is unchanged; the write is conditional on the resourceVersion read, and read
        again on a conflict. A missing EmailProvider is no error."""
        if not self.cluster.enabled:
            return
        for attempt in range(CONFLICT_RETRIES):
            try:
                current = await self.cluster.get("emailproviders", name)
                body: dict[str, Any] = {
                    "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                    "status": status_patch(current.get("status") or {}, status),
                }
                await self.cluster.merge("emailproviders", name, body)
                return
            except ApiException as exc:
                if exc.status == 404:
                    log.debug("EmailProvider %s/%s not found: its status is not written", self.cluster.namespace, name)
                    return
                if exc.status != 409 or attempt == CONFLICT_RETRIES - 1:
                    raise

    def _scrub(self, text: str) -> str:
        applied = self.runtime.live.current
        if applied is not None:
            for secret in applied.credentials.values():
                if len(secret) >= 6:
                    text = text.replace(secret, "***")
        return text


def _outcome(failure: SendFailure) -> str:
    if isinstance(failure, ProviderMisconfigured):
        return "misconfigured"
    if isinstance(failure, RateLimited):
        return "rate_limited"
    if isinstance(failure, Rejected):
        return "rejected"
    return "retryable"


def _last_attempt(at: str, kind: str, outcome: str, error: str | None) -> dict[str, Any]:
    if error is not None and len(error) > ERROR_LIMIT:
        error = error[: ERROR_LIMIT - 1] + "…"
    return {"at": at, "kind": kind, "outcome": outcome, "error": error}


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
