"""Regression tests for product bugs the fault suite found (both fixed in _http_retry.py).

The end-to-end scenarios in test_faults_issuer.py cover the same faults through the CLI.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from conftest import CLIENT_ID, CLIENT_SECRET
from harbor_secrets._http_retry import parse_retry_after
from harbor_secrets.environments import Environment
from harbor_secrets.secrets import Secret
from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_secrets.token_client import ClientCredentials, RetryPolicy, TokenClient
from harbor_testkit.proxy import FaultProxy, ProxyFault


def test_retry_after_with_a_non_ascii_digit_is_ignored() -> None:
    # "²".isdigit() is true but float("²") raises: it used to escape the retry loop.
    assert parse_retry_after("\u00b2", datetime.now(UTC)) is None
    assert parse_retry_after("9" * 400, datetime.now(UTC)) == 86_400.0


@pytest.fixture
def proxied_issuer(issuer: StandInIssuer) -> Iterator[tuple[StandInIssuer, FaultProxy]]:
    with FaultProxy.in_front_of(issuer.url) as proxy:
        yield issuer, proxy


def test_response_cut_inside_the_headers_is_retried(
    proxied_issuer: tuple[StandInIssuer, FaultProxy],
) -> None:
    issuer, proxy = proxied_issuer
    proxy.inject(ProxyFault.truncate(20))  # "HTTP/1.0 200 OK\r\nSer" and the connection ends
    environment = Environment("sandbox", accounts_url=proxy.url, api_url=proxy.url)
    credentials = ClientCredentials(CLIENT_ID, Secret(CLIENT_SECRET))
    policy = RetryPolicy(connect_timeout=0.5, read_timeout=1, total_budget=3, max_attempts=3)
    with TokenClient(environment, credentials, retry=policy) as client:
        token = client.fetch("service_provider")
    assert token.attempts == 2
    assert issuer.token_requests == 2  # the cut answer was real; the retry got a new one
