"""A loopback stand-in for Harbor's token issuer and test-token API, for tests and the demo.

It is shaped like Keycloak's realm ``harbor`` as Harbor runs it: the same paths, the same
form-encoded token request, a success body with Keycloak's extra fields, and Keycloak's error
bodies (which differ by version, so the status for an unknown client is configurable). Tests
queue :class:`Fault` objects to make the next token requests misbehave: slow, reset, cut
short, redirected, rate limited, or a success with odd fields. Standard library only, so the
package can ship it for ``harbor-secrets demo``.

Run it by hand with ``harbor-secrets stand-in-issuer`` (see its ``--help``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import re
import secrets
import socket
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.utils import format_datetime
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Final, Self
from urllib.parse import parse_qs, unquote_plus, urlsplit

from harbor_secrets._serving import LoopbackHandler, http_url, serve_in_background, shut_down
from harbor_secrets.environments import SCOPES, TEST_TOKEN_PATH

__all__ = ["OMIT", "REALM", "Fault", "RecordedRequest", "StandInIssuer"]

log = logging.getLogger(__name__)

REALM = "harbor"
DEFAULT_PORT = 8401
# Keycloak adds the realm's default client scopes to every token's ``scope``.
DEFAULT_CLIENT_SCOPES = ("profile", "email")
INVALID_CLIENT = "Invalid client or Invalid client credentials"
MAX_REQUEST_BODY = 64 * 1024
_TOKEN_PATH = re.compile(r"^/realms/(?P<realm>[^/]+)/protocol/openid-connect/token/?$")
_REALM_PATH = re.compile(r"^/realms/(?P<realm>[^/]+)(/.*)?$")
_TRUNCATE_EXTRA = 64  # bytes announced in Content-Length but never sent


class _Omit:
    """Marker for :meth:`Fault.token`: leave this field out of the response."""

    def __repr__(self) -> str:
        return "OMIT"


OMIT: Final = _Omit()


@dataclass(frozen=True)
class Fault:
    """How the next token request misbehaves; queued with :meth:`StandInIssuer.inject`.

    Fields combine: ``delay`` waits before anything else; ``reset`` closes the connection
    without answering; ``redirect_to`` answers 307 (or ``status``) with that ``Location``;
    ``status``/``body`` replace the answer (``body`` alone means 200); ``token_fields``
    answers a real success with those fields replaced (``OMIT`` drops one); ``headers`` are
    added to whatever is sent; ``truncate`` announces a longer body than it sends, then
    closes. A fault with only ``delay``/``headers``/``truncate`` alters the normal answer.
    """

    status: int | None = None
    body: str | bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    reset: bool = False
    truncate: bool = False
    redirect_to: str | None = None
    token_fields: Mapping[str, object] | None = None

    def __post_init__(self) -> None:
        if self.delay < 0:
            raise ValueError("a fault's delay cannot be negative")

    @classmethod
    def retry_after(cls, status: int = 429, after: int | datetime | str = 1) -> Fault:
        """A rate-limit or outage answer with ``Retry-After`` in seconds or as an HTTP-date."""
        if isinstance(after, datetime):
            value = format_datetime(after.astimezone(UTC), usegmt=True)
        else:
            value = str(after)
        return cls(status=status, body="", headers={"Retry-After": value})

    @classmethod
    def html(cls, status: int = 502) -> Fault:
        """An HTML error page, as a proxy in front of Keycloak sends."""
        phrase = _phrase(status)
        page = (
            f"<html><head><title>{status} {phrase}</title></head><body>"
            f"<center><h1>{status} {phrase}</h1></center><hr><center>nginx</center>"
            "</body></html>"
        )
        return cls(status=status, body=page, headers={"Content-Type": "text/html"})

    @classmethod
    def error(cls, status: int, error: str, description: str | None = None) -> Fault:
        """An RFC 6749 §5.2 JSON error body."""
        payload = {"error": error}
        if description is not None:
            payload["error_description"] = description
        return cls(status=status, body=json.dumps(payload))

    @classmethod
    def token(cls, **fields: object) -> Fault:
        """A real success whose fields are replaced by ``fields`` (``OMIT`` removes one)."""
        return cls(token_fields=dict(fields))

    @classmethod
    def slow(cls, delay: float) -> Fault:
        """The normal answer, after ``delay`` seconds."""
        return cls(delay=delay)

    @classmethod
    def connection_reset(cls) -> Fault:
        """Close the connection (TCP reset) without answering."""
        return cls(reset=True)

    @classmethod
    def truncated(cls) -> Fault:
        """The normal answer with a Content-Length longer than the body, then a close."""
        return cls(truncate=True)

    @classmethod
    def redirect(cls, location: str, status: int = 307) -> Fault:
        """A redirect; a client that follows it would resend the secret to ``location``."""
        return cls(status=status, redirect_to=location)


@dataclass(frozen=True)
class RecordedRequest:
    """What the stand-in saw of one request; never the secret, never a token."""

    method: str
    path: str
    grant_type: str | None = None
    scope: str | None = None
    client_id: str | None = None
    auth_method: str | None = None  # client_secret_basic, client_secret_post, or none
    content_type: str | None = None
    accept: str | None = None
    user_agent: str | None = None
    fault: Fault | None = None


@dataclass(frozen=True)
class _Grant:
    client_id: str
    scope: str
    expires_at: float


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _json_reply(status: int, payload: Mapping[str, object]) -> _Reply:
    return _Reply(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})


def _oauth_error(status: int, error: str, description: str) -> _Reply:
    return _json_reply(status, {"error": error, "error_description": description})


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _signature(key: str, signed: str) -> str:
    """A JWT's HS256 signature of ``signed`` under ``key``."""
    return _b64url(hmac.new(key.encode(), signed.encode(), hashlib.sha256).digest())


class StandInIssuer:
    """Keycloak's realm ``harbor`` and Harbor's test-token endpoint on a loopback port.

    ``clients`` maps client id to secret. Both client authentication methods are accepted.
    Counters, :attr:`requests` and :attr:`issued` let tests see what reached the server. All
    methods are thread-safe; use it as a context manager or call :meth:`start`/:meth:`stop`.
    """

    def __init__(
        self,
        clients: Mapping[str, str] | None = None,
        *,
        token_lifetime: int = 300,
        scopes: Iterable[str] = SCOPES,
        issue_refresh_tokens: bool = False,
        refresh_lifetime: int = 1800,
        unknown_client_status: int = 400,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if unknown_client_status not in (400, 401):
            raise ValueError("Keycloak answers an unknown client with 400 or 401")
        self._lock = threading.Lock()
        self._clients = dict(clients or {})
        self.token_lifetime = token_lifetime
        self.scopes = frozenset(scopes)
        self.issue_refresh_tokens = issue_refresh_tokens
        self.refresh_lifetime = refresh_lifetime
        self.unknown_client_status = unknown_client_status
        self.host = host
        self._port = port
        self._clock = clock
        self._faults: deque[Fault] = deque()
        self._requests: list[RecordedRequest] = []
        self._token_requests = 0
        self._test_token_requests = 0
        self._issued: dict[str, _Grant] = {}
        self._refresh: dict[str, _Grant] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- configuration and introspection ---------------------------------------------------

    def add_client(self, client_id: str, secret: str) -> None:
        with self._lock:
            self._clients[client_id] = secret

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each later token request consumes the oldest one."""
        with self._lock:
            self._faults.extend(faults)

    def revoke_refresh_tokens(self) -> None:
        """Invalidate every refresh token issued so far (as a Keycloak logout would)."""
        with self._lock:
            self._refresh.clear()

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    @property
    def token_requests(self) -> int:
        """Requests that reached a token endpoint path (any realm, any method)."""
        with self._lock:
            return self._token_requests

    @property
    def test_token_requests(self) -> int:
        with self._lock:
            return self._test_token_requests

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def issued(self) -> frozenset[str]:
        """Every access token issued so far, expired or not."""
        with self._lock:
            return frozenset(self._issued)

    @property
    def port(self) -> int:
        """The bound port; it stays known after :meth:`stop` (a restart reuses it)."""
        if not self._port:
            raise RuntimeError("the stand-in issuer has no port yet; call start() first")
        return self._port

    @property
    def url(self) -> str:
        """Base URL, usable as both ``accounts_url`` and ``api_url`` of an environment."""
        return http_url(self.host, self.port)

    @property
    def token_url(self) -> str:
        return f"{self.url}/realms/{REALM}/protocol/openid-connect/token"

    @property
    def test_token_url(self) -> str:
        return self.url + TEST_TOKEN_PATH

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind (port 0 picks a free one) and serve from a daemon thread."""
        if self._server is not None:
            raise RuntimeError("the stand-in issuer is already running")
        self._stopping.clear()
        server = _Server((self.host, self._port), self)
        self._port = int(server.server_address[1])  # a restart reuses the same port
        self._server = server
        self._thread = serve_in_background(server, name=f"stand-in-issuer:{self._port}", poll=0.01)
        return self

    def stop(self) -> None:
        """Stop serving and close the port; pending delayed answers are dropped."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        shut_down(server, thread)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- request handling ------------------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        method = handler.command
        path = urlsplit(handler.path).path
        headers = handler.headers
        try:
            length = int(headers.get("Content-Length") or 0)
        except ValueError:
            self._send(handler, _oauth_error(400, "invalid_request", "Bad Content-Length"))
            return
        if length > MAX_REQUEST_BODY:
            self._send(handler, _json_reply(413, {"error": "Request Entity Too Large"}))
            return
        body = handler.rfile.read(length) if length > 0 else b""
        token_match = _TOKEN_PATH.match(path)
        if token_match:
            self._token_endpoint(handler, method, path, token_match["realm"], headers, body)
        elif path == TEST_TOKEN_PATH:
            self._test_token_endpoint(handler, method, path, headers)
        else:
            self._record(RecordedRequest(method=method, path=path))
            realm = _REALM_PATH.match(path)
            if realm and realm["realm"] != REALM:
                reply = _json_reply(404, {"error": "Realm does not exist"})
            elif realm:
                reply = _json_reply(
                    404, {"error": "Unable to find matching target resource method"}
                )
            else:
                reply = _json_reply(404, {"detail": "Not Found"})
            self._send(handler, reply)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _token_endpoint(
        self,
        handler: _Handler,
        method: str,
        path: str,
        realm: str,
        headers: Message,
        body: bytes,
    ) -> None:
        form, form_problem = _parse_form(headers.get("Content-Type"), body)
        basic = _parse_basic(headers.get("Authorization"))
        if basic is not None:
            auth_method = "client_secret_basic"
        elif "client_secret" in form:
            auth_method = "client_secret_post"
        else:
            auth_method = "none"
        client_id = basic[0] if basic else form.get("client_id")
        with self._lock:
            self._token_requests += 1
            fault = self._faults.popleft() if self._faults else None
            self._requests.append(
                RecordedRequest(
                    method=method,
                    path=path,
                    grant_type=form.get("grant_type"),
                    scope=form.get("scope"),
                    client_id=client_id,
                    auth_method=auth_method,
                    content_type=headers.get("Content-Type"),
                    accept=headers.get("Accept"),
                    user_agent=headers.get("User-Agent"),
                    fault=fault,
                )
            )
        if fault is None:
            self._send(handler, self._token_reply(method, realm, form, form_problem, basic))
            return
        if fault.delay and self._stopping.wait(fault.delay):
            _drop(handler)  # stopping: answer nothing, like a server going away
            return
        if fault.reset:
            _reset(handler)
            return
        if fault.redirect_to is not None:
            reply = _Reply(fault.status or 307, b"", {"Location": fault.redirect_to})
        elif fault.token_fields is not None:
            scopes = (form.get("scope") or "").split()
            payload = self._issue(client_id or "stand-in", scopes)
            for name, value in fault.token_fields.items():
                if value is OMIT:
                    payload.pop(name, None)
                else:
                    payload[name] = value
            reply = _json_reply(fault.status or 200, payload)
        elif fault.status is not None or fault.body is not None:
            raw = fault.body.encode() if isinstance(fault.body, str) else (fault.body or b"")
            reply = _Reply(fault.status or 200, raw, {"Content-Type": "application/json"})
        else:
            reply = self._token_reply(method, realm, form, form_problem, basic)
        merged = {**reply.headers, **fault.headers}
        self._send(handler, _Reply(reply.status, reply.body, merged), truncate=fault.truncate)

    def _token_reply(
        self,
        method: str,
        realm: str,
        form: Mapping[str, str],
        form_problem: str | None,
        basic: tuple[str, str] | None,
    ) -> _Reply:
        """What Keycloak would answer, checked in Keycloak's order."""
        if realm != REALM:
            return _json_reply(404, {"error": "Realm does not exist"})
        if method != "POST":
            reply = _json_reply(405, {"error": "HTTP 405 Method Not Allowed"})
            return _Reply(reply.status, reply.body, {**reply.headers, "Allow": "POST"})
        if form_problem is not None:
            return _oauth_error(400, "invalid_request", form_problem)
        grant_type = form.get("grant_type")
        if not grant_type:
            return _oauth_error(400, "invalid_request", "Missing form parameter: grant_type")

        client_id: str
        secret: str | None
        if basic is not None:
            if "client_secret" in form:
                return _oauth_error(
                    400, "invalid_request", "Multiple client authentication methods used"
                )
            client_id, secret = basic
            if form.get("client_id") not in (None, client_id):
                return _oauth_error(400, "invalid_request", "client_id does not match")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret")
        with self._lock:
            expected = self._clients.get(client_id) if client_id else None
        if expected is None:
            return _oauth_error(self.unknown_client_status, "invalid_client", INVALID_CLIENT)
        if secret is None:
            return _oauth_error(401, "invalid_client", "Client secret not provided in request")
        if not hmac.compare_digest(secret.encode(), expected.encode()):
            return _oauth_error(401, "invalid_client", INVALID_CLIENT)

        if grant_type == "client_credentials":
            scopes = (form.get("scope") or "").split()
            unknown = [scope for scope in scopes if scope not in self.scopes]
            if unknown:
                return _oauth_error(400, "invalid_scope", f"Invalid scopes: {form['scope']}")
            return _json_reply(200, self._issue(client_id, scopes))
        if grant_type == "refresh_token" and self.issue_refresh_tokens:
            now = self._clock()
            with self._lock:
                grant = self._refresh.get(form.get("refresh_token", ""))
            if grant is None or grant.client_id != client_id or now >= grant.expires_at:
                return _oauth_error(400, "invalid_grant", "Invalid refresh token")
            scopes = grant.scope.split()
            wanted = (form.get("scope") or "").split()
            if any(scope not in scopes for scope in wanted):
                return _oauth_error(400, "invalid_scope", f"Invalid scopes: {form['scope']}")
            return _json_reply(200, self._issue(client_id, wanted or scopes))
        return _oauth_error(400, "unsupported_grant_type", "Unsupported grant_type")

    def _issue(self, client_id: str, scopes: list[str]) -> dict[str, object]:
        """Mint a token (and a refresh token if enabled); the body is Keycloak's shape."""
        now = self._clock()
        scope = " ".join(scopes)
        lifetime = self.token_lifetime
        claims = {
            "exp": int(now + lifetime),
            "iat": int(now),
            "jti": str(uuid.uuid4()),
            "iss": f"{self.url}/realms/{REALM}",
            "azp": client_id,
            "typ": "Bearer",
            "scope": scope,
        }
        header = {"alg": "HS256", "typ": "JWT", "kid": "stand-in"}
        signed = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        with self._lock:
            key = self._clients.get(client_id, "")
        token = f"{signed}.{_signature(key, signed)}"
        payload: dict[str, object] = {
            "access_token": token,
            "expires_in": lifetime,
            "refresh_expires_in": 0,
            "refresh_token": None,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "scope": " ".join([*scopes, *DEFAULT_CLIENT_SCOPES]),
        }
        with self._lock:
            self._issued[token] = _Grant(client_id, scope, now + lifetime)
            if self.issue_refresh_tokens:
                refresh = secrets.token_urlsafe(48)
                self._refresh[refresh] = _Grant(client_id, scope, now + self.refresh_lifetime)
                payload["refresh_token"] = refresh
                payload["refresh_expires_in"] = self.refresh_lifetime
                payload["session_state"] = str(uuid.uuid4())
        return payload

    def _verify(self, token: str) -> _Grant | None:
        """The grant a token carries, if one of this issuer's clients signed it.

        Tokens are signed with the client's secret (HMAC-SHA256) rather than remembered, so a
        stand-in started again with the same client accepts what an earlier one issued: the
        demo's stored tokens still pass ``verify --sink`` after the demo's own issuer stopped.
        """
        header, dot, rest = token.partition(".")
        body, dot2, signature = rest.partition(".")
        if not (dot and dot2):
            return None
        try:
            claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (ValueError, binascii.Error):
            return None
        if not isinstance(claims, dict):
            return None
        client_id, expires, scope = claims.get("azp"), claims.get("exp"), claims.get("scope")
        if not isinstance(client_id, str) or not isinstance(scope, str):
            return None
        if not isinstance(expires, int) or isinstance(expires, bool):
            return None
        with self._lock:
            key = self._clients.get(client_id)
        if key is None or not hmac.compare_digest(_signature(key, f"{header}.{body}"), signature):
            return None
        return _Grant(client_id, scope, float(expires))

    def _test_token_endpoint(
        self, handler: _Handler, method: str, path: str, headers: Message
    ) -> None:
        with self._lock:
            self._test_token_requests += 1
            self._requests.append(
                RecordedRequest(
                    method=method,
                    path=path,
                    accept=headers.get("Accept"),
                    user_agent=headers.get("User-Agent"),
                    auth_method="bearer" if headers.get("Authorization") else "none",
                )
            )
        if method != "POST":
            self._send(handler, _json_reply(405, {"detail": "Method Not Allowed"}))
            return
        scheme, _, token = (headers.get("Authorization") or "").partition(" ")
        now = self._clock()
        grant = self._verify(token.strip()) if scheme.lower() == "bearer" else None
        if grant is None or now >= grant.expires_at:
            reply = _json_reply(401, {"detail": "Could not validate credentials"})
            headers_out = {**reply.headers, "WWW-Authenticate": "Bearer"}
            self._send(handler, _Reply(401, reply.body, headers_out))
            return
        self._send(handler, _json_reply(200, {"id": grant.client_id, "scope": grant.scope}))

    def _send(self, handler: _Handler, reply: _Reply, *, truncate: bool = False) -> None:
        handler.send_response(reply.status)
        names = {name.lower() for name in reply.headers}
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        if reply.body and "content-type" not in names:
            handler.send_header("Content-Type", "application/json")
        extra = _TRUNCATE_EXTRA if truncate else 0
        handler.send_header("Content-Length", str(len(reply.body) + extra))
        handler.send_header("Cache-Control", "no-store")
        handler.send_header("Pragma", "no-cache")
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(reply.body)
        handler.close_connection = True


def _parse_form(content_type: str | None, body: bytes) -> tuple[dict[str, str], str | None]:
    """The form fields, or a problem Keycloak would answer 400 to."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        return {}, "Content-Type must be application/x-www-form-urlencoded"
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        return {}, "The form is not UTF-8"
    repeated = sorted(name for name, values in parsed.items() if len(values) > 1)
    form = {name: values[0] for name, values in parsed.items()}
    if repeated:
        return form, f"Duplicated parameter: {', '.join(repeated)}"
    return form, None


def _parse_basic(header: str | None) -> tuple[str, str] | None:
    """RFC 6749 §2.3.1: base64 of form-encoded ``id:secret``; ``None`` if not Basic."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")  # present but unusable: fails as an unknown client
    client_id, _, secret = decoded.partition(":")
    return unquote_plus(client_id), unquote_plus(secret)


def _reset(handler: _Handler) -> None:
    """Abort the connection with a TCP reset and no answer."""
    handler.close_connection = True
    try:
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.connection.close()
    except OSError:
        pass


def _drop(handler: _Handler) -> None:
    handler.close_connection = True
    with contextlib.suppress(OSError):
        handler.connection.close()


class _Handler(LoopbackHandler):
    server: _Server
    server_version = "stand-in-issuer"

    def handle(self) -> None:
        # The client may give up first (a read timeout in a test, typically).
        with contextlib.suppress(ConnectionError, TimeoutError):
            super().handle()

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header by the issuer's own clock, as a real server's follows its."""
        when = self.server.issuer._clock() if timestamp is None else timestamp
        return super().date_time_string(when)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.issuer._handle(self)

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.server.issuer._handle(self)

    def do_PUT(self) -> None:  # noqa: N802 - http.server's name
        self.server.issuer._handle(self)

    def do_DELETE(self) -> None:  # noqa: N802 - http.server's name
        self.server.issuer._handle(self)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # the default 5 drops SYNs under a concurrent sync (1 s stalls)

    def __init__(self, address: tuple[str, int], issuer: StandInIssuer) -> None:
        self.issuer = issuer
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        log.debug("stand-in issuer: error while handling %s", client_address, exc_info=True)
