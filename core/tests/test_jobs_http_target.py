"""HTTP-target jobs: signing and verifying per Standard Webhooks, allowed-URL prefixes, and
call_http_target against a real local HTTP server that verifies every request it gets."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import hmac
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from stackyard.jobs.contract import HttpTarget
from stackyard.jobs.errors import NonRetryable, RetryAfter
from stackyard.jobs.http_target import (
    RESULT_BODY_LIMIT,
    HttpTargetError,
    InvalidSignature,
    call_http_target,
    forbidden_headers,
    parse_retry_after,
    sign,
    url_allowed,
    verify,
)

KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
JOB_ID = "emails.01JD3QZ8F6X9T2V7K4M5N6P7Q8"


def reference_signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The scheme spelled out with hmac, independently of the module under test."""
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(secret: str = SECRET, msg_id: str = "msg_1", timestamp: int = 1_700_000_000, body: bytes = b"{}"):
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


# --- sign and verify -----------------------------------------------------------------------


def test_the_signature_matches_the_standard_webhooks_reference_vector():
    # The example the Standard Webhooks reference libraries test against.
    secret, msg_id, timestamp, body = (
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    expected = reference_signature(base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), msg_id, timestamp, body)
    assert sign(secret, msg_id, timestamp, body) == expected == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": expected}
    verify(secret, headers, body, now=timestamp)


def test_a_secret_without_whsec_prefix_is_its_own_utf8_bytes():
    body = b'{"a":1}'
    assert sign("plain sécret", "m", 5, body) == reference_signature("plain sécret".encode(), "m", 5, body)
    assert sign(SECRET, "m", 5, body) == reference_signature(KEY, "m", 5, body)
    unpadded = "whsec_" + base64.b64encode(b"12345").decode().rstrip("=")
    assert sign(unpadded, "m", 5, body) == reference_signature(b"12345", "m", 5, body)


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_not*base64!"])
def test_an_unusable_secret_is_a_value_error_that_does_not_quote_it(secret):
    with pytest.raises(ValueError, match="signing secret") as caught:
        sign(secret, "m", 5, b"")
    assert not isinstance(caught.value, InvalidSignature)
    if secret.removeprefix("whsec_"):
        assert secret.removeprefix("whsec_") not in str(caught.value)


def test_verify_accepts_headers_in_any_case_and_any_mapping():
    headers = {name.upper(): value for name, value in signed_headers().items()}
    verify(SECRET, headers, b"{}", now=1_700_000_000)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_verify_names_a_missing_header(missing):
    headers = signed_headers()
    del headers[missing]
    with pytest.raises(InvalidSignature, match=f"missing {missing} header"):
        verify(SECRET, headers, b"{}", now=1_700_000_000)


def test_verify_refuses_timestamps_outside_the_tolerance_either_way():
    headers = signed_headers(timestamp=1_700_000_000)
    verify(SECRET, headers, b"{}", now=1_700_000_300)
    verify(SECRET, headers, b"{}", now=1_699_999_700)
    with pytest.raises(InvalidSignature, match="too old: 301 s ago"):
        verify(SECRET, headers, b"{}", now=1_700_000_301)
    with pytest.raises(InvalidSignature, match="too new: 301 s ahead"):
        verify(SECRET, headers, b"{}", now=1_699_999_699)
    verify(SECRET, headers, b"{}", now=1_700_003_000, tolerance=3600)
    with pytest.raises(InvalidSignature, match="too old"):
        verify(SECRET, headers, b"{}", now=1_700_000_011, tolerance=10)
    with pytest.raises(InvalidSignature, match="not unix seconds"):
        verify(SECRET, headers | {"webhook-timestamp": "1700000000.5"}, b"{}", now=1_700_000_000)
    with pytest.raises(InvalidSignature, match="too old"):
        verify(SECRET, signed_headers(timestamp=int(time.time()) - 400), b"{}")


def test_verify_refuses_a_changed_body_id_or_secret():
    headers = signed_headers(body=b'{"amount":1}')
    with pytest.raises(InvalidSignature, match="no matching signature"):
        verify(SECRET, headers, b'{"amount":100}', now=1_700_000_000)
    with pytest.raises(InvalidSignature, match="no matching signature"):
        verify(SECRET, headers | {"webhook-id": "msg_2"}, b'{"amount":1}', now=1_700_000_000)
    with pytest.raises(InvalidSignature, match="no matching signature") as caught:
        verify("whsec_" + base64.b64encode(b"another key").decode(), headers, b'{"amount":1}', now=1_700_000_000)
    assert "another" not in str(caught.value) and SECRET not in str(caught.value)


def test_verify_accepts_any_one_of_several_signatures():
    good = signed_headers()["webhook-signature"]
    old_key = sign("whsec_" + base64.b64encode(b"old key").decode(), "msg_1", 1_700_000_000, b"{}")
    ed25519 = "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg=="
    for header in (f"{old_key} {good}", f"{ed25519} v1,not-base64! {good}", f"{good}  {old_key}"):
        verify(SECRET, signed_headers() | {"webhook-signature": header}, b"{}", now=1_700_000_000)
    with pytest.raises(InvalidSignature, match=r"no matching signature \(checked 2 v1 signatures\)"):
        verify(SECRET, signed_headers() | {"webhook-signature": f"{old_key} {old_key}"}, b"{}", now=1_700_000_000)
    with pytest.raises(InvalidSignature, match="no v1 signature"):
        verify(SECRET, signed_headers() | {"webhook-signature": good.replace("v1,", "v1a,")}, b"{}", now=1_700_000_000)


def test_invalid_signature_is_a_value_error():
    assert issubclass(InvalidSignature, ValueError)


# --- Retry-After ---------------------------------------------------------------------------


def test_retry_after_takes_delta_seconds_or_an_http_date():
    now = 1_700_000_000.0
    assert parse_retry_after("7", now=now) == 7.0
    assert parse_retry_after(" 120 ", now=now) == 120.0
    assert parse_retry_after(email.utils.formatdate(now + 90, usegmt=True), now=now) == 90.0
    assert parse_retry_after(time.asctime(time.gmtime(now + 30)), now=now) == 30.0
    assert parse_retry_after(email.utils.formatdate(now - 90, usegmt=True), now=now) == 0.0
    for unusable in (None, "", "-1", "1.5", "soon", "Mon, 99 Foo 2024"):
        assert parse_retry_after(unusable, now=now) is None, unusable


# --- allowed URLs --------------------------------------------------------------------------

HOST = "https://a.example.com"
HOOKS = "https://a.example.com/hooks"


@pytest.mark.parametrize(
    ("url", "prefixes", "allowed"),
    [
        ("https://a.example.com/hooks", [HOOKS], True),
        ("https://a.example.com/hooks/", [HOOKS], True),
        ("https://a.example.com/hooks/x/y?z=1", [HOOKS], True),
        ("https://A.EXAMPLE.com:443/hooks/x", [HOOKS], True),
        ("https://a.example.com/hoo%6Bs/x", [HOOKS], True),
        ("https://a.example.com/hooks/x", ["https://a.example.com/hooks/"], True),
        ("https://a.example.com/anything", [HOST], True),
        ("https://a.example.com/anything", ["https://a.example.com/"], True),
        ("http://a.example.com:80/x", ["http://a.example.com/"], True),
        ("https://bücher.example/x", ["https://xn--bcher-kva.example"], True),
        ("http://127.0.0.1:8080/run", ["http://127.0.0.1:8080"], True),
        ("https://a.example.com/hooksevil", [HOOKS], False),
        ("https://a.example.com/hook", [HOOKS], False),
        ("https://a.example.com/Hooks/x", [HOOKS], False),
        ("https://a.example.com/", [HOOKS], False),
        ("https://a.example.com/hooks/../admin", [HOOKS], False),
        ("https://a.example.com/hooks/%2e%2e/admin", [HOOKS], False),
        ("https://a.example.com/hooks%2f..%2fadmin", [HOOKS], False),
        ("https://a.example.com/hooks/..%5cadmin", [HOOKS], False),
        ("https://a.example.com.evil.net/hooks", [HOOKS], False),
        ("https://a.example.com@evil.net/hooks", [HOOKS], False),
        ("https://a.example.com:443@evil.net/hooks", [HOOKS], False),
        ("https://a.example.com\\@evil.net/hooks", [HOOKS], False),
        ("https://evil.net#@a.example.com/hooks", [HOOKS], False),
        ("https://evil.net?@a.example.com/hooks", [HOOKS], False),
        ("https://user:pw@a.example.com/hooks", [HOOKS], False),
        ("https://a.example.com:8443/hooks", [HOOKS], False),
        ("http://a.example.com/hooks", [HOOKS], False),
        ("https://b.example.com/hooks", [HOOKS], False),
        ("https://example.com/hooks", [HOOKS], False),
        ("ftp://a.example.com/hooks", ["ftp://a.example.com/hooks"], False),
        ("https://a.example.com/hooks?x=1", ["https://a.example.com/hooks?x=1"], False),
        ("https://a.example.com/hooks", ["https://user@a.example.com/hooks"], False),
        ("not a url", [HOOKS], False),
        ("https://a.example.com/hooks", [], False),
        ("https://a.example.com/jobs/1", ["https://b.example.com", "https://a.example.com/jobs"], True),
    ],
)
def test_url_allowed_matches_whole_origins_and_path_segments(url, prefixes, allowed):
    assert url_allowed(url, prefixes) is allowed


URL_CHARS = st.sampled_from([*"aeh.-_~@:/\\?#%[]5 ", "%2e", "%2f", "%40", "..", "evil.net", "443", "hooks"])


@given(st.lists(URL_CHARS, max_size=12).map("".join))
def test_a_suffix_never_escapes_the_allowed_host(suffix):
    url = HOST + suffix
    if url_allowed(url, [HOST]):
        parsed = httpx.URL(url)  # the parser of the client that dials
        assert (parsed.scheme, parsed.raw_host, parsed.port, parsed.userinfo) == ("https", b"a.example.com", None, b"")
        split = urlsplit(url)  # and a second opinion
        assert (split.hostname, split.port in (None, 443), split.username) == ("a.example.com", True, None)


@given(st.lists(URL_CHARS, max_size=12).map("".join))
def test_a_suffix_never_escapes_the_allowed_path(suffix):
    url = HOOKS + suffix
    if url_allowed(url, [HOOKS]):
        parsed = httpx.URL(url)
        assert parsed.raw_host == b"a.example.com" and parsed.port is None
        path = parsed.path  # decoded and with dot segments resolved, as the server sees it
        assert path == "/hooks" or path.startswith("/hooks/"), path
        assert "/../" not in path + "/" and "\\" not in path


@given(st.from_regex(r"[a-z0-9.-]{1,20}", fullmatch=True), st.sampled_from(["", "/", "/hooks", ":443/hooks"]))
def test_userinfo_that_names_the_allowed_host_never_passes(host, tail):
    assert not url_allowed(f"https://a.example.com@{host}{tail}", [HOST, HOOKS])
    assert not url_allowed(f"https://a.example.com.{host}{tail}", [HOST, HOOKS])


def test_forbidden_headers_names_those_a_job_may_not_set():
    headers = {"X-Tenant": "7", "Host": "internal", "Webhook-Signature": "v1,x", "Content-Length": "1"}
    assert forbidden_headers(headers) == ["Content-Length", "Host", "Webhook-Signature"]
    assert forbidden_headers({"Authorization": "Bearer t", "X-Request-Id": "r"}) == []


# --- call_http_target against a real server ------------------------------------------------


@dataclass
class Receiver:
    base: str
    calls: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture(scope="module")
async def receiver():
    release = asyncio.Event()

    @web.middleware
    async def verified(request: web.Request, handler):
        body = await request.read()
        try:
            verify(SECRET, request.headers, body)
        except InvalidSignature as exc:
            return web.Response(status=401, text=f"bad signature: {exc}")
        state.calls.append((request.path, {k.lower(): v for k, v in request.headers.items()}, body))
        return await handler(request)

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"received": orjson.loads(await request.read())})

    def answer(status: int, text: str = "", **headers: str):
        async def handler(_: web.Request) -> web.Response:
            return web.Response(status=status, text=text or None, headers=headers)

        return handler

    async def big(_: web.Request) -> web.Response:
        return web.Response(body=b"[" + b"1," * 50_000 + b"1]", content_type="application/json")

    async def hang(_: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), 60)
        return web.Response(text="too late")

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        while not release.is_set():
            await response.write(b" ")
            await asyncio.sleep(0.05)
        return response

    app = web.Application(middlewares=[verified])
    later = email.utils.formatdate(time.time() + 120, usegmt=True)
    for path, handler in {
        "/ok": ok,
        "/empty": answer(204),
        "/big": big,
        "/busy": answer(429, "slow down", **{"Retry-After": "7"}),
        "/busy-until": answer(429, **{"Retry-After": later}),
        "/busy-vague": answer(429, **{"Retry-After": "in a while"}),
        "/missing": answer(404, "no such hook\n\nat all"),
        "/gone": answer(410),
        "/unprocessable": answer(422, "x" * 500),
        "/boom": answer(500, "Traceback (most recent call last): KeyError 'account'"),
        "/unavailable": answer(503, "down"),
        "/maintenance": answer(503, "maintenance", **{"Retry-After": "30"}),
        "/request-timeout": answer(408),
        "/moved": answer(307, **{"Location": "/ok"}),
        "/hang": hang,
        "/trickle": trickle,
    }.items():
        app.router.add_route("*", path, handler)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state = Receiver(f"http://127.0.0.1:{port}")
    yield state
    release.set()
    await runner.cleanup()


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as c:
        yield c


@pytest.fixture
def server(receiver):
    receiver.calls.clear()
    return receiver


async def call(client, url, *, secret=SECRET, timeout=5.0, attempt=1, payload=None, **target):
    return await call_http_target(
        client,
        HttpTarget(url=url, **target),
        job_id=JOB_ID,
        queue="emails",
        attempt=attempt,
        payload=payload,
        signing_secret=secret,
        timeout=timeout,
    )


async def test_a_2xx_completes_with_the_parsed_json_and_the_receiver_verifies_it(client, server):
    result = await call(client, server.url("/ok"), payload={"user": "u_42", "n": [1, 2]}, headers={"X-Tenant": "7"})
    assert result == {"status": 200, "body": {"received": {"user": "u_42", "n": [1, 2]}}}
    [(path, headers, body)] = server.calls
    assert path == "/ok" and body == b'{"user":"u_42","n":[1,2]}'
    assert headers["webhook-id"] == JOB_ID
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert headers["webhook-signature"] == reference_signature(KEY, JOB_ID, int(headers["webhook-timestamp"]), body)
    assert headers["stackyard-attempt"] == "1" and headers["stackyard-queue"] == "emails"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("stackyard-jobs/")
    assert headers["x-tenant"] == "7"


async def test_the_target_body_replaces_the_payload(client, server):
    await call(client, server.url("/ok"), payload={"ignored": True}, body={"account": 7}, method="PUT")
    assert server.calls[0][2] == b'{"account":7}'


async def test_every_attempt_carries_the_same_webhook_id(client, server):
    for attempt in (1, 2, 3):
        await call(client, server.url("/ok"), attempt=attempt)
    assert {headers["webhook-id"] for _, headers, _ in server.calls} == {JOB_ID}
    assert [headers["stackyard-attempt"] for _, headers, _ in server.calls] == ["1", "2", "3"]


async def test_a_204_completes_with_no_body(client, server):
    assert await call(client, server.url("/empty")) == {"status": 204, "body": None}


async def test_a_large_answer_is_kept_as_its_first_64_kib_of_text(client, server):
    result = await call(client, server.url("/big"))
    assert result["status"] == 200 and isinstance(result["body"], str)
    assert len(result["body"]) == RESULT_BODY_LIMIT and result["body"].startswith("[1,1,")


async def test_429_retries_no_sooner_than_retry_after(client, server):
    with pytest.raises(RetryAfter, match="answered 429 Too Many Requests: slow down") as caught:
        await call(client, server.url("/busy"))
    assert caught.value.seconds == 7.0
    with pytest.raises(RetryAfter) as caught:
        await call(client, server.url("/busy-until"))
    assert caught.value.seconds is not None and 100 < caught.value.seconds <= 121
    with pytest.raises(RetryAfter) as caught:
        await call(client, server.url("/busy-vague"))
    assert caught.value.seconds is None, "an unparseable Retry-After leaves it to the queue's backoff"


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/boom", 500, "answered 500 Internal Server Error: Traceback (most recent call last): KeyError 'account'"),
        ("/unavailable", 503, "answered 503 Service Unavailable: down"),
        ("/request-timeout", 408, "answered 408 Request Timeout"),
    ],
)
async def test_5xx_and_408_are_retried_with_the_status_and_an_excerpt(client, server, path, status, message):
    with pytest.raises(HttpTargetError) as caught:
        await call(client, server.url(path))
    assert str(caught.value) == f"POST {server.url(path)} {message}"
    assert caught.value.status == status


async def test_a_503_with_retry_after_waits_as_told(client, server):
    with pytest.raises(RetryAfter, match="answered 503 Service Unavailable: maintenance") as caught:
        await call(client, server.url("/maintenance"))
    assert caught.value.seconds == 30.0


async def test_other_4xx_fail_without_retry(client, server):
    with pytest.raises(NonRetryable) as caught:
        await call(client, server.url("/missing"))
    assert str(caught.value) == f"POST {server.url('/missing')} answered 404 Not Found: no such hook at all"
    with pytest.raises(NonRetryable, match=r"answered 410 Gone$"):
        await call(client, server.url("/gone"))
    with pytest.raises(NonRetryable, match=r"answered 422 Unprocessable (Entity|Content): x{200}$"):
        await call(client, server.url("/unprocessable"))


async def test_credentials_in_the_url_stay_out_of_messages(client, server):
    with pytest.raises(NonRetryable) as caught:
        await call(client, server.url("/missing?token=hush"))
    assert "hush" not in str(caught.value) and str(caught.value).startswith(f"POST {server.url('/missing')} answered")
    with pytest.raises(NonRetryable) as caught:
        await call(client, server.url("/missing").replace("://", "://user:hush@"))
    assert "hush" not in str(caught.value) and str(caught.value).startswith(f"POST {server.url('/missing')} answered")


async def test_a_wrong_secret_is_refused_by_the_receiver_and_not_quoted(client, server):
    wrong = "whsec_" + base64.b64encode(b"not the receiver's key").decode()
    with pytest.raises(NonRetryable, match="answered 401 Unauthorized: bad signature: no matching signature") as caught:
        await call(client, server.url("/ok"), secret=wrong)
    assert wrong not in str(caught.value) and wrong[6:] not in str(caught.value)
    assert server.calls == []


async def test_a_redirect_is_not_followed(client, server):
    with pytest.raises(NonRetryable, match="answered 307 Temporary Redirect to /ok; redirects are not followed"):
        await call(client, server.url("/moved"))
    assert [path for path, _, _ in server.calls] == ["/moved"]


async def test_a_server_that_hangs_ends_as_a_retryable_timeout(client, server):
    with pytest.raises(HttpTargetError) as caught:
        await call(client, server.url("/hang"), timeout=0.5)
    assert str(caught.value) == f"POST {server.url('/hang')} timed out after 0.5s"
    assert caught.value.status is None


async def test_a_trickling_answer_is_bounded_by_the_whole_timeout(client, server):
    # Each byte comes well within the read timeout; only the bound on the whole call ends it.
    started = time.monotonic()
    with pytest.raises(HttpTargetError, match=r"timed out after 0\.5s"):
        await call(client, server.url("/trickle"), timeout=0.5)
    assert time.monotonic() - started < 10, "it must not wait for the server to finish"


async def test_a_refused_connection_is_retried(client):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(HttpTargetError) as caught:
        await call(client, f"http://127.0.0.1:{port}/ok")
    assert str(caught.value) == f"POST http://127.0.0.1:{port}/ok: connection refused"


async def test_headers_a_job_may_not_set_fail_before_sending(client, server):
    with pytest.raises(NonRetryable, match="may not set the header"):
        await call(client, server.url("/ok"), headers={"Host": "internal.svc"})
    with pytest.raises(NonRetryable, match="webhook-id"):
        await call(client, server.url("/ok"), headers={"webhook-id": "forged"})
    assert server.calls == []


async def test_an_unusable_secret_is_retried_and_not_quoted(client, server):
    with pytest.raises(HttpTargetError, match="signing secret is unusable") as caught:
        await call(client, server.url("/ok"), secret="whsec_%%%secretish%%%")
    assert "secretish" not in str(caught.value)
    assert server.calls == []


async def test_a_header_value_with_a_line_break_is_never_sent(client, server):
    with pytest.raises(NonRetryable, match="the request cannot be sent"):
        await call(client, server.url("/ok"), headers={"X-Note": "a\r\nX-Injected: 1"})
    assert server.calls == []
