"""Console sessions: log in with the Stack's admin API key, a server-side session in Redis,
and what every console page uses.

- `ConsoleDep`: the logged-in session. Without one, any console request (GET or POST) answers
  303 to /console/login?next=… and acts on nothing.
- `CsrfDep`: for every POST action: the form field `csrf_token` must equal the session's and
  the Origin (or Referer), when sent, must be this host; else 403 with the error page.
- `render(request, "console/x.html", **context)`: the page with the common context.
- `flash(request, message, kind)` then `return redirect(url)`: POST/redirect/GET.

The session id is random (32 bytes) and lives only in the HttpOnly cookie; Redis keeps its
SHA-256, the CSRF token, when it started and was last used, and a fingerprint of the admin key
it was opened with (a rotated key ends every console session). Idle 30 minutes, 12 hours at
most; live refreshes (X-Console-Live) do not count as use."""

from __future__ import annotations

import hashlib
import hmac
import json
import posixpath
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from ..auth_deps import auth_state, client_info
from ..deps import get_runtime

COOKIE = "stackyard_console"
COOKIE_PATH = "/console"
IDLE_SECONDS = 30 * 60
ABSOLUTE_SECONDS = 12 * 60 * 60
KEY_PREFIX = "sy:console:session:"
LIVE_HEADER = "x-console-live"

NAV = (
    ("/console", "Overview", ()),
    ("/console/users", "Users", ("/console/users",)),
    ("/console/emails", "Emails", ("/console/emails", "/console/suppressions")),
    ("/console/jobs", "Jobs", ("/console/jobs",)),
    ("/console/notifications", "Notifications", ("/console/notify", "/console/notifications", "/console/webhooks")),
)
"""(link, label, the path prefixes of the pages it stands for)."""


def nav_items(path: str) -> list[tuple[str, str, bool]]:
    """(link, label, whether the page at `path` is under it) for the nav."""
    return [
        (href, label, path == href or any(path == p or path.startswith(p + "/") for p in prefixes))
        for href, label, prefixes in NAV
    ]


templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.filters["console_datetime"] = lambda seconds: (
    datetime.fromtimestamp(float(seconds), UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
)


class LoginRequired(Exception):
    """No live console session: answered with 303 to the login page (see install)."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


class ConsoleForbidden(Exception):
    """A POST without the session's CSRF token, or from another origin: 403, nothing done."""

    def __init__(self, message: str) -> None:
        self.message = message


@dataclass(frozen=True)
class ConsoleSession:
    id: str
    csrf_token: str
    created: float
    last_seen: float


def _key(session_id: str) -> str:
    return KEY_PREFIX + hashlib.sha256(session_id.encode()).hexdigest()


def flash_key(session_id: str) -> str:
    return _key(session_id) + ":flash"


def key_fingerprint(admin_key: str) -> str:
    return hashlib.sha256(b"stackyard-console:" + admin_key.encode()).hexdigest()[:32]


def admin_api_key(request: Request) -> str | None:
    """The admin API key of the config in force (spec.auth.adminApiKeySecretRef), or None."""
    runtime = request.app.state.runtime
    applied = runtime.live.current
    if applied is None:
        return None
    return auth_state(request).stack_auth(applied).admin_api_key


def is_live(request: Request) -> bool:
    return request.headers.get(LIVE_HEADER) == "1"


def is_https(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").lower() == "https"


def safe_next(value: str | None) -> str:
    """Only a local console path (never //host, a scheme, a backslash, dot segments or a
    control character); else /console."""
    if not value or not value.startswith("/console") or "\\" in value or value.startswith("//"):
        return "/console"
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value) or "%2e" in value.lower():
        return "/console"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not (parts.path == "/console" or parts.path.startswith("/console/")):
        return "/console"
    if posixpath.normpath(parts.path) != parts.path.rstrip("/") and parts.path != "/console/":
        return "/console"
    return value


def login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET" or target.startswith("/console/login"):
        target = "/console"
    return f"/console/login?next={quote(target, safe='/')}"


async def open_session(request: Request, admin_key: str) -> str:
    """A new session for a correct admin key: its id (for the cookie)."""
    redis = (await get_runtime(request)).redis
    session_id = secrets.token_urlsafe(32)
    now = time.time()
    record = {"csrf": secrets.token_urlsafe(32), "created": now, "seen": now, "key": key_fingerprint(admin_key)}
    await redis.set(_key(session_id), json.dumps(record), ex=IDLE_SECONDS)
    return session_id


async def close_session(request: Request, session_id: str) -> None:
    redis = (await get_runtime(request)).redis
    await redis.delete(_key(session_id), flash_key(session_id))


async def console_session(request: Request) -> ConsoleSession:
    """The request's live console session, else LoginRequired (303 to the login page)."""
    session_id = request.cookies.get(COOKIE)
    admin_key = admin_api_key(request)
    if not session_id or admin_key is None:
        raise LoginRequired(login_url(request))
    redis = (await get_runtime(request)).redis
    raw = await redis.get(_key(session_id))
    if raw is None:
        raise LoginRequired(login_url(request))
    record = json.loads(raw)
    now = time.time()
    expired = now - record["seen"] > IDLE_SECONDS or now - record["created"] > ABSOLUTE_SECONDS
    if expired or not hmac.compare_digest(record["key"], key_fingerprint(admin_key)):
        await close_session(request, session_id)
        raise LoginRequired(login_url(request))
    if not is_live(request):
        record["seen"] = now
        remaining = int(ABSOLUTE_SECONDS - (now - record["created"]))
        await redis.set(_key(session_id), json.dumps(record), ex=max(1, min(IDLE_SECONDS, remaining)))
        flashes = await _take_flashes(redis, session_id)
    else:
        flashes = []
    session = ConsoleSession(session_id, record["csrf"], record["created"], record["seen"])
    request.state.console_session = session
    request.state.console_flashes = flashes
    return session


async def _take_flashes(redis: Any, session_id: str) -> list[dict[str, str]]:
    key = flash_key(session_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.lrange(key, 0, -1)
        pipe.delete(key)
        raw, _ = await pipe.execute()
    return [json.loads(item) for item in raw]


async def store_flashes(redis: Any, session_id: str, flashes: list[dict[str, str]]) -> None:
    """Called by the console middleware before a response goes out (flash is synchronous)."""
    key = flash_key(session_id)
    await redis.rpush(key, *(json.dumps(f) for f in flashes))
    await redis.expire(key, IDLE_SECONDS)


def same_origin(request: Request) -> bool:
    """Origin (else Referer), when sent, names this host (scheme aside: TLS may end at the ingress)."""
    sent = request.headers.get("origin") or request.headers.get("referer")
    if not sent:
        return True
    if sent == "null":
        return False
    host = request.headers.get("host", "")
    return urlsplit(sent).netloc.lower() == host.lower()


SessionDep = Annotated[ConsoleSession, Depends(console_session)]


async def csrf_checked(request: Request, session: SessionDep) -> ConsoleSession:
    """The session of a POST action whose CSRF token and origin are right; else 403."""
    if not same_origin(request):
        raise ConsoleForbidden("This action came from another site and was refused. Nothing was changed.")
    form = await request.form()
    token = form.get("csrf_token")
    if not isinstance(token, str) or not hmac.compare_digest(token.encode(), session.csrf_token.encode()):
        raise ConsoleForbidden("This form has expired or was not sent by the console. Nothing was changed.")
    return session


ConsoleDep = SessionDep
CsrfDep = Annotated[ConsoleSession, Depends(csrf_checked)]


def flash(request: Request, message: str, kind: str = "ok") -> None:
    """A message for the next page this session sees ("ok" or "error")."""
    if not hasattr(request.state, "console_pending_flashes"):
        request.state.console_pending_flashes = []
    request.state.console_pending_flashes.append({"message": message, "kind": "error" if kind == "error" else "ok"})


def redirect(url: str) -> RedirectResponse:
    """303 See Other: after a POST, the browser GETs `url`."""
    return RedirectResponse(url, status_code=303)


def common_context(request: Request) -> dict[str, Any]:
    session: ConsoleSession | None = getattr(request.state, "console_session", None)
    applied = request.app.state.runtime.live.current
    return {
        "session": session,
        "csrf_token": session.csrf_token if session else "",
        "nav": nav_items(request.url.path),
        "current_path": request.url.path,
        "flashes": getattr(request.state, "console_flashes", []),
        "stack_name": applied.config.stack if applied else None,
        "config_hash": applied.hash if applied else None,
        "live": is_live(request),
    }


def render(request: Request, name: str, /, *, status_code: int = 200, **context: Any) -> Response:
    """The template `name` (e.g. "console/users/list.html") with the common context and `context`."""
    return templates.TemplateResponse(request, name, common_context(request) | context, status_code=status_code)


# -- login and logout -------------------------------------------------------------------

LOGIN_FAILURES_ALLOWED = 10
LOGIN_FAILURE_WINDOW = 15 * 60
GENERIC_REFUSAL = "That key was not accepted."

router = APIRouter(prefix="/console", include_in_schema=False)


async def _failures_key(request: Request) -> str:
    """Counted per client address (behind the Stack's trusted proxies, the forwarded one)."""
    return f"sy:console:login-failures:{(await client_info(request)).ip or 'unknown'}"


@router.get("/login")
async def login_page(request: Request, next: str | None = None, bye: bool = False) -> Response:
    off = admin_api_key(request) is None
    return render(request, "console/login.html", next=safe_next(next), off=off, error=None, bye=bye)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    next_url = safe_next(str(form.get("next") or ""))
    if not same_origin(request):
        raise ConsoleForbidden("This login came from another site and was refused.")
    admin_key = admin_api_key(request)
    if admin_key is None:
        return render(request, "console/login.html", status_code=503, next=next_url, off=True, error=None, bye=False)
    redis = (await get_runtime(request)).redis
    failures_key = await _failures_key(request)
    failures = int(await redis.get(failures_key) or 0)
    if failures >= LOGIN_FAILURES_ALLOWED:
        error = "Too many refused attempts from this address. Wait a few minutes and try again."
        return render(request, "console/login.html", status_code=429, next=next_url, off=False, error=error, bye=False)
    presented = str(form.get("api_key") or "")
    if not hmac.compare_digest(presented.encode(), admin_key.encode()):
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incr(failures_key)
            pipe.expire(failures_key, LOGIN_FAILURE_WINDOW)
            await pipe.execute()
        error = GENERIC_REFUSAL
        return render(request, "console/login.html", status_code=401, next=next_url, off=False, error=error, bye=False)
    session_id = await open_session(request, admin_key)
    response = redirect(next_url)
    response.set_cookie(
        COOKIE,
        session_id,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
        max_age=ABSOLUTE_SECONDS,
    )
    return response


@router.post("/logout")
async def logout(request: Request, session: CsrfDep) -> Response:
    await close_session(request, session.id)
    response = redirect("/console/login?bye=1")
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=is_https(request))
    return response
