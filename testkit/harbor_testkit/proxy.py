"""A loopback TCP proxy that misbehaves on demand, for fault-injection tests.

Put it between the tool and any server (the issuer, Vault, an AWS endpoint) and the client
sees the network failures real deployments meet: added latency, a connection reset, a
server that stalls past the client's read timeout, or a response cut short. Faults apply
per *request turn* (the client sending after the server answered, or first on a new
connection), so a keep-alive connection reused by an SDK is faulted request by request,
exactly like a fresh one. Standard library only, so the package can ship it.

    with FaultProxy.in_front_of("http://127.0.0.1:8200") as proxy:
        proxy.inject(ProxyFault.reset())          # the next request is reset, later ones pass
        proxy.set_fault(ProxyFault.latency(0.2))  # every request after that waits 0.2 s
        ... point the client at proxy.url ...
        assert proxy.requests == 3
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import struct
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self
from urllib.parse import urlsplit

__all__ = ["FaultProxy", "ProxyFault"]

log = logging.getLogger(__name__)

Kind = Literal["pass", "latency", "reset", "stall", "truncate"]
_CHUNK = 65536
_POLL = 0.05  # how often a connection thread notices stop()


@dataclass(frozen=True)
class ProxyFault:
    """What the proxy does to one request turn; build one with the class methods."""

    kind: Kind = "pass"
    delay: float = 0.0
    after_bytes: int = 0

    def __post_init__(self) -> None:
        if self.delay < 0 or self.after_bytes < 0:
            raise ValueError("a proxy fault's delay and byte count cannot be negative")

    @classmethod
    def passthrough(cls) -> ProxyFault:
        """Forward both ways untouched."""
        return cls("pass")

    @classmethod
    def latency(cls, seconds: float) -> ProxyFault:
        """Hold the request ``seconds`` before forwarding it (one delay per request)."""
        return cls("latency", delay=seconds)

    @classmethod
    def reset(cls) -> ProxyFault:
        """Abort the connection with a TCP reset (RST) once the request arrives."""
        return cls("reset")

    @classmethod
    def stall(cls) -> ProxyFault:
        """Swallow the request and never answer; the connection stays open until the client
        gives up (its read timeout) or the proxy stops."""
        return cls("stall")

    @classmethod
    def truncate(cls, after_bytes: int) -> ProxyFault:
        """Forward the request, pass on the first ``after_bytes`` bytes of the response,
        then close the connection (a response cut short, headers or body)."""
        return cls("truncate", after_bytes=after_bytes)

    def describe(self) -> str:
        if self.kind == "latency":
            return f"latency {self.delay:g}s"
        if self.kind == "truncate":
            return f"truncate after {self.after_bytes} bytes"
        return self.kind


class FaultProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target``; faults are switchable while it runs.

    :meth:`inject` queues faults for the next request turns (one each); :meth:`set_fault`
    changes what every later turn gets once the queue is empty. :attr:`connections` and
    :attr:`requests` count what reached the proxy, so tests can assert retry counts. All
    methods are thread-safe.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        fault: ProxyFault | None = None,
        connect_timeout: float = 5.0,
    ) -> None:
        self.target = (target_host, target_port)
        self.host = host
        self._port = port
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._default = fault or ProxyFault.passthrough()
        self._queue: deque[ProxyFault] = deque()
        self._connections = 0
        self._requests = 0
        self._applied: Counter[str] = Counter()
        self._open: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._stopping = threading.Event()

    @classmethod
    def in_front_of(cls, url: str, *, fault: ProxyFault | None = None) -> FaultProxy:
        """A proxy for the host and port of ``url`` (``http://host:port``)."""
        parts = urlsplit(url)
        if not parts.hostname or not parts.port:
            raise ValueError(f"{url!r} names no host and port")
        return cls(parts.hostname, parts.port, fault=fault)

    # -- control ---------------------------------------------------------------------------

    def set_fault(self, fault: ProxyFault) -> None:
        """What every later request turn gets (after any queued faults)."""
        with self._lock:
            self._default = fault

    def inject(self, *faults: ProxyFault) -> None:
        """Queue faults; each later request turn takes the oldest one."""
        with self._lock:
            self._queue.extend(faults)

    def clear(self) -> None:
        """Drop queued faults and pass everything from now on."""
        with self._lock:
            self._queue.clear()
            self._default = ProxyFault.passthrough()

    @property
    def fault(self) -> ProxyFault:
        with self._lock:
            return self._default

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    @property
    def connections(self) -> int:
        """TCP connections accepted so far."""
        with self._lock:
            return self._connections

    @property
    def requests(self) -> int:
        """Request turns seen so far (retries over a kept-alive connection included)."""
        with self._lock:
            return self._requests

    @property
    def applied(self) -> Counter[str]:
        """How many turns got each kind of fault (``pass`` included); a copy."""
        with self._lock:
            return Counter(self._applied)

    def _next_fault(self) -> ProxyFault:
        with self._lock:
            self._requests += 1
            fault = self._queue.popleft() if self._queue else self._default
            self._applied[fault.kind] += 1
            return fault

    # -- addresses -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the proxy has no port yet; call start() first")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: use it where the client had the target's URL."""
        return f"http://{self.host}:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        if self._listener is not None:
            raise RuntimeError("the proxy is already running")
        self._stopping.clear()
        listener = socket.create_server((self.host, self._port), backlog=128)
        self._port = int(listener.getsockname()[1])
        listener.settimeout(_POLL)
        self._listener = listener
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"fault-proxy:{self._port}", daemon=True
        )
        self._acceptor.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close every open connection, wait for the threads."""
        listener = self._listener
        if listener is None:
            return
        self._stopping.set()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
        listener.close()
        with self._lock:
            sockets = list(self._open)
            threads = list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        for thread in threads:
            thread.join(timeout=5)
        self._listener = None
        self._acceptor = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- forwarding ------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(
                target=self._serve, args=(client,), name="fault-proxy-conn", daemon=True
            )
            with self._lock:
                self._connections += 1
                self._open.add(client)
                self._threads.add(thread)
            thread.start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def _serve(self, client: socket.socket) -> None:
        sockets = [client]  # the upstream socket joins it once connected
        try:
            self._pipe(client, sockets)
        except (OSError, ValueError) as exc:  # a peer went away, or stop() closed a socket
            log.debug("fault proxy: connection ended: %s", exc)
        finally:
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.close()
            with self._lock:
                self._open.difference_update(sockets)
                self._threads.discard(threading.current_thread())

    def _pipe(self, client: socket.socket, sockets: list[socket.socket]) -> None:
        """Forward turn by turn until either side closes or a fault ends the connection."""
        upstream: socket.socket | None = None
        fault = ProxyFault.passthrough()
        in_request = False  # the last bytes forwarded went client -> upstream
        stalled = False
        sent_down = 0  # response bytes passed to the client in this turn
        while not self._stopping.is_set():
            watched = [client] if upstream is None else [client, upstream]
            readable, _, _ = select.select(watched, [], [], _POLL)
            if client in readable:
                data = client.recv(_CHUNK)
                if not data:
                    return  # the client closed (or gave up on a stall)
                if not in_request:  # a new request turn
                    in_request, sent_down = True, 0
                    fault = self._next_fault()
                    if fault.kind == "reset":
                        _reset(client)
                        return
                    if fault.kind == "stall":
                        stalled = True
                    if fault.kind == "latency" and self._stopping.wait(fault.delay):
                        return
                if stalled:
                    continue  # swallow everything; never answer
                if upstream is None:
                    upstream = socket.create_connection(self.target, timeout=self.connect_timeout)
                    upstream.settimeout(None)
                    sockets.append(upstream)
                    self._track(upstream)
                upstream.sendall(data)
            if upstream is not None and upstream in readable:
                data = upstream.recv(_CHUNK)
                if not data:
                    with contextlib.suppress(OSError):
                        client.shutdown(socket.SHUT_WR)
                    _drain_until_closed(client, self._stopping)
                    return
                in_request = False
                if fault.kind == "truncate":
                    room = max(fault.after_bytes - sent_down, 0)
                    client.sendall(data[:room])
                    sent_down += min(len(data), room)
                    if sent_down >= fault.after_bytes:
                        return  # cut: both sockets are closed by the caller
                    continue
                client.sendall(data)
                sent_down += len(data)


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0, which sends RST instead of FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def _drain_until_closed(sock: socket.socket, stopping: threading.Event) -> None:
    """After the server closed, let the client read the rest and close its side."""
    deadline = time.monotonic() + 5
    while not stopping.is_set() and time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], _POLL)
        if readable and not sock.recv(_CHUNK):
            return
