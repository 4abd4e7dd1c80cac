"""One HTTP exchange with bounded, full-jitter retries inside a total time budget.

Kept apart from OAuth semantics so the policy (retry only what is transient, never follow a
redirect, never outlive the budget) is written once and used by both the token POST and the
test-token POST. Nothing here raises: the caller gets an :class:`Exchange` describing the
final answer or transport failure and decides which typed error it means.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import requests
import urllib3
from requests.structures import CaseInsensitiveDict

from harbor_secrets.errors import describe_connection_failure
from harbor_secrets.retry_policy import RetryPolicy

# Transient by definition: the issuer or a proxy in front of it is overloaded or restarting.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})

# A token response is a few kilobytes; anything bigger is not one and is not read into memory.
MAX_BODY_BYTES = 1 << 20

# A Retry-After beyond a day is nonsense; capping keeps the arithmetic finite.
MAX_RETRY_AFTER = 86_400.0

# (connect timeout, read timeout) as requests takes them.
Timeouts = tuple[float, float]


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, body read (at most :data:`MAX_BODY_BYTES`)."""

    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)  # a success body holds the access token
    truncated: bool  # the connection ended before the announced body did
    sent_at: datetime  # wall-clock UTC time the request was sent
    too_large: bool = False  # the body passed MAX_BODY_BYTES and reading stopped there
    received_at: datetime | None = None  # wall-clock UTC time the body was read

    @property
    def date(self) -> datetime | None:
        """The answer's ``Date`` (RFC 9110 §6.6.1): when the server made it, by its clock."""
        return parse_http_date(self.headers.get("Date"))


@dataclass(frozen=True)
class Exchange:
    """How an exchange ended: the final answer or transport failure, and why retrying stopped."""

    answer: Answer | None
    failure: str | None  # set when the last attempt got no answer
    attempts: int
    stopped: str | None = None  # set when the last outcome was retryable but we gave up


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP-date (RFC 9110 §5.6.7) as a UTC datetime, or None if absent or unparsable."""
    if value is None:
        return None
    try:
        moment = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # RFC 9110 dates are GMT; be lenient with ones that omit it
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP-date (RFC 9110).

    ``now`` is best the answer's own ``Date``: both dates are then the server's, and a
    client whose clock is wrong still waits what was asked.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():  # "²".isdigit() is true, float("²") is not
        return min(float(text), MAX_RETRY_AFTER)
    moment = parse_http_date(text)
    if moment is None:
        return None
    return max(0.0, (moment - now).total_seconds())


def describe_transport_error(exc: requests.RequestException) -> str:
    """A short reason without the exception's text, which names request internals."""
    reason = describe_connection_failure(exc)
    return f"connection failed ({reason})" if reason == type(exc).__name__ else reason


@dataclass(frozen=True)
class _Failure:
    reason: str
    retryable: bool


class RetryingSender:
    """Runs one exchange: attempts, logs, sleeps; the clock and the randomness are injectable."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        uniform: Callable[[float, float], float],
        logger: logging.Logger,
        on_attempt: Callable[[], None],
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.policy = policy
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self._uniform = uniform
        self._log = logger
        self._on_attempt = on_attempt

    def exchange(
        self,
        send: Callable[[Timeouts], requests.Response],
        *,
        method: str,
        url: str,
        deadline: float,
    ) -> Exchange:
        """Send until an answer that is not transient, or until attempts or budget run out."""
        policy = self.policy
        attempt = 0
        answer: Answer | None = None
        failure: _Failure | None = None
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                return self._gave_up(answer, failure, attempt, self._budget_used_up())
            attempt += 1
            timeouts = (min(policy.connect_timeout, remaining), min(policy.read_timeout, remaining))
            started = self._clock()
            self._on_attempt()
            answer, failure = self._attempt(send, timeouts, deadline)
            elapsed = self._clock() - started
            outcome = f"HTTP {answer.status}" if answer else (failure.reason if failure else "")
            self._log.debug(
                "%s %s -> %s (attempt %d of %d, %.3f s)",
                method,
                url,
                outcome,
                attempt,
                policy.max_attempts,
                elapsed,
            )
            if answer is not None and answer.status not in RETRYABLE_STATUSES:
                return Exchange(answer=answer, failure=None, attempts=attempt)
            if failure is not None and not failure.retryable:
                return Exchange(answer=None, failure=failure.reason, attempts=attempt)
            if attempt >= policy.max_attempts:
                return self._gave_up(answer, failure, attempt, f"gave up after {attempt} attempts")
            delay, no_time = self._next_delay(answer, attempt - 1, deadline - self._clock())
            if no_time is not None:
                return self._gave_up(answer, failure, attempt, no_time)
            self._log.warning(
                "%s %s: %s; retrying in %.2f s (attempt %d of %d)",
                method,
                url,
                outcome,
                delay,
                attempt + 1,
                policy.max_attempts,
            )
            self._sleep(delay)

    def _next_delay(
        self, answer: Answer | None, retry_number: int, remaining: float
    ) -> tuple[float, str | None]:
        """The wait before the next attempt, or why the budget has no room for one.

        The delay is drawn from the full-jitter window; ``Retry-After`` can only lengthen it
        (it may exceed ``max_delay``), never shorten it: a date in the past (an issuer whose
        clock is behind) or ``0`` would otherwise mean retrying at once, in a tight loop.
        """
        retry_after = None
        if answer is not None:
            now = answer.date or self._wall_clock()
            retry_after = parse_retry_after(answer.headers.get("Retry-After"), now)
        delay = self._uniform(0.0, self.policy.backoff_window(retry_number))
        if retry_after is not None and retry_after > remaining:
            return retry_after, (
                f"the issuer asked to retry after {retry_after:.0f} s (Retry-After), more "
                f"than the {max(remaining, 0):.1f} s left of the "
                f"{self.policy.total_budget:g} s budget"
            )
        delay = max(delay, retry_after or 0.0)
        if delay >= remaining:
            return delay, self._budget_used_up()
        return delay, None

    def _budget_used_up(self) -> str:
        return f"the {self.policy.total_budget:g} s time budget was used up"

    @staticmethod
    def _gave_up(
        answer: Answer | None, failure: _Failure | None, attempts: int, reason: str
    ) -> Exchange:
        return Exchange(
            answer=answer,
            failure=failure.reason if failure and answer is None else None,
            attempts=attempts,
            stopped=reason,
        )

    def _attempt(
        self, send: Callable[[Timeouts], requests.Response], timeouts: Timeouts, deadline: float
    ) -> tuple[Answer | None, _Failure | None]:
        # Exceptions are turned into plain descriptions here and never chained onward: a
        # requests exception holds the prepared request, whose body carries the secret.
        sent_at = self._wall_clock()
        try:
            response = send(timeouts)
        except requests.exceptions.SSLError:
            return None, _Failure("TLS handshake failed (certificate or CA bundle)", False)
        except requests.exceptions.ConnectTimeout:
            return None, _Failure(f"could not connect within {timeouts[0]:.3g} s", True)
        except requests.exceptions.ReadTimeout:
            return None, _Failure(f"no answer within {timeouts[1]:.3g} s (read timeout)", True)
        except requests.exceptions.ConnectionError as exc:
            return None, _Failure(describe_transport_error(exc), True)
        except requests.RequestException as exc:
            return None, _Failure(f"request failed ({type(exc).__name__})", False)
        with response:
            body, cut, failure = _read_body(response, deadline, self._clock)
        received_at = self._wall_clock()
        if failure is not None:
            return None, failure
        if 200 <= response.status_code < 300 and not body and _length_unknown(response):
            # A success with nothing after it and no Content-Length or chunking is an answer
            # cut inside its headers (http.client accepts the status line and moves on).
            return None, _Failure("the answer was cut short inside its headers", True)
        # Headers are kept raw; whatever of them goes into a message passes through scrub().
        headers = CaseInsensitiveDict(dict(response.headers))
        return (
            Answer(
                response.status_code,
                headers,
                body,
                truncated=cut == _SHORT,
                sent_at=sent_at,
                too_large=cut == _TOO_LARGE,
                received_at=received_at,
            ),
            None,
        )


def _length_unknown(response: requests.Response) -> bool:
    encoding = response.headers.get("Transfer-Encoding", "").lower()
    return "Content-Length" not in response.headers and "chunked" not in encoding


# Why a body read stopped before its end: the connection ended, or it passed our size limit.
_SHORT = "short"
_TOO_LARGE = "too-large"


def _read_body(
    response: requests.Response, deadline: float, clock: Callable[[], float]
) -> tuple[bytes, str | None, _Failure | None]:
    """Read at most :data:`MAX_BODY_BYTES` before ``deadline``; a body cut short by the
    connection (:data:`_SHORT`) or stopped at the size limit (:data:`_TOO_LARGE`) is said so.

    ``read_timeout`` bounds each socket read, not the body: a server dripping a byte at a
    time would never be cut off. So the body is read a socket read at a time (``read1``)
    and the deadline is checked between reads. urllib3 1.x has no ``read1``: requests' own
    iteration is used then, without the deadline.
    """
    read1 = getattr(response.raw, "read1", None)
    source: Iterator[bytes]
    if read1 is None:
        source, errors = response.iter_content(chunk_size=16384), _REQUESTS_ERRORS
    else:
        source, errors = _socket_reads(read1, deadline, clock), _URLLIB3_ERRORS
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in source:
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return b"".join(chunks)[:MAX_BODY_BYTES], _TOO_LARGE, None
    except _OutOfTimeError:
        reason = "the answer's body was still arriving when the time budget ran out"
        return b"", None, _Failure(reason, True)
    except errors.short:  # the connection ended before the announced body did
        return b"".join(chunks), _SHORT, None
    except errors.stalled:  # requests reports a read timeout mid-body as a ConnectionError
        return b"", None, _Failure("the answer stalled while its body was read", True)
    except errors.other as exc:
        return b"", None, _Failure(f"reading the answer failed ({type(exc).__name__})", True)
    return b"".join(chunks), None, None


class _OutOfTimeError(Exception):
    """The total budget ran out between two socket reads of a body."""


@dataclass(frozen=True)
class _BodyErrors:
    """How one HTTP stack says a body read went wrong, most specific first."""

    short: tuple[type[BaseException], ...]
    stalled: tuple[type[BaseException], ...]
    other: tuple[type[BaseException], ...]


_URLLIB3_ERRORS = _BodyErrors(
    short=(urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError),
    stalled=(urllib3.exceptions.HTTPError,),
    other=(OSError,),
)
_REQUESTS_ERRORS = _BodyErrors(
    short=(requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError),
    stalled=(requests.exceptions.ConnectionError,),
    other=(requests.RequestException,),
)


def _socket_reads(
    read1: Callable[..., bytes], deadline: float, clock: Callable[[], float]
) -> Iterator[bytes]:
    """One socket read at a time until the body ends, checking the deadline before each."""
    while True:
        if clock() >= deadline:
            raise _OutOfTimeError
        chunk = read1(16384, decode_content=True)
        if not chunk:
            return
        yield chunk
