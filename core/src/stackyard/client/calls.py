"""What each call of the SDK sends and how its answer is read: one description shared by
the sync and the async client, so that the two cannot drift apart."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from stackyard.jobs.contract import (
    DeadLetterFilter,
    DeadLetterResult,
    EnqueueRequest,
    EventRequest,
    EventResult,
    HttpTarget,
    Job,
    JobPage,
    QueueInfo,
    QueueList,
)

from .errors import StackyardError
from .retry import retry_after

DEFAULT_API_URL = "http://127.0.0.1:8080"
API_URL_ENV = "STACKYARD_API_URL"
API_TOKEN_ENV = "STACKYARD_API_TOKEN"

Answer = TypeVar("Answer", bound=BaseModel)
HttpTargetLike = HttpTarget | Mapping[str, Any] | str
Seconds = float | timedelta


@dataclass(frozen=True)
class Call(Generic[Answer]):
    """One request and the model of its success answer. `repeatable`: sending it again after
    a connection broke mid-request cannot do the thing twice (a read, or an enqueue carrying
    an Idempotency-Key); a request that never reached the api is always sent again."""

    method: Literal["GET", "POST"]
    path: str
    answer: type[Answer]
    json: Any = None
    params: dict[str, str | int] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    repeatable: bool = False

    def read(self, response: httpx.Response) -> Answer:
        """The answer's model, or the typed exception of its problem."""
        if not response.is_success:
            raise StackyardError.from_response(response, retry_after(response))
        try:
            return self.answer.model_validate(response.json())
        except (ValueError, ValidationError) as exc:
            raise StackyardError(
                response.status_code,
                "Unexpected answer",
                f"{self.method} {self.path} answered a body that is not a {self.answer.__name__}: {exc}"[:500],
            ) from exc


def base_url(url: str | None) -> str:
    """The api's URL: the argument, else $STACKYARD_API_URL, else the local default."""
    resolved = (url or os.environ.get(API_URL_ENV) or DEFAULT_API_URL).rstrip("/")
    if not resolved.startswith(("http://", "https://")):
        raise ValueError(f"the stackyard api URL must start with http:// or https://, not {resolved!r}")
    return resolved


def default_headers(token: str | None) -> dict[str, str]:
    """User-Agent, and the bearer token of the argument or of $STACKYARD_API_TOKEN."""
    headers = {"User-Agent": f"stackyard-python/{_version()}", "Accept": "application/json"}
    token = token or os.environ.get(API_TOKEN_ENV)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _version() -> str:
    try:
        return version("stackyard")
    except PackageNotFoundError:
        return "0"


def _seconds(value: Seconds | None) -> float | None:
    return value.total_seconds() if isinstance(value, timedelta) else value


def _segment(value: str) -> str:
    return quote(value, safe="")


def enqueue(
    function: str | None,
    *,
    http: HttpTargetLike | None,
    payload: Any,
    queue: str,
    priority: int | None,
    delay: Seconds | None,
    run_at: datetime | None,
    timeout: Seconds | None,
    max_attempts: int | None,
    idempotency_key: str | None,
) -> Call[Job]:
    """POST /v1/jobs. The Idempotency-Key header is the caller's key, else a fresh uuid4:
    the same for every retry of this call, so that a retry never enqueues twice.
    Raises pydantic's ValidationError for a request the contract refuses."""
    target = HttpTarget.model_validate({"url": http}) if isinstance(http, str) else http
    request = EnqueueRequest.model_validate(
        {
            "queue": queue,
            "function": function,
            "http": target,
            "payload": payload,
            "priority": priority,
            "delay": _seconds(delay),
            "run_at": run_at,
            "timeout": _seconds(timeout),
            "max_attempts": max_attempts,
            "idempotency_key": idempotency_key,
        }
    )
    body = request.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"idempotency_key"})
    key = request.idempotency_key or str(uuid.uuid4())
    return Call("POST", "/v1/jobs", Job, json=body, headers={"Idempotency-Key": key}, repeatable=True)


def get_job(job_id: str) -> Call[Job]:
    return Call("GET", f"/v1/jobs/{_segment(job_id)}", Job, repeatable=True)


def cancel_job(job_id: str) -> Call[Job]:
    return Call("POST", f"/v1/jobs/{_segment(job_id)}/cancel", Job)


def list_queues() -> Call[QueueList]:
    return Call("GET", "/v1/queues", QueueList, repeatable=True)


def get_queue(name: str) -> Call[QueueInfo]:
    return Call("GET", f"/v1/queues/{_segment(name)}", QueueInfo, repeatable=True)


def dead_letters(name: str, limit: int, cursor: str | None) -> Call[JobPage]:
    params: dict[str, str | int] = {"limit": limit}
    if cursor:
        params["cursor"] = cursor
    return Call("GET", f"/v1/queues/{_segment(name)}/dead", JobPage, params=params, repeatable=True)


def dead_letter_action(
    action: Literal["replay", "purge"],
    name: str,
    ids: Sequence[str] | None,
    function: str | None,
    all: bool,
) -> Call[DeadLetterResult]:
    """POST /v1/queues/{name}/dead/{replay,purge}; exactly one selector, or ValidationError."""
    selector = DeadLetterFilter(ids=None if ids is None else list(ids), function=function, all=all)
    body = selector.model_dump(mode="json", by_alias=True, exclude_none=True)
    return Call("POST", f"/v1/queues/{_segment(name)}/dead/{action}", DeadLetterResult, json=body)


def send_event(name: str, data: Any) -> Call[EventResult]:
    body = EventRequest(name=name, data=data).model_dump(mode="json", by_alias=True)
    return Call("POST", "/v1/events", EventResult, json=body)
