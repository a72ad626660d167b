"""`AsyncStackyard`: the stackyard api from asyncio code."""

from __future__ import annotations

import asyncio
import builtins
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx

from stackyard.email.contract import (
    EmailAccepted,
    EmailPage,
    EmailRecord,
    EmailStatus,
    EmailSummary,
    PreviewResult,
    Suppression,
    SuppressionPage,
    SuppressionReason,
    TemplateRef,
)
from stackyard.jobs.contract import (
    FINISHED_STATES,
    DeadLetterResult,
    EventResult,
    Job,
    JobPage,
    QueueInfo,
)

from . import calls, search_calls
from .auth_async import AsyncAuth
from .calls import Addresses, Answer, AttachmentLike, Call, HttpTargetLike, Seconds
from .config_async import AsyncConfig, AsyncProbes
from .databases_async import AsyncDatabases
from .errors import ApiUnreachable, WaitTimeout
from .files_async import AsyncFiles
from .notify_async import AsyncFeed, AsyncNotify, AsyncWebhooks
from .push_async import AsyncPush
from .ratelimit_async import AsyncRateLimit
from .retry import RetryPolicy, is_retryable_failure, request_was_sent, retry_after
from .search_async import AsyncSearch

log = logging.getLogger("stackyard.client")


class AsyncStackyard:
    """async with AsyncStackyard() as stackyard:
        job = await stackyard.jobs.enqueue("reports.send", payload={"userId": "u_42"})
        job = await stackyard.jobs.wait(job.id)

    base_url: the api (default $STACKYARD_API_URL, else http://127.0.0.1:8080); token: sent
    as a bearer token (default $STACKYARD_API_TOKEN); admin_key: the Stack's admin API key,
    for `auth.admin`, `databases`, `files(owner=...)`, `notify`, `webhooks` and `search` only
    (default $STACKYARD_ADMIN_KEY); search_key: the Stack's search-only API key, for
    `search.search` and `search.multi_search` (default $STACKYARD_SEARCH_KEY);
    timeout: seconds for one request;
    retry: how 429/503 answers and failed connections are retried.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        admin_key: str | None = None,
        search_key: str | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = calls.base_url(base_url)
        self.retry = retry or RetryPolicy()
        self.http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, headers=calls.default_headers(token), transport=transport
        )
        self.jobs = AsyncJobs(self)
        self.queues = AsyncQueues(self)
        self.events = AsyncEvents(self)
        self.emails = AsyncEmails(self)
        self.suppressions = AsyncSuppressions(self)
        self.auth = AsyncAuth(self, calls.admin_key(admin_key))
        self.databases = AsyncDatabases(self, calls.admin_key(admin_key))
        self.files = AsyncFiles(self, calls.admin_key(admin_key))
        self.notify = AsyncNotify(self, calls.admin_key(admin_key))
        self.feed = AsyncFeed(self)
        self.webhooks = AsyncWebhooks(self, calls.admin_key(admin_key))
        self.search = AsyncSearch(self, calls.admin_key(admin_key), search_calls.search_key(search_key))
        self.push = AsyncPush(self)
        self.ratelimit = AsyncRateLimit(self)
        self.config = AsyncConfig(self)
        self.health = AsyncProbes(self)

    def __repr__(self) -> str:
        return f"AsyncStackyard({self.base_url!r})"

    async def send(self, call: Call[Answer]) -> Answer:
        """Send `call`, again while the retry policy allows, and read its answer."""
        request = self.http.build_request(
            call.method, call.path, json=call.json, params=call.params, headers=call.headers
        )
        attempts = self.retry.start()
        while True:
            try:
                response = await self.http.send(request)
            except httpx.TransportError as exc:
                sent = request_was_sent(exc)
                retryable = is_retryable_failure(exc) and (call.repeatable or not sent)
                delay = attempts.next_delay() if retryable else None
                if delay is None:
                    reason = str(exc) or type(exc).__name__
                    raise ApiUnreachable(self.base_url, reason, maybe_applied=sent and not call.repeatable) from exc
                log.info("%s %s failed (%s); retrying in %.2f s", call.method, call.path, type(exc).__name__, delay)
                await asyncio.sleep(delay)
                continue
            if call.retries(response.status_code, self.retry):
                delay = attempts.next_delay(retry_after(response))
                if delay is not None:
                    status = response.status_code
                    log.info("%s %s answered %d; retrying in %.2f s", call.method, call.path, status, delay)
                    await asyncio.sleep(delay)
                    continue
            return call.read(response)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncStackyard:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class AsyncJobs:
    def __init__(self, client: AsyncStackyard) -> None:
        self._client = client

    async def enqueue(
        self,
        function: str | None = None,
        *,
        http: HttpTargetLike | None = None,
        payload: Any = None,
        queue: str = "default",
        priority: int | None = None,
        delay: Seconds | None = None,
        run_at: datetime | None = None,
        timeout: Seconds | None = None,
        max_attempts: int | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Put a job on `queue`: a worker's `function`, or an `http` target (a URL, a dict or
        an HttpTarget). Returns the new job, or the first one of the same idempotency key.
        Raises pydantic's ValidationError before sending anything the contract refuses."""
        call = calls.enqueue(
            function,
            http=http,
            payload=payload,
            queue=queue,
            priority=priority,
            delay=delay,
            run_at=run_at,
            timeout=timeout,
            max_attempts=max_attempts,
            idempotency_key=idempotency_key,
        )
        return await self._client.send(call)

    async def get(self, job_id: str) -> Job:
        return await self._client.send(calls.get_job(job_id))

    async def cancel(self, job_id: str) -> Job:
        """Cancel a job: a waiting one is cancelled at once, a running one gets
        `cancel_requested`. Conflict when it has already finished."""
        return await self._client.send(calls.cancel_job(job_id))

    async def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = 60.0,
        poll: float = 0.5,
        on_update: Callable[[Job], object] | None = None,
    ) -> Job:
        """Read the job every `poll` seconds until it is completed, cancelled or dead, and
        return it; WaitTimeout after `timeout` seconds (None: no limit). `on_update` sees
        every state read, the first and the last included."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = await self.get(job_id)
            if on_update is not None:
                on_update(job)
            if job.state in FINISHED_STATES:
                return job
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WaitTimeout(job, timeout or 0.0)
                await asyncio.sleep(min(poll, left))
            else:
                await asyncio.sleep(poll)


class AsyncQueues:
    def __init__(self, client: AsyncStackyard) -> None:
        self._client = client

    async def list(self) -> builtins.list[QueueInfo]:
        return (await self._client.send(calls.list_queues())).items

    async def get(self, name: str) -> QueueInfo:
        return await self._client.send(calls.get_queue(name))

    async def dead(self, name: str, limit: int = 50, cursor: str | None = None) -> JobPage:
        """One page of the queue's dead letters, newest first."""
        return await self._client.send(calls.dead_letters(name, limit, cursor))

    async def iter_dead(self, name: str, page_size: int = 100) -> AsyncIterator[Job]:
        """Every dead letter of the queue, newest first, a page at a time."""
        cursor: str | None = None
        while True:
            page = await self.dead(name, page_size, cursor)
            for job in page.items:
                yield job
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def replay(
        self,
        name: str,
        *,
        ids: Sequence[str] | None = None,
        function: str | None = None,
        all: bool = False,
    ) -> DeadLetterResult:
        """Enqueue dead letters again: those of `ids`, of `function`, or `all=True`."""
        return await self._client.send(calls.dead_letter_action("replay", name, ids, function, all))

    async def purge(
        self,
        name: str,
        *,
        ids: Sequence[str] | None = None,
        function: str | None = None,
        all: bool = False,
    ) -> DeadLetterResult:
        """Delete dead letters for good: those of `ids`, of `function`, or `all=True`."""
        return await self._client.send(calls.dead_letter_action("purge", name, ids, function, all))


class AsyncEvents:
    def __init__(self, client: AsyncStackyard) -> None:
        self._client = client

    async def send(self, name: str, data: Any = None) -> EventResult:
        """Resume the steps waiting for event `name`; they receive `data`."""
        return await self._client.send(calls.send_event(name, data))


class AsyncEmails:
    def __init__(self, client: AsyncStackyard) -> None:
        self._client = client

    async def send(
        self,
        *,
        sender: str,
        to: Addresses,
        subject: str | None = None,
        html: str | None = None,
        text: str | None = None,
        template: str | TemplateRef | None = None,
        variables: Mapping[str, Any] | None = None,
        locale: str | None = None,
        cc: Addresses | None = None,
        bcc: Addresses | None = None,
        reply_to: Addresses | None = None,
        headers: Mapping[str, str] | None = None,
        attachments: Sequence[AttachmentLike] | None = None,
        tags: Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        send_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> EmailAccepted:
        """Hand an email to the api, which answers at once with its id (a worker sends it);
        `sender` is the From. Give subject and html and/or text, or a `template` name with its
        `variables` and `locale`. `attachments`: AttachmentIn, dicts, or paths of files. The
        same idempotency key (a fresh one when none is given) answers the first message and
        sends nothing more, so a retried call never sends twice. Raises pydantic's
        ValidationError before sending anything the contract refuses; RecipientSuppressed
        when a recipient is on the suppression list."""
        call = calls.send_email(
            sender=sender,
            to=to,
            subject=subject,
            html=html,
            text=text,
            template=template,
            variables=variables,
            locale=locale,
            cc=cc,
            bcc=bcc,
            reply_to=reply_to,
            headers=headers,
            attachments=attachments,
            tags=tags,
            metadata=metadata,
            send_at=send_at,
            idempotency_key=idempotency_key,
        )
        return await self._client.send(call)

    async def get(self, email_id: str) -> EmailRecord:
        """The email as the delivery log holds it, with its timeline."""
        return await self._client.send(calls.get_email(email_id))

    async def list(
        self,
        *,
        status: EmailStatus | Sequence[EmailStatus] | None = None,
        to: str | None = None,
        sender: str | None = None,
        template: str | None = None,
        provider: str | None = None,
        tags: Mapping[str, str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> EmailPage:
        """One page of the delivery log, newest first; every filter given applies (`status`:
        any of these; `to`: a recipient; `sender`: the From address; `tags`: all of these)."""
        call = calls.list_emails(
            status=status,
            to=to,
            sender=sender,
            template=template,
            provider=provider,
            tags=tags,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
        return await self._client.send(call)

    async def iter(
        self,
        *,
        status: EmailStatus | Sequence[EmailStatus] | None = None,
        to: str | None = None,
        sender: str | None = None,
        template: str | None = None,
        provider: str | None = None,
        tags: Mapping[str, str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[EmailSummary]:
        """Every email of the delivery log that the filters select, newest first, a page at a time."""
        cursor: str | None = None
        while True:
            page = await self.list(
                status=status,
                to=to,
                sender=sender,
                template=template,
                provider=provider,
                tags=tags,
                since=since,
                until=until,
                limit=page_size,
                cursor=cursor,
            )
            for email in page.items:
                yield email
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def cancel(self, email_id: str) -> EmailRecord:
        """Cancel an email still waiting for its send_at time. Conflict for any other."""
        return await self._client.send(calls.cancel_email(email_id))

    async def preview(
        self, template: str, variables: Mapping[str, Any] | None = None, locale: str | None = None
    ) -> PreviewResult:
        """The EmailTemplate in force rendered with `variables` (its declared defaults fill
        in), as a send would render it; nothing is sent."""
        return await self._client.send(calls.preview_template(template, variables, locale))


class AsyncSuppressions:
    def __init__(self, client: AsyncStackyard) -> None:
        self._client = client

    async def list(
        self, *, reason: SuppressionReason | None = None, limit: int = 50, cursor: str | None = None
    ) -> SuppressionPage:
        """One page of the suppression list, in address order."""
        return await self._client.send(calls.list_suppressions(reason, limit, cursor))

    async def iter(
        self, *, reason: SuppressionReason | None = None, page_size: int = 100
    ) -> AsyncIterator[Suppression]:
        """Every suppressed address (of `reason`), in address order, a page at a time."""
        cursor: str | None = None
        while True:
            page = await self.list(reason=reason, limit=page_size, cursor=cursor)
            for suppression in page.items:
                yield suppression
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def add(self, address: str, reason: SuppressionReason = "manual", detail: str | None = None) -> Suppression:
        """Send no more email to `address`; adding it again updates its reason and detail."""
        return await self._client.send(calls.add_suppression(address, reason, detail))

    async def remove(self, address: str) -> None:
        """Take `address` off the list. NotFound when it is not on it."""
        await self._client.send(calls.remove_suppression(address))
