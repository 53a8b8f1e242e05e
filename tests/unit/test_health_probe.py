"""The sandbox NLB's health probe against real loopback sockets (no Docker needed)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from labkit.sandbox.health_probe import HealthCheck, probe_target


@pytest.fixture()
def server() -> Iterator[Callable[[Callable[[socket.socket], None]], tuple[str, int]]]:
    """Start a loopback TCP server whose connections ``handle`` serves; yields its address."""
    socks: list[socket.socket] = []

    def start(handle: Callable[[socket.socket], None]) -> tuple[str, int]:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        socks.append(sock)

        def loop() -> None:
            while True:
                try:
                    conn, _ = sock.accept()
                except OSError:
                    return
                threading.Thread(target=handle, args=(conn,), daemon=True).start()

        threading.Thread(target=loop, daemon=True).start()
        return sock.getsockname()

    yield start
    for sock in socks:
        sock.close()


def hang_up(conn: socket.socket) -> None:
    """What Docker's proxy does when nothing listens in the container."""
    conn.close()


def stay_silent(conn: socket.socket) -> None:
    """A server waiting for its client to speak (an HTTP server, say)."""
    conn.recv(1)
    conn.close()


def http(status: int) -> Callable[[socket.socket], None]:
    def handle(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.sendall(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        conn.close()

    return handle


def test_tcp_check_fails_when_the_proxy_hangs_up(server) -> None:
    result = probe_target(server(hang_up), HealthCheck())
    assert not result.ok
    assert result.reason == "Target.FailedHealthChecks"
    assert "nothing in the container listens" in (result.detail or "")


def test_tcp_check_passes_a_silent_server(server) -> None:
    assert probe_target(server(stay_silent), HealthCheck()).ok


def test_tcp_check_fails_when_nothing_listens() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = sock.getsockname()  # bound, not listening: the connect is refused
        result = probe_target(address, HealthCheck())
    assert not result.ok and "connect failed" in (result.detail or "")


def test_http_check_matches_the_status(server) -> None:
    check = HealthCheck(protocol="HTTP", path="/health", matcher="200-299")
    assert probe_target(server(http(204)), check).ok
    failed = probe_target(server(http(503)), check)
    assert not failed.ok
    assert failed.reason == "Target.ResponseCodeMismatch"
    assert failed.description == "Health checks failed with these codes: [503]"
    assert not probe_target(server(hang_up), check).ok


@pytest.mark.parametrize(
    "matcher, status, ok",
    [("200", 200, True), ("200", 201, False), ("200,202", 202, True), ("200-399", 302, True)],
)
def test_matcher(matcher: str, status: int, ok: bool) -> None:
    assert HealthCheck(matcher=matcher).accepts(status) is ok
