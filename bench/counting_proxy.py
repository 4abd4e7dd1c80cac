"""A loopback TCP proxy that counts the HTTP requests passing through it.

The benches put one in front of OpenBao and moto_server for their *counting* runs only
(timed runs talk to the servers directly, so the proxy's extra hop never shows in a wall
time). Bytes are forwarded unchanged; the client-to-server stream is parsed just enough to
find each request's start (request line, headers, ``Content-Length`` or chunked body), so
keep-alive connections carrying many requests are counted exactly. Requests are labelled by
a caller-supplied function of (method, path, headers), e.g. the ``X-Amz-Target`` operation.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Self

Labeler = Callable[[str, str, Mapping[str, str]], str]


def plain_label(method: str, path: str, headers: Mapping[str, str]) -> str:
    return f"{method} {path.split('?', 1)[0]}"


class _RequestParser:
    """Incremental HTTP/1.1 request framing: feed bytes, get each request's head as found."""

    def __init__(self, on_request: Callable[[str, str, dict[str, str]], None]) -> None:
        self._on_request = on_request
        self._buffer = b""
        self._body_left = 0
        self._chunked = False
        self._broken = False

    def feed(self, data: bytes) -> None:
        if self._broken:
            return
        self._buffer += data
        while self._step():
            pass

    def _step(self) -> bool:
        if self._body_left:
            taken = min(self._body_left, len(self._buffer))
            self._buffer = self._buffer[taken:]
            self._body_left -= taken
            return bool(self._buffer) and not self._body_left
        if self._chunked:
            return self._chunk()
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head, self._buffer = self._buffer[:end].decode("latin-1"), self._buffer[end + 4 :]
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            self._broken = True  # not HTTP/1.x: stop counting rather than miscount
            return False
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self._on_request(parts[0], parts[1], headers)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._chunked = True
        else:
            self._body_left = int(headers.get("content-length", "0") or 0)
        return True

    def _chunk(self) -> bool:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            return False
        size = int(self._buffer[:end].split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            trailer_end = self._buffer.find(b"\r\n\r\n", end)
            if trailer_end < 0:
                return False
            self._buffer = self._buffer[trailer_end + 4 :]
            self._chunked = False
            return True
        if len(self._buffer) < end + 2 + size + 2:
            return False
        self._buffer = self._buffer[end + 2 + size + 2 :]
        return True


class CountingProxy:
    """Listens on a free loopback port and forwards every connection to ``upstream``."""

    def __init__(self, upstream: tuple[str, int], label: Labeler = plain_label) -> None:
        self.upstream = upstream
        self._label = label
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="counting-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def take(self) -> tuple[Counter[str], int]:
        """(requests by label, TCP connections) since the last call; then from zero again."""
        with self._lock:
            taken, self._counts = self._counts, Counter()
            connections, self._connections = self._connections, 0
        return taken, connections

    def _count(self, method: str, path: str, headers: dict[str, str]) -> None:
        label = self._label(method, path, headers)
        with self._lock:
            self._counts[label] += 1

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._connections += 1
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            parser = _RequestParser(self._count)
            threading.Thread(target=_pump, args=(client, server, parser.feed), daemon=True).start()
            threading.Thread(target=_pump, args=(server, client, None), daemon=True).start()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stopping.set()
        self._listener.close()
        self._thread.join(timeout=5)


def _pump(
    source: socket.socket, sink: socket.socket, observe: Callable[[bytes], None] | None
) -> None:
    try:
        while data := source.recv(65536):
            if observe is not None:
                observe(data)
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (sink, source):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        source.close()
