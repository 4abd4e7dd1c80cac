"""The total budget bounds a whole fetch, including a body that arrives a byte at a time."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from harbor_secrets.environments import Environment
from harbor_secrets.errors import IssuerUnavailableError
from harbor_secrets.secrets import Secret
from harbor_secrets.token_client import ClientCredentials, RetryPolicy, TokenClient


@pytest.fixture
def dripping_server() -> Iterator[str]:
    """Answers with headers at once, then one body byte every 0.2 s (each within read_timeout)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
                conn.sendall(b"Content-Length: 100000\r\n\r\n")
                try:
                    while not stop.is_set():
                        conn.sendall(b" ")
                        time.sleep(0.2)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    server.close()


def test_a_dripping_body_cannot_outlive_the_budget(dripping_server: str) -> None:
    environment = Environment("sandbox", dripping_server, dripping_server)
    policy = RetryPolicy(connect_timeout=0.5, read_timeout=1.0, total_budget=2.0, max_attempts=3)
    client = TokenClient(environment, ClientCredentials("id", Secret("secret-1234")), retry=policy)
    began = time.monotonic()
    with pytest.raises(IssuerUnavailableError, match="budget") as caught:
        client.fetch("service_provider")
    elapsed = time.monotonic() - began
    assert elapsed < 2.0 + 1.0  # the budget, plus at most one socket read
    assert caught.value.attempts == 1
