"""The fault proxy itself: each fault does what it says, per request turn, and stops cleanly."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from harbor_testkit.proxy import FaultProxy, ProxyFault

BODY = b'{"ok": true, "padding": "' + b"x" * 2000 + b'"}'


class _Upstream(ThreadingHTTPServer):
    daemon_threads = True
    hits = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as SDK connection pools use it
    server: _Upstream

    def do_GET(self) -> None:
        self.server.hits += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[_Upstream]:
    server = _Upstream(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def proxy(upstream: _Upstream) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", int(upstream.server_address[1])) as running:
        yield running


def get(proxy: FaultProxy, session: requests.Session | None = None) -> requests.Response:
    return (session or requests).get(proxy.url + "/x", timeout=(1, 0.5))


def test_passes_traffic_through_and_counts_it(proxy: FaultProxy, upstream: _Upstream) -> None:
    response = get(proxy)
    assert response.content == BODY
    assert (proxy.connections, proxy.requests, upstream.hits) == (1, 1, 1)
    assert proxy.applied["pass"] == 1


def test_latency_is_added_once_per_request(proxy: FaultProxy) -> None:
    proxy.set_fault(ProxyFault.latency(0.3))
    started = time.monotonic()
    assert get(proxy).status_code == 200
    assert 0.3 <= time.monotonic() - started < 2


def test_reset_sends_rst(proxy: FaultProxy, upstream: _Upstream) -> None:
    proxy.set_fault(ProxyFault.reset())
    with pytest.raises(requests.ConnectionError, match="reset"):
        get(proxy)
    assert upstream.hits == 0


def test_stall_outlasts_the_read_timeout(proxy: FaultProxy, upstream: _Upstream) -> None:
    proxy.set_fault(ProxyFault.stall())
    with pytest.raises(requests.ReadTimeout):
        get(proxy)
    assert upstream.hits == 0  # the request was swallowed, never forwarded


@pytest.mark.parametrize("cut", [0, 20, 300])
def test_truncate_passes_exactly_n_bytes(proxy: FaultProxy, upstream: _Upstream, cut: int) -> None:
    proxy.set_fault(ProxyFault.truncate(cut))
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as client:
        client.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while chunk := client.recv(65536):
            received += chunk
    assert len(received) == cut
    assert upstream.hits == 1  # the request itself got through


def test_queued_faults_come_first_then_the_default(proxy: FaultProxy, upstream: _Upstream) -> None:
    proxy.inject(ProxyFault.reset(), ProxyFault.reset())
    for _ in range(2):
        with pytest.raises(requests.ConnectionError):
            get(proxy)
    assert get(proxy).status_code == 200
    assert proxy.pending == 0
    assert proxy.applied == {"reset": 2, "pass": 1}
    assert upstream.hits == 1


def test_faults_apply_per_request_on_a_kept_alive_connection(proxy: FaultProxy) -> None:
    with requests.Session() as session:
        assert get(proxy, session).status_code == 200
        proxy.inject(ProxyFault.stall())
        with pytest.raises(requests.ReadTimeout):
            get(proxy, session)
    assert proxy.connections == 1  # the stall hit the second request on the same connection
    assert proxy.requests == 2


def test_switching_at_run_time(proxy: FaultProxy) -> None:
    proxy.set_fault(ProxyFault.reset())
    with pytest.raises(requests.ConnectionError):
        get(proxy)
    proxy.clear()
    assert get(proxy).status_code == 200


def test_stop_closes_stalled_connections_promptly(upstream: _Upstream) -> None:
    proxy = FaultProxy("127.0.0.1", int(upstream.server_address[1]), fault=ProxyFault.stall())
    proxy.start()
    client = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    client.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.1)
    started = time.monotonic()
    proxy.stop()
    assert time.monotonic() - started < 2
    assert client.recv(10) == b""  # closed, not left hanging
    client.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()


def test_in_front_of_needs_a_port() -> None:
    with pytest.raises(ValueError, match="no host and port"):
        FaultProxy.in_front_of("http://127.0.0.1")
    with pytest.raises(ValueError, match="negative"):
        ProxyFault.latency(-1)
