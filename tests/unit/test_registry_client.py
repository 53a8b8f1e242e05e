"""The sandbox's registry client: one timeout for a registry that never answers, a
retry on a fresh connection for one that closed a kept-alive connection."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from labkit.sandbox.registry.client import RegistryClient, RegistryUnavailable
from labkit.sandbox.registry.tokens import BearerSigner
from tests.conftest import free_port, silent_server


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> BearerSigner:
    return BearerSigner(tmp_path_factory.mktemp("registry-keys"))


def test_a_registry_that_never_answers_fails_after_one_timeout(signer: BearerSigner) -> None:
    with silent_server() as (port, accepted):
        client = RegistryClient(f"http://127.0.0.1:{port}", signer, timeout_seconds=1.0)
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable) as failed:
            client.tags("myrepo")
        took = time.monotonic() - started
        connections = len(accepted)
    print(f"gave up after {took:.2f} s, {connections} connection(s)")
    assert 0.9 < took < 2.0  # one timeout: each retry would have added a second
    assert connections == 1
    message = str(failed.value)
    assert f"registry (http://127.0.0.1:{port}) took the request GET /v2/myrepo/tags/list" in (
        message
    )
    assert "did not answer within 1 s" in message and "labkit sandbox up" in message


def test_a_registry_that_is_not_there_is_a_clear_error(signer: BearerSigner) -> None:
    port = free_port()  # nothing listens there
    client = RegistryClient(f"http://127.0.0.1:{port}", signer, timeout_seconds=1.0)
    with pytest.raises(RegistryUnavailable) as failed:
        client.tags("myrepo")
    assert f"registry (http://127.0.0.1:{port}) could not be reached" in str(failed.value)
    assert "refused" in str(failed.value).lower()


@contextmanager
def registry_closing_its_kept_alive_connection() -> Iterator[tuple[int, list[int]]]:
    """Answers ``{"tags": ["v1"]}`` to the first request of each connection, keeping it
    alive, then closes it on reading the next one without answering (as a server closing
    an idle connection just as the client reuses it): ``(port, requests per connection)``."""
    listener = socket.create_server(("127.0.0.1", 0))
    served: list[int] = []
    body = b'{"name": "myrepo", "tags": ["v1"]}'
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )

    def serve(connection: socket.socket) -> None:
        with connection:
            served.append(0)
            index = len(served) - 1
            for reply in (True, False):
                if not connection.recv(65536):
                    return
                served[index] += 1
                if reply:
                    connection.sendall(answer)

    def accept() -> None:
        while True:
            try:
                connection = listener.accept()[0]
            except OSError:
                return
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1], served
    finally:
        listener.close()


def test_a_kept_alive_connection_the_registry_closed_is_retried(signer: BearerSigner) -> None:
    with registry_closing_its_kept_alive_connection() as (port, served):
        client = RegistryClient(f"http://127.0.0.1:{port}", signer, timeout_seconds=5.0)
        assert client.tags("myrepo") == ["v1"]
        assert client.tags("myrepo") == ["v1"]  # its connection is closed unanswered
        assert served == [2, 1]  # so it was sent again, on a new connection
