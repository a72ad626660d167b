"""The clamd client against a real clamd (the harness's, with its test signature database):
verdicts over TCP and a unix socket, streams split in chunks, a stream over clamd's
StreamMaxLength answered unscannable, and every way to get no verdict (unreachable, silent,
an ERROR reply) raising ScanUnavailable."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

import pytest
from stackyard.storage.scan import (
    CHUNK_BYTES,
    TOO_LARGE,
    Clamd,
    ScanResult,
    ScanUnavailable,
    parse_address,
    parse_reply,
)
from stackyard_harness.clamav import EICAR, EICAR_SIGNATURE, MARKER, MARKER_SIGNATURE, ClamdServer
from stackyard_harness.process import free_port
from stackyard_harness.pytest_plugin import unavailable
from stackyard_harness.tools import ToolMissing


async def stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def pieces(data: bytes, size: int) -> Iterable[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.fixture(scope="module")
def small_clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClamdServer]:
    """A clamd of its own that accepts streams of 1 MiB at most (and may be paused)."""
    try:
        server = ClamdServer(None, tmp_path_factory.mktemp("clamd-small"), stream_max_length="1M")
    except ToolMissing as exc:
        unavailable(exc)
        raise
    server.start()
    yield server
    server.stop()


# -- pure parts ----------------------------------------------------------------------------------


def test_addresses_are_tcp_host_and_port_or_a_unix_socket_path() -> None:
    tcp = parse_address("tcp://clamav.security:3310")
    assert (tcp.host, tcp.port, tcp.path) == ("clamav.security", 3310, None)
    assert str(tcp) == "tcp://clamav.security:3310"
    assert parse_address("tcp://[::1]:3310").host == "::1"
    unix = parse_address("unix:///run/clamav/clamd.ctl")
    assert (unix.host, unix.path) == (None, "/run/clamav/clamd.ctl")
    for bad in ("clamav:3310", "tcp://clamav", "tcp://clamav:0", "tcp://clamav:99999", "unix://relative", "http://x:1"):
        with pytest.raises(ValueError, match="not a clamd address"):
            parse_address(bad)


def test_replies_give_a_verdict_or_raise() -> None:
    assert parse_reply(b"stream: OK\0") == ScanResult("clean")
    assert parse_reply(b"stream: Win.Test.EICAR_HDB-1 FOUND\0") == ScanResult("infected", "Win.Test.EICAR_HDB-1")
    assert parse_reply(b"1: stream: Eicar-Signature FOUND\0").signature == "Eicar-Signature"
    too_large = parse_reply(b"INSTREAM size limit exceeded. ERROR\0")
    assert too_large == ScanResult("unscannable", reason=TOO_LARGE) and too_large.unscannable
    assert too_large.reason == "larger than clamd's StreamMaxLength"
    with pytest.raises(ScanUnavailable, match="without a verdict"):
        parse_reply(b"")
    with pytest.raises(ScanUnavailable, match="ERROR"):
        parse_reply(b"stream: Can't allocate memory ERROR\0")


# -- a real clamd --------------------------------------------------------------------------------


async def test_clamd_answers_ping_over_tcp_and_its_unix_socket(clamd: ClamdServer) -> None:
    await Clamd(clamd.address, timeout=5).ping()
    await Clamd(clamd.unix_address, timeout=5).ping()
    assert (await Clamd(clamd.address, timeout=5).version()).startswith("ClamAV ")


async def test_ordinary_bytes_are_clean(clamd: ClamdServer) -> None:
    scanner = Clamd(clamd.address, timeout=30)
    result = await scanner.instream(stream(b"hello, ", b"world\n"))
    assert result == ScanResult("clean") and result.clean and not result.infected
    assert (await scanner.instream(stream())).clean  # an empty file


async def test_the_eicar_test_file_is_infected_over_both_transports(clamd: ClamdServer) -> None:
    for address in (clamd.address, clamd.unix_address):
        result = await Clamd(address, timeout=30).instream(stream(*pieces(EICAR, 7)))
        assert result == ScanResult("infected", EICAR_SIGNATURE) and result.infected


async def test_a_signature_across_chunk_boundaries_inside_a_large_file_is_found(clamd: ClamdServer) -> None:
    data = os.urandom(3 * CHUNK_BYTES + 123)
    middle = len(data) // 2 - len(MARKER) // 2
    infected = data[:middle] + MARKER + data[middle:]
    scanner = Clamd(clamd.address, timeout=60)
    # One read larger than a frame (split by the client), and reads cutting the marker in two.
    assert await scanner.instream(stream(infected)) == ScanResult("infected", MARKER_SIGNATURE)
    assert await scanner.instream(stream(*pieces(infected, middle + 5))) == ScanResult("infected", MARKER_SIGNATURE)
    assert (await scanner.instream(stream(*pieces(data, 100_000)))).clean


async def test_more_than_stream_max_length_is_unscannable(small_clamd: ClamdServer) -> None:
    scanner = Clamd(small_clamd.address, timeout=30)
    assert (await scanner.instream(stream(b"a" * 512 * 1024))).clean
    result = await scanner.instream(stream(*pieces(b"a" * 3 * 1024 * 1024, 64 * 1024)))
    assert result == ScanResult("unscannable", reason=TOO_LARGE)
    assert not result.clean and not result.infected


async def test_an_unreachable_clamd_raises_scan_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ScanUnavailable, match=r"tcp://127\.0\.0\.1:\d+ is unreachable: connection refused$"):
        await Clamd(f"tcp://127.0.0.1:{free_port()}", timeout=5).instream(stream(b"x"))
    with pytest.raises(ScanUnavailable, match="is unreachable"):
        await Clamd(f"unix://{tmp_path}/none.sock", timeout=5).ping()


async def test_a_clamd_that_does_not_answer_in_time_raises_scan_unavailable(small_clamd: ClamdServer) -> None:
    assert small_clamd.process is not None and small_clamd.process.proc is not None
    pid = small_clamd.process.proc.pid
    os.kill(pid, signal.SIGSTOP)  # the kernel still accepts connections; nobody answers
    try:
        with pytest.raises(ScanUnavailable, match=r"no answer within 1\.5 s"):
            await Clamd(small_clamd.address, timeout=1.5).instream(stream(b"x" * 1000))
    finally:
        os.kill(pid, signal.SIGCONT)
    await Clamd(small_clamd.address, timeout=10).ping()
