"""Is watch mode keeping tokens fresh? The ``/healthz`` verdict and the HTTP server for it.

Standard library only: ``/metrics`` is rendered by a callable handed in, so this module
does not need the optional Prometheus client. The server binds loopback unless told
otherwise and runs in a daemon thread, so it can never hold the process up at exit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import textwrap
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from http.server import ThreadingHTTPServer
from urllib.parse import urlsplit

from harbor_secrets._serving import (
    LoopbackHandler,
    bind,
    http_url,
    serve_in_background,
    shut_down,
)
from harbor_secrets.freshness import RefreshPolicy, SinkHealth
from harbor_secrets.metrics import SinkKey
from harbor_secrets.secrets import scrub

log = logging.getLogger(__name__)

_MAX_REASON = 300

MetricsRenderer = Callable[[str | None], tuple[bytes, str]]


def shorten(text: str, limit: int = _MAX_REASON) -> str:
    """``text`` cut to ``limit`` characters at a word boundary, with " …" where it was cut."""
    if len(text) <= limit:
        return text
    return textwrap.shorten(text, width=limit, placeholder=" …")


def label(key: SinkKey) -> str:
    credentials, environment, scope, sink = key
    return f"{credentials}/{environment}/{scope} -> {sink}"


@dataclass(frozen=True)
class Verdict:
    """What ``/healthz`` answers: 200 ``ok``, or 503 with a short JSON reason."""

    ok: bool
    reason: str = "ok"
    sinks: tuple[str, ...] = ()

    def response(self) -> tuple[int, bytes, str]:
        if self.ok:
            return 200, b"ok\n", "text/plain; charset=utf-8"
        body = {"status": "unhealthy", "reason": self.reason, "sinks": list(self.sinks)}
        return 503, (json.dumps(body) + "\n").encode(), "application/json"


def judge(
    *,
    now: datetime,
    expected: Iterable[SinkKey],
    expiry: Mapping[SinkKey, datetime],
    policy: RefreshPolicy,
    grace: float,
    cycles: int,
    last_cycle_error: str | None,
    failed_sinks: Iterable[SinkKey] = (),
    seen: Mapping[SinkKey, datetime] | None = None,
    lifetimes: Mapping[SinkKey, float | None] | None = None,
) -> Verdict:
    """Healthy means readers find a live token and the loop keeps it so.

    Unhealthy before the first cycle, after a cycle that failed entirely, or when a sink's
    token is implausible, expired or overdue: the freshness policy's
    :meth:`~RefreshPolicy.sink_health` judges each from its expiry, the lifetime it was
    granted (``lifetimes``; none known means ``token_lifetime``) and when the loop last wrote
    or found it fresh (``seen``). ``grace`` covers the wake-up slack of a healthy loop
    (jitter, one token request with its retries); a token unknown to this process (never
    read successfully) counts as past due. After a failed cycle the answer names the sinks
    that failed (``failed_sinks``; none given means the run failed before any sink was
    looked at, so every one). This only sorts the policy's verdicts into one answer.
    """
    seen = seen or {}
    lifetimes = lifetimes or {}
    if cycles == 0:
        return Verdict(False, "starting: no cycle has finished yet")
    if last_cycle_error is not None:
        reason = scrub(f"the last cycle failed entirely: {last_cycle_error}")
        failed = tuple(failed_sinks) or tuple(expected)
        return Verdict(False, shorten(reason), tuple(label(key) for key in failed))
    verdicts: dict[SinkHealth, list[SinkKey]] = {state: [] for state in SinkHealth}
    unknown = 0
    for key in expected:
        if key not in expiry:  # never read: as good as past due
            verdicts[SinkHealth.OVERDUE].append(key)
            unknown += 1
            continue
        state = policy.sink_health(
            expiry[key], now, lifetime=lifetimes.get(key), seen_at=seen.get(key), grace=grace
        )
        verdicts[state].append(key)
    if implausible := verdicts[SinkHealth.IMPLAUSIBLE]:
        reason = (
            f"{len(implausible)} token(s) expire further ahead than a token lives: written "
            "under a clock that was wrong, so readers cannot trust them"
        )
        return Verdict(False, reason, tuple(label(key) for key in implausible))
    if dead := verdicts[SinkHealth.EXPIRED]:
        reason = f"{len(dead)} token(s) expired: readers find no live token"
        return Verdict(False, reason, tuple(label(key) for key in dead))
    if late := verdicts[SinkHealth.OVERDUE]:
        reason = f"{len(late)} token(s) past due (refresh_before {policy.refresh_before:g}s"
        reason += f" + {grace:g}s grace)" + (f", {unknown} never read" if unknown else "")
        return Verdict(False, reason, tuple(label(key) for key in late))
    return Verdict(True)


class StatusServer:
    """``GET /healthz`` and ``GET /metrics`` from a daemon thread."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        health: Callable[[], Verdict],
        metrics: MetricsRenderer | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.health = health
        self.metrics = metrics
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return http_url(self.host, self.port)

    def start(self) -> StatusServer:
        """Bind (port 0 picks a free one); a port in use is a usage error (exit 2)."""
        server = bind(
            lambda: _Server((self.host, self.port), self),
            host=self.host,
            port=self.port,
            key="--listen",
            fix="choose a free port, or an address of this host",
        )
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = serve_in_background(server, name="harbor-secrets-http", poll=0.2)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        shut_down(server, thread)
        self._server = self._thread = None

    def __enter__(self) -> StatusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer(self, path: str, accept: str | None) -> tuple[int, bytes, str]:
        if path == "/healthz":
            return self.health().response()
        if path == "/metrics" and self.metrics is not None:
            body, content_type = self.metrics(accept)
            return 200, body, content_type
        return 404, b"not found: try /healthz or /metrics\n", "text/plain; charset=utf-8"


class _Handler(LoopbackHandler):
    server: _Server
    server_version = "harbor-secrets"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        try:
            status, body, content_type = self.server.app.answer(
                urlsplit(self.path).path, self.headers.get("Accept")
            )
        except Exception:  # a bug here must not take the watch loop down
            log.exception("answering %s failed", urlsplit(self.path).path)
            status, body, content_type = 500, b"internal error\n", "text/plain; charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        with contextlib.suppress(ConnectionError):
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], app: StatusServer) -> None:
        self.app = app
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
