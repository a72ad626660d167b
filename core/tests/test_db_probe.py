"""The database probe against real servers: the harness's FerretDB (plain, and a second one
listening with TLS under a throw-away CA), a port nobody listens on, a server that accepts
and never answers."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    OperationFailure,
    ProtocolError,
    ServerSelectionTimeoutError,
    WaitQueueTimeoutError,
)
from stackyard.db.probe import classify, is_connection_error, probe, scrub
from stackyard_harness.certs import CertificateAuthority
from stackyard_harness.process import ManagedProcess, free_port, tcp_open
from stackyard_harness.tools import Tools

FAST = {"serverSelectionTimeoutMS": 1500, "connectTimeoutMS": 1000, "socketTimeoutMS": 1000}


async def probe_uri(uri: str, **options: Any) -> Any:
    client: AsyncMongoClient[Any] = AsyncMongoClient(uri, **(FAST | options))
    try:
        return await probe(client, "app")
    finally:
        await client.close()


class Listener:
    """A TCP server on a free loopback port that accepts and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        for conn in self.held:
            conn.close()
        self.sock.close()


@pytest.fixture(scope="module")
def tls_mongo(tmp_path_factory: pytest.TempPathFactory, mongo_server: Any) -> Iterator[tuple[int, Path]]:
    """FerretDB listening with TLS only, its certificate from a fresh CA: (port, CA file)."""
    directory = tmp_path_factory.mktemp("tls-ferretdb")
    ca = CertificateAuthority("probe-test-ca")
    cert, key = ca.issue("localhost", server_ips=["127.0.0.1"]).write(directory, "server")
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    (directory / "data").mkdir()
    port = free_port()
    process = ManagedProcess(
        "ferretdb-tls",
        [
            str(Tools.locate().require("ferretdb")),
            "--handler=sqlite",
            f"--sqlite-url=file:{directory / 'data'}/",
            "--listen-addr=",
            f"--listen-tls=127.0.0.1:{port}",
            f"--listen-tls-cert-file={cert}",
            f"--listen-tls-key-file={key}",
            f"--state-dir={directory}",
            f"--debug-addr=127.0.0.1:{free_port()}",
            "--telemetry=disable",
            "--log-level=warn",
        ],
        directory / "ferretdb.log",
    ).start()
    try:
        process.wait_ready(lambda: tcp_open(port), 30, "listening")
        yield port, ca_file
    finally:
        process.stop()


@pytest.fixture
async def client(mongo_server: Any) -> AsyncIterator[AsyncMongoClient[Any]]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_server.url, **FAST)
    yield client
    await client.close()


async def test_probe_reports_version_topology_and_round_trip(client: AsyncMongoClient[Any]) -> None:
    result = await probe(client, "app")
    version = (await client.admin.command("buildInfo"))["version"]
    assert result.ok and result.reason == "Connected"
    assert result.server is not None
    assert (result.server.version, result.server.topology) == (version, "Single")
    assert 0 <= result.server.round_trip_ms < 1000
    assert result.message == f"MongoDB {version}, Single, {result.server.round_trip_ms:g} ms"
    assert result.server.checked_at.endswith("Z")


async def test_refused_connection_is_unreachable() -> None:
    port = free_port()
    result = await probe_uri(f"mongodb://127.0.0.1:{port}/")
    assert (result.ok, result.reason, result.server) == (False, "Unreachable", None)
    assert f"127.0.0.1:{port}" in result.message
    assert "Topology" not in result.message and "configured timeouts" not in result.message


async def test_refused_credentials_are_authentication_failed_and_never_quoted(mongo_server: Any) -> None:
    # FerretDB without authentication answers every SCRAM attempt with code 18.
    uri = mongo_server.url.replace("mongodb://", "mongodb://app:s3cret-pass@")
    result = await probe_uri(uri)
    assert (result.ok, result.reason) == (False, "AuthenticationFailed")
    assert result.message.startswith("the server refused the credentials")
    assert "s3cret-pass" not in result.message and "full error" not in result.message


async def test_untrusted_certificate_is_a_tls_error(tls_mongo: tuple[int, Path]) -> None:
    port, ca_file = tls_mongo
    refused = await probe_uri(f"mongodb://127.0.0.1:{port}/", tls=True)
    assert (refused.ok, refused.reason) == (False, "TLSError")
    assert "certificate" in refused.message.lower()
    trusted = await probe_uri(f"mongodb://127.0.0.1:{port}/", tls=True, tlsCAFile=str(ca_file))
    assert (trusted.ok, trusted.reason) == (True, "Connected"), trusted.message


async def test_plain_client_on_a_tls_port_is_not_connected(tls_mongo: tuple[int, Path]) -> None:
    port, _ = tls_mongo
    result = await probe_uri(f"mongodb://127.0.0.1:{port}/")
    assert not result.ok and result.reason in ("Timeout", "Unreachable", "Misconfigured"), result


async def test_silent_server_is_a_timeout() -> None:
    silent = Listener()
    try:
        result = await probe_uri(f"mongodb://127.0.0.1:{silent.port}/")
    finally:
        silent.close()
    assert (result.ok, result.reason) == (False, "Timeout"), result


async def test_overall_bound_is_a_timeout() -> None:
    silent = Listener()
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        f"mongodb://127.0.0.1:{silent.port}/", serverSelectionTimeoutMS=30000
    )
    try:
        result = await probe(client, "app", timeout=0.5)
    finally:
        await client.close()
        silent.close()
    assert (result.reason, result.message) == ("Timeout", "no answer within 0.5 s")


def test_server_refusals_are_classified_by_code() -> None:
    assert classify(OperationFailure("bad auth", 8000))[0] == "AuthenticationFailed"
    assert classify(ExecutionTimeout("operation exceeded time limit", 50))[0] == "Timeout"
    assert classify(OperationFailure("not authorized on app", 13)) == (
        "Misconfigured",
        "the server refused the probe (13): not authorized on app",
    )
    # what the sync driver raises when an HTTP server answers (the async one closes the connection)
    reason, message = classify(ProtocolError("Message length (1347703880) is larger than server max message size"))
    assert reason == "Misconfigured" and "protocol" in message


def test_connection_errors_are_told_from_request_errors() -> None:
    for exc in (
        ServerSelectionTimeoutError("no servers"),
        AutoReconnect("connection reset"),
        NetworkTimeout("timed out"),
        WaitQueueTimeoutError("pool busy"),
    ):
        assert is_connection_error(exc), exc
    wrapped = RuntimeError("saving failed")
    wrapped.__cause__ = AutoReconnect("connection closed")
    assert is_connection_error(wrapped)
    for exc in (DuplicateKeyError("E11000"), OperationFailure("bad query", 2), RuntimeError("bug"), TimeoutError()):
        assert not is_connection_error(exc), exc


def test_scrub_removes_uris_and_credentials() -> None:
    text = "failed on mongodb+srv://ana:pw@db.example.net/app?tls=true and bob:hunter2@db2:27017"
    assert scrub(text) == "failed on mongodb://*** and ***@db2:27017"
