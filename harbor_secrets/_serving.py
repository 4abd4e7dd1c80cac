"""Serving in the foreground: the status server (``sync --watch --listen``) and the stand-in
issuer (``stand-in-issuer``).

Both serve HTTP from a daemon thread (never holding the process up at exit) that must stop
promptly and close its port whatever happened; both turn a port they cannot bind into a
usage error (exit 2) naming the option that chose it; and both run until SIGTERM or
SIGINT with the main thread only waiting. Each of these lives here once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler
from socketserver import BaseServer
from types import FrameType
from typing import TypeVar

from harbor_secrets.errors import ConfigError

_Started = TypeVar("_Started")

#: The signals that end a foreground run: a service manager's stop, and Ctrl-C.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def http_url(host: str, port: int) -> str:
    """``http://HOST:PORT``, with an IPv6 address in brackets."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve_in_background(server: BaseServer, *, name: str, poll: float) -> threading.Thread:
    """Serve ``server`` from a daemon thread; ``poll`` is how long a stop may wait."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": poll}, name=name, daemon=True
    )
    thread.start()
    return thread


def shut_down(server: BaseServer, thread: threading.Thread | None) -> None:
    """Stop serving, close the port, and wait (briefly) for the thread to end."""
    server.shutdown()
    server.server_close()
    if thread is not None:
        thread.join(timeout=5)


class LoopbackHandler(BaseHTTPRequestHandler):
    """What both servers' handlers share: one request per connection (nothing lingers at
    stop), a timeout for silent clients, and a ``Server:`` header that is just the name.

    http.server writes ``server_version + " " + sys_version``, which with an empty
    ``sys_version`` leaves a trailing space in the header.
    """

    protocol_version = "HTTP/1.0"
    timeout = 10

    def version_string(self) -> str:
        return self.server_version


def bind(
    start: Callable[[], _Started],
    *,
    host: str,
    port: int,
    key: str,
    fix: str,
    source: str | None = None,
) -> _Started:
    """``start()`` (which binds ``host:port``), or a :class:`ConfigError` (exit 2) at ``key``
    when the address cannot be had: a port in use or an address not of this host is the
    command line's (or the configuration's) mistake, not a run-time failure."""
    try:
        return start()
    except OSError as exc:
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise ConfigError(
            f"cannot listen on {address} ({exc.strerror or exc})",
            source=source,
            key=key,
            fix=fix,
        ) from None


def handle_signals(
    on_signal: Callable[[str], None], signals: Sequence[signal.Signals] = STOP_SIGNALS
) -> Callable[..., None]:
    """Call ``on_signal(name)`` on each of ``signals`` from now on; returns ``restore``.

    Python runs signal handlers in the main thread, so it should only wait meanwhile (the
    work runs elsewhere): a handler then never interrupts a write or a lock it needs.
    ``restore()`` (in a ``finally``) brings the previous handlers back; ``restore(ignore=
    True)``, for a process about to exit, ignores the signals instead, so a second SIGTERM
    while shutting down cannot turn exit 0 into death by signal.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        on_signal(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in signals}

    def restore(*, ignore: bool = False) -> None:
        for sig, old in previous.items():
            signal.signal(sig, signal.SIG_IGN if ignore else old)

    return restore
