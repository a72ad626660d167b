"""A local stand-in for a browser vendor's web push service (Mozilla's autopush, Google's FCM
web push endpoint), and the browsers that subscribe to it, following RFC 8030 (the push
protocol), RFC 8291 (message encryption) and RFC 8292 (VAPID):

    POST /push/<token>    a push message to one subscription: 201 Created with a Location

Each request is checked as a push service does, and refused with its answers:

    400  no TTL header, an Urgency that RFC 8030 does not name, a Topic that is not 1-32
         base64url characters, a Content-Encoding other than aes128gcm, a body that does not
         decrypt
    401  no `Authorization: vapid t=<JWT>, k=<key>`, or a JWT whose ES256 signature does not
         verify with k (checked here with `cryptography`, not with the sender's JWT library),
         whose `aud` is not this service's origin, whose `exp` is past or more than 24 h
         ahead, or whose `sub` is not a mailto: or https: contact
    403  k is not the applicationServerKey the browser subscribed with
    404  an endpoint it never made (or dropped)
    410  an endpoint told to be gone (`gone(endpoint)`): the browser unsubscribed
    413  a body over 4096 bytes
    any  status told with `answer(endpoint, status)` (429, 500, ...)

The body is decrypted with `http_ece` (the reference implementation of RFC 8188) using the
browser's private key and auth secret; `messages()` holds the plaintexts with the headers
they came with. It serves HTTPS (a throw-away CA: `ca_file` for SSL_CERT_FILE, `ssl_context()`
for an httpx client), as real push services do and as stackyard requires of an endpoint.

    with PushService() as push:
        browser = push.subscribe(vapid_public_key)      # a P-256 key pair + 16-byte auth secret
        browser.subscription                            # the PushSubscription JSON for the api
        ... send ...
        push.messages(browser.endpoint)[0].json()
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import http_ece
import orjson
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from .certs import CertificateAuthority
from .fake_server import FakeServer

MAX_BODY = 4096
MAX_EXPIRY = 24 * 3600
URGENCIES = ("very-low", "low", "normal", "high")
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


@dataclass
class Browser:
    """One browser's subscription: its endpoint, its P-256 key pair and its auth secret."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    application_server_key: str | None = None

    @property
    def p256dh(self) -> str:
        return b64url(_point(self.private_key.public_key()))

    @property
    def subscription(self) -> dict[str, Any]:
        """What `PushSubscription.toJSON()` gives in a browser."""
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": self.p256dh, "auth": b64url(self.auth)},
        }

    def decrypt(self, body: bytes) -> bytes:
        """RFC 8291 decryption of an aes128gcm body (the sender's key is the header's key id)."""
        plain: bytes = http_ece.decrypt(body, private_key=self.private_key, auth_secret=self.auth, version="aes128gcm")
        return plain


@dataclass(frozen=True)
class PushedMessage:
    """A push message the service accepted, decrypted."""

    endpoint: str
    plaintext: bytes
    ttl: int
    urgency: str
    topic: str | None
    claims: dict[str, Any]
    vapid_key: str
    received_at: float

    def json(self) -> Any:
        return orjson.loads(self.plaintext)


@dataclass(frozen=True)
class PushRequest:
    """Any request, with the answer it got and why."""

    endpoint: str
    status: int
    reason: str
    headers: dict[str, str]


@dataclass
class _State:
    browsers: dict[str, Browser] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    answers: dict[str, int] = field(default_factory=dict)
    messages: list[PushedMessage] = field(default_factory=list)
    requests: list[PushRequest] = field(default_factory=list)


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def verify_vapid(authorization: str, origin: str, now: float) -> tuple[dict[str, Any], str]:
    """RFC 8292 §3: the claims and k of a `vapid t=..., k=...` header, checked; Refused (401)
    says what is wrong."""
    scheme, _, params = authorization.partition(" ")
    if scheme.lower() != "vapid":
        raise Refused(401, "Authorization is not the vapid scheme")
    values = {}
    for part in params.split(","):
        name, _, value = part.strip().partition("=")
        values[name.strip()] = value.strip()
    token, key = values.get("t"), values.get("k")
    if not token or not key:
        raise Refused(401, "vapid needs t= and k=")
    try:
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
        header_b64, claims_b64, signature_b64 = token.split(".")
        header, claims = orjson.loads(unb64url(header_b64)), orjson.loads(unb64url(claims_b64))
        signature = unb64url(signature_b64)
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        raise Refused(401, "the vapid key or JWT is malformed") from None
    if header.get("alg") != "ES256" or len(signature) != 64:
        raise Refused(401, "the JWT is not ES256")
    der = utils.encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        public.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Refused(401, "the JWT signature does not verify with k") from None
    if claims.get("aud") != origin:
        raise Refused(401, f"aud {claims.get('aud')!r} is not {origin!r}")
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= now or exp > now + MAX_EXPIRY:
        raise Refused(401, "exp is past or more than 24 h ahead")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.startswith(("mailto:", "https:")):
        raise Refused(401, "sub is not a mailto: or https: contact")
    return claims, key


class PushService(FakeServer[_State]):
    name = "push service"
    auto_decompress = False

    def __init__(self) -> None:
        super().__init__(_State)
        self._ca = CertificateAuthority("stackyard-harness-push-ca")
        pair = self._ca.issue("push service", server_names=["localhost"], server_ips=["127.0.0.1"])
        self._dir = Path(tempfile.mkdtemp(prefix="push-service-"))
        self.cert_file, self.key_file = pair.write(self._dir, "server")
        self.ca_file = self._dir / "ca.pem"
        self.ca_file.write_bytes(self._ca.cert_pem)
        self._seen = threading.Condition(self._lock)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this service (`httpx.AsyncClient(verify=...)`)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    # --- browsers and answers -----------------------------------------------------------------

    def subscribe(self, application_server_key: str | None = None) -> Browser:
        """A new browser subscription (PushManager.subscribe): a fresh P-256 key pair, a
        16-byte auth secret and an endpoint; with the Stack's VAPID public key, pushes must
        be signed by it."""
        browser = Browser(
            endpoint=f"{self.url}/push/{secrets.token_urlsafe(24)}",
            private_key=ec.generate_private_key(ec.SECP256R1()),
            auth=os.urandom(16),
            application_server_key=application_server_key,
        )
        with self._lock:
            self._state.browsers[browser.endpoint] = browser
        return browser

    def forget(self, endpoint: str) -> None:
        """Drop the endpoint as if the service never made it: 404 Not Found from now on."""
        with self._lock:
            self._state.browsers.pop(endpoint, None)

    def gone(self, endpoint: str) -> None:
        """The browser unsubscribed: its endpoint answers 410 Gone from now on."""
        with self._lock:
            self._state.gone.add(endpoint)

    def answer(self, endpoint: str, status: int | None) -> None:
        """Answer this status to pushes to the endpoint (None: accept them again)."""
        with self._lock:
            if status is None:
                self._state.answers.pop(endpoint, None)
            else:
                self._state.answers[endpoint] = status

    def messages(self, endpoint: str | None = None) -> list[PushedMessage]:
        with self._lock:
            return [m for m in self._state.messages if endpoint is None or m.endpoint == endpoint]

    def requests(self, endpoint: str | None = None) -> list[PushRequest]:
        with self._lock:
            return [r for r in self._state.requests if endpoint is None or r.endpoint == endpoint]

    def wait_for_messages(self, count: int, endpoint: str | None = None, timeout: float = 10) -> list[PushedMessage]:
        """At least `count` accepted messages (to the endpoint); TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._seen:
            while True:
                found = [m for m in self._state.messages if endpoint is None or m.endpoint == endpoint]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(found)} of {count} push messages arrived in {timeout} s")
                self._seen.wait(left)

    # --- the service --------------------------------------------------------------------------

    def _application(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/push/{token}", self._push)
        return app

    async def _serve(self) -> None:
        runner = web.AppRunner(self._application(), access_log=None, shutdown_timeout=1, auto_decompress=False)
        await runner.setup()
        self._runner = runner
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
        self.port = runner.addresses[0][1]

    async def _push(self, request: web.Request) -> web.Response:
        endpoint = f"{self.url}/push/{request.match_info['token']}"
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            message = self._accept(endpoint, headers, body)
        except Refused as refused:
            with self._lock:
                self._state.requests.append(PushRequest(endpoint, refused.status, refused.reason, headers))
            return web.json_response({"code": refused.status, "message": refused.reason}, status=refused.status)
        with self._seen:
            self._state.requests.append(PushRequest(endpoint, 201, "created", headers))
            self._state.messages.append(message)
            self._seen.notify_all()
        return web.Response(status=201, headers={"Location": f"{self.url}/m/{secrets.token_urlsafe(16)}"})

    def _accept(self, endpoint: str, headers: dict[str, str], body: bytes) -> PushedMessage:
        with self._lock:
            browser = self._state.browsers.get(endpoint)
            gone = endpoint in self._state.gone
            told = self._state.answers.get(endpoint)
        if browser is None:
            raise Refused(404, "no such subscription")
        if gone:
            raise Refused(410, "the subscription has expired or was unsubscribed")
        if told is not None:
            raise Refused(told, f"told to answer {told}")
        ttl = headers.get("ttl", "")
        if not ttl.isdigit():
            raise Refused(400, "the TTL header is missing or not a number of seconds")
        urgency = headers.get("urgency", "normal")
        if urgency not in URGENCIES:
            raise Refused(400, f"Urgency {urgency!r} is not one of {', '.join(URGENCIES)}")
        topic = headers.get("topic")
        if topic is not None and not _TOPIC.fullmatch(topic):
            raise Refused(400, "Topic must be 1-32 base64url characters")
        claims, key = verify_vapid(headers.get("authorization", ""), self.url, time.time())
        if browser.application_server_key is not None and key != browser.application_server_key:
            raise Refused(403, "k is not the applicationServerKey of the subscription")
        if len(body) > MAX_BODY:
            raise Refused(413, f"the body is {len(body)} bytes, over {MAX_BODY}")
        if headers.get("content-encoding") != "aes128gcm":
            raise Refused(400, "Content-Encoding must be aes128gcm")
        try:
            plaintext = browser.decrypt(body)
        except Exception as exc:  # http_ece raises its own and cryptography's errors
            raise Refused(400, f"the body does not decrypt: {type(exc).__name__}: {exc}") from None
        return PushedMessage(endpoint, plaintext, int(ttl), urgency, topic, claims, key, time.time())
