"""Harbor's token client: OAuth 2.0 client credentials against Keycloak's realm ``harbor``.

One :class:`TokenClient` per (credentials, environment). :meth:`TokenClient.fetch` sends the
form-encoded POST Harbor documents, retries only what is transient inside a total time
budget, never follows a redirect (it would resend the secret), and returns a validated
:class:`IssuedToken` or raises one :class:`~harbor_secrets.errors.HarborSecretsError`
subclass. The secret and every token are :class:`~harbor_secrets.secrets.Secret` values, so
they are registered for scrubbing and never print. Refresh tokens, when an issuer sends them,
are kept in memory only: the stored record never carries one.
"""

from __future__ import annotations

import base64
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import ClassVar, Self
from urllib.parse import quote, urlsplit

import requests

from harbor_secrets._http_retry import Exchange, RetryingSender, Timeouts
from harbor_secrets._token_response import (
    MAX_EXPIRES_IN,
    RequestContext,
    clean,
    error_for_answer,
    parse_success,
)
from harbor_secrets._version import __version__
from harbor_secrets.config import AUTH_METHODS
from harbor_secrets.environments import Environment, is_loopback_host
from harbor_secrets.errors import (
    ConfigError,
    InvalidGrantError,
    IssuerError,
    IssuerUnavailableError,
    unreachable_hint,
)
from harbor_secrets.freshness import IssueTiming, RefreshPolicy
from harbor_secrets.retry_policy import RetryPolicy
from harbor_secrets.secrets import Secret, register

__all__ = [
    "AUTH_METHODS",
    "ClientCredentials",
    "IssuedToken",
    "RetryPolicy",
    "TestTokenResult",
    "TokenClient",
]

log = logging.getLogger("harbor_secrets.token_client")


@dataclass(frozen=True)
class ClientCredentials:
    """A Harbor API client. ``client_secret_post`` is what Harbor documents."""

    client_id: str
    client_secret: Secret
    auth_method: str = "client_secret_post"

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ConfigError("the client id is empty", fix="set client_id")
        if self.auth_method not in AUTH_METHODS:
            raise ConfigError(
                f"unknown client authentication method {self.auth_method!r}",
                key="auth_method",
                fix=f"use one of {', '.join(AUTH_METHODS)}",
            )


@dataclass(frozen=True)
class IssuedToken:
    """A validated token response; ``issued_at`` is when the successful request was sent and
    ``received_at`` when its answer arrived (this host's clock), ``issuer_date`` the answer's
    ``Date`` (the issuer's clock; None when it sent none)."""

    access_token: Secret
    token_type: str
    expires_in: int
    granted_scope: str | None
    refresh_token: Secret | None
    issued_at: datetime
    attempts: int
    received_at: datetime | None = None
    issuer_date: datetime | None = None

    @property
    def timing(self) -> IssueTiming:
        """Which clock times this token: the freshness policy's rule (the issuer's when this
        host's clock disagrees with it)."""
        return RefreshPolicy.time_issue(self.issued_at, self.received_at, self.issuer_date)

    @property
    def expires_at(self) -> datetime:
        # Counted from the send time (or the issuer's Date), not the receive time, so it can
        # only err early.
        return self.timing.issued_at + timedelta(seconds=self.expires_in)


@dataclass(frozen=True)
class TestTokenResult:
    """Harbor's verdict on a token; ``message`` carries Harbor's guidance for 401 and 404."""

    __test__: ClassVar[bool] = False  # not a pytest test class, despite the name

    ok: bool
    status: int
    message: str


@dataclass(frozen=True)
class _HeldRefresh:
    token: Secret
    expires_at: float | None  # on the client's monotonic clock; None when the issuer gave none


class TokenClient:
    """Fetches tokens for one set of credentials in one environment.

    ``sleep``, ``clock`` (monotonic seconds) and ``uniform`` (the jitter's random source) are
    injectable so tests can observe retry delays without waiting for them; ``wall_clock``
    (this host's UTC time, which stamps each request) so they can give it a wrong clock.
    """

    def __init__(
        self,
        environment: Environment,
        credentials: ClientCredentials,
        *,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, so sharing it is safe
        default_expires_in: int = 300,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        user_agent: str | None = None,
        uniform: Callable[[float, float], float] | None = None,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not 0 < default_expires_in <= MAX_EXPIRES_IN:
            raise ConfigError(
                f"default token lifetime {default_expires_in} s is out of range",
                fix=f"use 1 to {MAX_EXPIRES_IN} seconds (Harbor's tokens live 300 s)",
            )
        self.environment = environment
        self.credentials = credentials
        self.retry = retry
        self.default_expires_in = default_expires_in
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        self._user_agent = user_agent or f"harbor-secrets/{__version__}"
        self._clock = clock
        self._lock = threading.Lock()
        self._requests_sent = 0
        self._refresh_tokens: dict[str, _HeldRefresh] = {}
        self._sender = RetryingSender(
            retry,
            sleep=sleep,
            clock=clock,
            uniform=uniform or random.SystemRandom().uniform,
            logger=log,
            on_attempt=self._count_attempt,
            wall_clock=wall_clock,
        )

    def __repr__(self) -> str:
        return (
            f"TokenClient(environment={self.environment.name!r}, "
            f"client_id={self.credentials.client_id!r}, "
            f"auth_method={self.credentials.auth_method!r})"
        )

    @property
    def requests_sent(self) -> int:
        """Every HTTP attempt this client made, retries and test-token calls included."""
        with self._lock:
            return self._requests_sent

    def _count_attempt(self) -> None:
        with self._lock:
            self._requests_sent += 1

    # -- token endpoint ------------------------------------------------------------------

    def fetch(self, scope: str) -> IssuedToken:
        """A fresh token for ``scope``; one time budget covers the whole call.

        If an earlier response left a refresh token for this scope, the refresh grant is
        tried first and a rejected refresh token falls back to client credentials.
        """
        deadline = self._clock() + self.retry.total_budget
        held = self._held_refresh_token(scope)
        if held is not None:
            try:
                return self._refresh_grant(held, scope, deadline)
            except InvalidGrantError:
                log.info(
                    "%s: the refresh token for scope %r was rejected; using client credentials",
                    self.environment.name,
                    scope,
                )
                self._forget_refresh_token(scope, held)
        form = {"grant_type": "client_credentials", "scope": scope}
        return self._token_request(form, scope, deadline)

    def refresh(self, refresh_token: Secret, scope: str) -> IssuedToken:
        """Use the refresh_token grant (Harbor's documented form: no scope parameter)."""
        return self._refresh_grant(refresh_token, scope, self._clock() + self.retry.total_budget)

    def _refresh_grant(self, refresh_token: Secret, scope: str, deadline: float) -> IssuedToken:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token.reveal()}
        return self._token_request(form, scope, deadline)

    def _token_request(self, form: dict[str, str], scope: str, deadline: float) -> IssuedToken:
        url = self.environment.token_url
        ctx = RequestContext(url, self.environment.name, scope, form["grant_type"])
        body, headers = self._authenticate(form)

        def send(timeouts: Timeouts) -> requests.Response:
            return self._session.post(
                url,
                data=body,
                headers=headers,
                timeout=timeouts,
                allow_redirects=False,
                stream=True,
            )

        exchange = self._sender.exchange(send, method="POST", url=url, deadline=deadline)
        answer = exchange.answer
        error: IssuerError | None = None
        if answer is None:
            error = _transport_error(f"{ctx.describe()} to {url} failed", exchange, url)
        elif not 200 <= answer.status < 300:
            note = exchange.stopped
            if note is None and exchange.attempts > 1:
                note = f"on attempt {exchange.attempts}"
            error = error_for_answer(answer, ctx, note=note)
        if error is not None:
            error.attempts = exchange.attempts  # so a failed run still reports what it sent
            raise error
        assert answer is not None
        try:
            payload = parse_success(
                answer, ctx, default_expires_in=self.default_expires_in, logger=log
            )
        except IssuerError as exc:
            exc.attempts = exchange.attempts
            raise
        if payload.refresh_token is not None:
            expires_at = None
            if payload.refresh_expires_in and payload.refresh_expires_in > 0:
                expires_at = self._clock() + payload.refresh_expires_in
            with self._lock:
                self._refresh_tokens[scope] = _HeldRefresh(payload.refresh_token, expires_at)
        elif form["grant_type"] == "client_credentials":
            with self._lock:
                self._refresh_tokens.pop(scope, None)
        log.debug(
            "%s: token for scope %r issued (expires in %d s, %d attempt(s))",
            self.environment.name,
            scope,
            payload.expires_in,
            exchange.attempts,
        )
        return IssuedToken(
            access_token=payload.access_token,
            token_type=payload.token_type,
            expires_in=payload.expires_in,
            granted_scope=payload.scope,
            refresh_token=payload.refresh_token,
            issued_at=answer.sent_at,
            attempts=exchange.attempts,
            received_at=answer.received_at,
            issuer_date=answer.date,
        )

    def _authenticate(self, form: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        """The form and headers carrying client authentication (RFC 6749 §2.3.1)."""
        headers = {"Accept": "application/json", "User-Agent": self._user_agent}
        creds = self.credentials
        if creds.auth_method == "client_secret_basic":
            # Each part is form-encoded before base64 so ':' and non-ASCII survive. Spaces
            # become %20, not '+': form decoders accept both and plain percent-decoders
            # (which some servers use here) only the former.
            userpass = f"{quote(creds.client_id, safe='')}:"
            userpass += quote(creds.client_secret.reveal(), safe="")
            encoded = base64.b64encode(userpass.encode("utf-8")).decode("ascii")
            register(encoded)
            headers["Authorization"] = f"Basic {encoded}"
            return dict(form), headers
        body = {
            **form,
            "client_id": creds.client_id,
            "client_secret": creds.client_secret.reveal(),
        }
        return body, headers

    def _held_refresh_token(self, scope: str) -> Secret | None:
        with self._lock:
            held = self._refresh_tokens.get(scope)
            if held is None:
                return None
            if held.expires_at is not None and self._clock() >= held.expires_at:
                del self._refresh_tokens[scope]
                return None
            return held.token

    def _forget_refresh_token(self, scope: str, token: Secret) -> None:
        with self._lock:
            held = self._refresh_tokens.get(scope)
            if held is not None and held.token == token:
                del self._refresh_tokens[scope]

    # -- test-token endpoint --------------------------------------------------------------

    def test_token(self, token: Secret) -> TestTokenResult:
        """Ask Harbor's API whether it accepts ``token``.

        Every HTTP answer is a result (401 and 404 carry Harbor's guidance); only getting no
        answer at all raises. Retries and redirects are handled as for the token POST.
        """
        url = self.environment.test_token_url
        headers = {
            "Accept": "application/json",
            "Authorization": f"Bearer {token.reveal()}",
            "User-Agent": self._user_agent,
        }

        def send(timeouts: Timeouts) -> requests.Response:
            return self._session.post(
                url, data=b"", headers=headers, timeout=timeouts, allow_redirects=False, stream=True
            )

        deadline = self._clock() + self.retry.total_budget
        exchange = self._sender.exchange(send, method="POST", url=url, deadline=deadline)
        answer = exchange.answer
        if answer is None:
            raise _transport_error(f"testing the token at {url} failed", exchange, url)
        status = answer.status
        if 200 <= status < 300:
            return TestTokenResult(True, status, f"HTTP {status}: {url} accepted the token")
        if status == 401:
            message = (
                f"HTTP 401: {url} rejected the token; check your credentials and environment "
                "(production vs sandbox)"
            )
        elif status == 404:
            message = f"HTTP 404: {url} does not exist; check the API URL"
        elif 300 <= status < 400:
            location = clean(answer.headers.get("Location") or "an unnamed location")
            message = (
                f"HTTP {status}: {url} redirected to {location}; not followed because it would "
                "resend the token; use the final URL as the API URL"
            )
        else:
            message = f"HTTP {status}: {url} did not accept the token"
            if exchange.stopped:
                message += f" ({exchange.stopped})"
        return TestTokenResult(False, status, message)

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Forget held refresh tokens; close the HTTP session if this client created it."""
        with self._lock:
            self._refresh_tokens.clear()
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _transport_error(what: str, exchange: Exchange, url: str) -> IssuerError:
    """No answer at all: unavailable if it was worth retrying, otherwise a plain failure."""
    message = f"{what}: {exchange.failure or 'no attempt was left to make'}"
    if exchange.stopped is None:  # not retryable, e.g. a TLS failure
        return IssuerError(message, hint="check the URL and, for https, the CA bundle")
    local = is_loopback_host(urlsplit(url).hostname or "")
    hint = unreachable_hint(exchange.failure, local=local)
    return IssuerUnavailableError(f"{message}; {exchange.stopped}", hint=hint)
