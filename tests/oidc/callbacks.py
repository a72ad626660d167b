"""The relying parties' redirect URIs, answered on loopback: what the browser is sent back to.

The example OIDCClients (examples/oidc-client.yaml) register http://127.0.0.1:8400/callback
(demo-web), :8401 (demo-spa) and :8402 (partner-app), with `/logged-out` after logout. A
`CallbackServer` listens on one of those ports and, like the app's own callback route,
answers a small page and keeps every URL it was sent to; the test hands that URL to the
client library (Authlib or openid-client), which checks state and iss and redeems the code."""

from __future__ import annotations

import http.server
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit


@dataclass
class CallbackServer:
    port: int
    received: list[str] = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> CallbackServer:
        catcher = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with catcher._lock:
                    catcher.received.append(f"{catcher.origin}{self.path}")
                query = parse_qs(urlsplit(self.path).query)
                title = "Signed out" if "logged-out" in self.path else "Back at the app"
                note = f"error: {query['error'][0]}" if "error" in query else "the app takes it from here"
                body = f"<!doctype html><title>{title}</title><h1>{title}</h1><p>{note}</p>".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        try:
            self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        except OSError as exc:
            raise RuntimeError(
                f"port {self.port} (a redirect URI of examples/oidc-client.yaml) is taken: stop what listens there"
            ) from exc
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def mark(self) -> int:
        """How many URLs were received so far: `wait(after=mark)` waits for a newer one."""
        with self._lock:
            return len(self.received)

    def wait(self, after: int, path: str = "/callback", timeout: float = 15) -> str:
        """The first URL received at `path` after the mark `after`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for url in self.received[after:]:
                    if urlsplit(url).path == path:
                        return url
            time.sleep(0.05)
        got = self.received[after:]
        raise AssertionError(f"nothing came back to {self.origin}{path} within {timeout} s (got {got})")
