"""Retries: only transient failures, full-jitter backoff, Retry-After, one total budget.

Sleeps are recorded by a fake ``sleep`` (and the clock advanced by them) instead of waited
for; timeouts and resets are real, against the stand-in issuer over loopback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from harbor_secrets.environments import Environment
from harbor_secrets.errors import (
    HarborSecretsError,
    InvalidClientError,
    IssuerError,
    IssuerUnavailableError,
    MalformedResponseError,
)
from harbor_secrets.secrets import Secret
from harbor_secrets.stand_in_issuer import Fault, StandInIssuer
from harbor_secrets.token_client import ClientCredentials, RetryPolicy, TokenClient
from harbor_testkit.clock import FakeTime

CLIENT_ID = "svc-client"
SECRET = "retry-secret-0a1b2c"
SCOPE = "service_provider"


def window_top(low: float, high: float) -> float:
    """A deterministic 'random' draw: always the top of the full-jitter window."""
    return high


MakeClient = Callable[..., TokenClient]


@pytest.fixture
def issuer() -> Iterator[StandInIssuer]:
    with StandInIssuer({CLIENT_ID: SECRET}) as running:
        yield running


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make_client(issuer: StandInIssuer, fake_time: FakeTime) -> Iterator[MakeClient]:
    made: list[TokenClient] = []

    def make(**policy: Any) -> TokenClient:
        uniform = policy.pop("uniform", None)
        settings: dict[str, Any] = {"connect_timeout": 2.0, "read_timeout": 2.0}
        settings.update(policy)
        client = TokenClient(
            Environment("sandbox", issuer.url, issuer.url),
            ClientCredentials(CLIENT_ID, Secret(SECRET)),
            retry=RetryPolicy(**settings),
            sleep=fake_time.sleep,
            clock=fake_time.clock,
            uniform=uniform,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_each_retryable_status_is_retried_with_full_jitter(
    issuer: StandInIssuer, make_client: MakeClient, fake_time: FakeTime, status: int
) -> None:
    issuer.inject(Fault(status=status), Fault.html(status))
    client = make_client(base_delay=0.5, max_delay=8.0)
    token = client.fetch(SCOPE)
    assert token.attempts == 3
    assert client.requests_sent == 3
    assert issuer.token_requests == 3
    assert len(fake_time.slept) == 2
    for retry_number, delay in enumerate(fake_time.slept):
        assert 0.0 <= delay <= min(8.0, 0.5 * 2**retry_number)


def test_backoff_window_doubles_up_to_max_delay(
    issuer: StandInIssuer, make_client: MakeClient, fake_time: FakeTime
) -> None:
    issuer.inject(*[Fault(status=503)] * 5)
    client = make_client(
        base_delay=0.5, max_delay=3.0, max_attempts=6, total_budget=60, uniform=window_top
    )
    assert client.fetch(SCOPE).attempts == 6
    assert fake_time.slept == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_draws_are_spread_not_fixed(
    issuer: StandInIssuer, make_client: MakeClient, fake_time: FakeTime
) -> None:
    # Full jitter: with the real random source, eight first-retry delays all differ.
    for _ in range(8):
        issuer.inject(Fault(status=503))
        make_client(base_delay=1.0).fetch(SCOPE)
    assert len(set(fake_time.slept)) == 8
    assert all(0.0 <= delay <= 1.0 for delay in fake_time.slept)


def test_connection_reset_is_retried(
    issuer: StandInIssuer, make_client: MakeClient, fake_time: FakeTime
) -> None:
    issuer.inject(Fault.connection_reset(), Fault.connection_reset())
    token = make_client().fetch(SCOPE)
    assert token.attempts == 3
    assert token.access_token.reveal() in issuer.issued


def test_read_timeout_is_retried(
    issuer: StandInIssuer, make_client: MakeClient, fake_time: FakeTime
) -> None:
    issuer.inject(Fault.slow(1.0))
    client = make_client(read_timeout=0.3)
    started = time.monotonic()
    token = client.fetch(SCOPE)
    assert time.monotonic() - started < 0.9
    assert token.attempts == 2
    assert len(fake_time.slept) == 1


def test_connection_refused_is_retried_until_attempts_run_out(
    issuer: StandInIssuer, make_client: MakeClient, fake_time: FakeTime
) -> None:
    client = make_client(max_attempts=4)
    issuer.stop()
    with pytest.raises(IssuerUnavailableError) as caught:
        client.fetch(SCOPE)
    assert "connection refused" in str(caught.value)
    assert "gave up after 4 attempts" in str(caught.value)
    assert client.requests_sent == 4
    assert len(fake_time.slept) == 3


def test_retry_after_seconds_is_honoured(
    issuer: StandInIssuer, make_client: MakeClient, fake_time: FakeTime
) -> None:
    issuer.inject(Fault.retry_after(429, 7), Fault.retry_after(503, 0))
    token = make_client(max_delay=1.0, uniform=window_top).fetch(SCOPE)
    # Beyond max_delay: Retry-After wins. "0" may not shorten the policy's own backoff.
    assert fake_time.slept == [7.0, 1.0]
    assert token.attempts == 3


def test_retry_after_in_the_past_backs_off_as_the_policy_would(
    issuer: StandInIssuer, make_client: MakeClient, fake_time: FakeTime
) -> None:
    """An issuer whose clock is behind sends a date already past: that is no reason to
    retry at once (it used to mean ten requests in a quarter of a second)."""
    past = datetime.now(UTC) - timedelta(minutes=5)
    issuer.inject(*[Fault.retry_after(503, past)] * 9)
    client = make_client(
        base_delay=0.5, max_delay=4.0, max_attempts=10, total_budget=60, uniform=window_top
    )
    client.fetch(SCOPE)
    assert client.requests_sent == 10
    assert fake_time.slept == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]


def test_retry_after_http_date_is_honoured(
    issuer: StandInIssuer, make_client: MakeClient, fake_time: FakeTime
) -> None:
    issuer.inject(Fault.retry_after(503, datetime.now(UTC) + timedelta(seconds=5)))
    make_client().fetch(SCOPE)
    [delay] = fake_time.slept
    assert 3.0 < delay <= 5.0  # HTTP-dates have whole seconds


def test_retry_after_beyond_the_budget_stops_at_once(
    issuer: StandInIssuer, make_client: MakeClient, fake_time: FakeTime
) -> None:
    issuer.inject(Fault.retry_after(503, 120))
    client = make_client(total_budget=30)
    with pytest.raises(IssuerUnavailableError) as caught:
        client.fetch(SCOPE)
    message = str(caught.value)
    assert "retry after 120 s" in message
    assert "30 s budget" in message
    assert caught.value.status == 503
    assert fake_time.slept == []
    assert client.requests_sent == 1


def test_backoff_never_sleeps_past_the_budget(
    issuer: StandInIssuer, make_client: MakeClient, fake_time: FakeTime
) -> None:
    issuer.inject(*[Fault(status=502)] * 10)
    client = make_client(base_delay=0.5, total_budget=3.0, max_attempts=10, uniform=window_top)
    with pytest.raises(IssuerUnavailableError) as caught:
        client.fetch(SCOPE)
    assert "3 s time budget was used up" in str(caught.value)
    assert fake_time.slept == [0.5, 1.0]  # the next delay, 2 s, would not fit
    assert client.requests_sent == 3


def test_max_attempts_bounds_retries(
    issuer: StandInIssuer, make_client: MakeClient, fake_time: FakeTime
) -> None:
    issuer.inject(*[Fault.html(503)] * 5)
    client = make_client(max_attempts=3)
    with pytest.raises(IssuerUnavailableError) as caught:
        client.fetch(SCOPE)
    assert "gave up after 3 attempts" in str(caught.value)
    assert caught.value.status == 503
    assert issuer.pending_faults == 2
    assert client.requests_sent == 3


def test_budget_caps_each_attempts_timeout(issuer: StandInIssuer, make_client: MakeClient) -> None:
    issuer.inject(*[Fault.slow(3.0)] * 3)
    client = make_client(read_timeout=10.0, total_budget=0.5)
    started = time.monotonic()
    with pytest.raises(IssuerUnavailableError, match=r"no answer within 0\.5 s"):
        client.fetch(SCOPE)
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(
    "fault",
    [
        Fault.error(400, "invalid_request", "Missing form parameter"),
        Fault.error(401, "invalid_client", "Invalid client or Invalid client credentials"),
        Fault.error(403, "access_denied", "no"),
        Fault(status=404, body='{"error":"Realm does not exist"}'),
        Fault.error(500, "unknown_error", "boom"),
        Fault.html(500),
    ],
    ids=["400", "401", "403", "404", "500", "500-html"],
)
def test_other_statuses_are_not_retried(
    issuer: StandInIssuer, make_client: MakeClient, fake_time: FakeTime, fault: Fault
) -> None:
    # Were it retried, the next (normal) answer would succeed and no error would be raised.
    issuer.inject(fault)
    client = make_client()
    with pytest.raises(IssuerError):
        client.fetch(SCOPE)
    assert client.requests_sent == 1
    assert issuer.token_requests == 1
    assert fake_time.slept == []


def test_bad_credentials_are_not_retried(issuer: StandInIssuer, fake_time: FakeTime) -> None:
    client = TokenClient(
        Environment("sandbox", issuer.url, issuer.url),
        ClientCredentials(CLIENT_ID, Secret("wrong-secret")),
        sleep=fake_time.sleep,
        clock=fake_time.clock,
    )
    with client, pytest.raises(InvalidClientError):
        client.fetch(SCOPE)
    assert issuer.token_requests == 1


def test_truncated_error_answer_is_not_retried(
    issuer: StandInIssuer, make_client: MakeClient
) -> None:
    issuer.inject(Fault(status=400, body='{"error": "invalid_request"}', truncate=True))
    client = make_client()
    with pytest.raises(MalformedResponseError, match="cut short"):
        client.fetch(SCOPE)
    assert client.requests_sent == 1


def test_redirect_is_not_followed_and_the_target_receives_nothing(
    issuer: StandInIssuer, make_client: MakeClient
) -> None:
    with StandInIssuer({CLIENT_ID: SECRET}) as target:
        issuer.inject(Fault.redirect(target.token_url))
        client = make_client()
        with pytest.raises(IssuerError) as caught:
            client.fetch(SCOPE)
        assert target.requests == []
        assert target.token_requests == 0
    message = str(caught.value)
    assert "redirected (HTTP 307)" in message
    assert target.token_url in message
    assert "not followed because it would resend the client secret" in message
    assert caught.value.status == 307
    assert client.requests_sent == 1


def test_attempts_are_logged_at_debug_and_retries_at_warning(
    issuer: StandInIssuer, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    issuer.inject(Fault(status=503))
    with caplog.at_level(logging.DEBUG, logger="harbor_secrets.token_client"):
        make_client(uniform=window_top, base_delay=0.25).fetch(SCOPE)
    ours = [r for r in caplog.records if r.name == "harbor_secrets.token_client"]
    debug = [r for r in ours if r.levelno == logging.DEBUG and "->" in r.getMessage()]
    assert len(debug) == 2
    assert f"POST {issuer.token_url} -> HTTP 503 (attempt 1 of 5," in debug[0].getMessage()
    assert "-> HTTP 200 (attempt 2 of 5," in debug[1].getMessage()
    [warning] = [r for r in ours if r.levelno == logging.WARNING]
    assert "HTTP 503; retrying in 0.25 s (attempt 2 of 5)" in warning.getMessage()


def test_errors_are_harbor_errors_without_chained_request_details(
    issuer: StandInIssuer, make_client: MakeClient
) -> None:
    client = make_client(max_attempts=1)
    issuer.stop()
    with pytest.raises(HarborSecretsError) as caught:
        client.fetch(SCOPE)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


def test_retry_policy_is_validated() -> None:
    with pytest.raises(HarborSecretsError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(HarborSecretsError, match="total_budget"):
        RetryPolicy(total_budget=0)
