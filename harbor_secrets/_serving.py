"""A loopback HTTP server in a daemon thread: the status server and the stand-in issuer.

Both must never hold the process up at exit (daemon threads) and must stop promptly and
close their port whatever happened, so starting and stopping live here once.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler
from socketserver import BaseServer


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
