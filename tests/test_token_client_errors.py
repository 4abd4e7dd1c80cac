"""Every shape of token endpoint failure becomes the one typed error that says what to fix."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from harbor_secrets.environments import Environment
from harbor_secrets.errors import (
    HarborSecretsError,
    InvalidClientError,
    InvalidGrantError,
    InvalidScopeError,
    IssuerError,
    IssuerUnavailableError,
    MalformedResponseError,
    NotFoundError,
    UnauthorizedClientError,
)
from harbor_secrets.secrets import Secret
from harbor_secrets.stand_in_issuer import Fault, StandInIssuer
from harbor_secrets.token_client import ClientCredentials, RetryPolicy, TokenClient

CLIENT_ID = "svc-client"
SECRET = "errors-secret-77aa01"
SCOPE = "service_provider"
CREDENTIALS = "check the client id, the client secret and that you use the right environment"
URL = "check the accounts URL"


@pytest.fixture
def issuer() -> Iterator[StandInIssuer]:
    with StandInIssuer({CLIENT_ID: SECRET}) as running:
        yield running


def fetch_error(
    issuer: StandInIssuer,
    *,
    client_id: str = CLIENT_ID,
    secret: str = SECRET,
    scope: str = SCOPE,
    accounts_url: str | None = None,
) -> IssuerError:
    environment = Environment("sandbox", accounts_url or issuer.url, issuer.url)
    client = TokenClient(
        environment,
        ClientCredentials(client_id, Secret(secret)),
        retry=RetryPolicy(max_attempts=1, read_timeout=2),
        sleep=lambda _: None,
    )
    with client, pytest.raises(IssuerError) as caught:
        client.fetch(scope)
    return caught.value


# -- the stand-in's own Keycloak-shaped refusals -------------------------------------------


def test_wrong_secret_is_invalid_client_with_credentials_guidance(issuer: StandInIssuer) -> None:
    error = fetch_error(issuer, secret="not-the-secret")
    assert type(error) is InvalidClientError
    assert (error.status, error.error_code) == (401, "invalid_client")
    assert error.hint is not None
    assert CREDENTIALS in error.hint
    assert "production vs sandbox" in str(error)
    assert "Invalid client or Invalid client credentials" in str(error)


@pytest.mark.parametrize("status", [400, 401])
def test_unknown_client_is_invalid_client_whatever_keycloaks_status(status: int) -> None:
    with StandInIssuer({CLIENT_ID: SECRET}, unknown_client_status=status) as issuer:
        error = fetch_error(issuer, client_id="nobody")
    assert type(error) is InvalidClientError
    assert error.status == status
    assert error.hint is not None
    assert CREDENTIALS in error.hint


def test_unknown_scope_is_invalid_scope(issuer: StandInIssuer) -> None:
    error = fetch_error(issuer, scope="admin")
    assert type(error) is InvalidScopeError
    assert (error.status, error.error_code) == (400, "invalid_scope")
    assert "Invalid scopes: admin" in str(error)
    assert error.hint is not None
    assert "service_provider and tower_access" in error.hint


def test_wrong_accounts_url_path_is_not_found(issuer: StandInIssuer) -> None:
    error = fetch_error(issuer, accounts_url=issuer.url + "/auth")
    assert type(error) is NotFoundError
    assert error.status == 404
    assert error.hint is not None
    assert URL in error.hint


# -- bodies as various Keycloak versions and proxies send them ---------------------------


@pytest.mark.parametrize(
    ("fault", "expected", "hint", "code"),
    [
        (Fault.error(400, "invalid_client", "Invalid client credentials"),
         InvalidClientError, CREDENTIALS, "invalid_client"),
        (Fault.error(401, "unauthorized_client", "Invalid client secret"),
         UnauthorizedClientError, CREDENTIALS, "unauthorized_client"),
        (Fault.error(400, "unauthorized_client", "Client not enabled to retrieve service account"),
         UnauthorizedClientError, CREDENTIALS, "unauthorized_client"),
        (Fault(status=401, body=""), InvalidClientError, CREDENTIALS, None),
        (Fault.html(401), InvalidClientError, CREDENTIALS, None),
        (Fault.error(403, "access_denied", "Client is disabled"),
         UnauthorizedClientError, CREDENTIALS, "access_denied"),
        (Fault.error(400, "invalid_scope", "Invalid scopes: x"),
         InvalidScopeError, "service_provider", "invalid_scope"),
        (Fault.error(400, "invalid_grant", "Token is not active"),
         InvalidGrantError, "refresh token", "invalid_grant"),
        (Fault(status=404, body='{"error":"Realm does not exist"}'),
         NotFoundError, URL, "Realm does not exist"),
        (Fault.html(404), NotFoundError, URL, None),
        (Fault.error(429, "too_many_requests", "slow down"),
         IssuerUnavailableError, "try again", "too_many_requests"),
        (Fault.html(502), IssuerUnavailableError, "try again", None),
        (Fault.error(500, "unknown_error", "boom"), IssuerUnavailableError, "try again",
         "unknown_error"),
        (Fault(status=400, body="<html><body>Bad Request</body></html>"),
         MalformedResponseError, None, None),
        (Fault(status=400, body='{"error": "invalid_cli'), MalformedResponseError, None, None),
        (Fault(status=400, body='["invalid_client"]'), MalformedResponseError, None, None),
        (Fault(status=400, body='{"error": "invalid_client"}', truncate=True),
         MalformedResponseError, None, None),
    ],
    ids=[
        "400-invalid_client",
        "401-unauthorized_client-legacy",
        "400-unauthorized_client",
        "401-empty",
        "401-html",
        "403-access_denied",
        "400-invalid_scope",
        "400-invalid_grant",
        "404-realm",
        "404-html",
        "429-json",
        "502-html",
        "500-json",
        "400-html",
        "400-invalid-json",
        "400-json-array",
        "400-truncated",
    ],
)  # fmt: skip
def test_error_bodies_map_to_typed_errors(
    issuer: StandInIssuer,
    fault: Fault,
    expected: type[IssuerError],
    hint: str | None,
    code: str | None,
) -> None:
    issuer.inject(fault)
    error = fetch_error(issuer)
    assert type(error) is expected
    assert error.status == fault.status
    assert error.error_code == code
    if hint is None:
        assert error.hint is None
    else:
        assert error.hint is not None
        assert hint in error.hint


def test_non_json_error_bodies_are_said_to_be_so(issuer: StandInIssuer) -> None:
    issuer.inject(Fault.html(401))
    assert "the body was HTML (text/html)" in str(fetch_error(issuer))
    issuer.inject(Fault(status=401, body="nope", headers={"Content-Type": "text/plain"}))
    assert "the body was not JSON (text/plain)" in str(fetch_error(issuer))


def test_other_oauth_errors_are_plain_issuer_errors_naming_the_code(
    issuer: StandInIssuer,
) -> None:
    issuer.inject(Fault.error(400, "unsupported_grant_type", "Unsupported grant_type"))
    error = fetch_error(issuer)
    assert type(error) is IssuerError
    assert error.error_code == "unsupported_grant_type"
    assert "HTTP 400 unsupported_grant_type: Unsupported grant_type" in str(error)


def test_error_description_is_shortened_and_kept_on_one_line(issuer: StandInIssuer) -> None:
    issuer.inject(Fault.error(400, "invalid_request", "x" * 1000 + "\nFAKE LOG LINE\r\x1b[2J"))
    error = fetch_error(issuer)
    text = str(error)
    assert "x" * 199 in text
    assert "x" * 200 not in text
    assert "\n" not in text
    assert "\r" not in text
    assert "\x1b" not in text
    assert len(text) < 600


def test_error_description_echoing_the_secret_is_scrubbed(issuer: StandInIssuer) -> None:
    issuer.inject(Fault.error(401, "invalid_client", f"secret {SECRET} does not match"))
    error = fetch_error(issuer)
    assert SECRET not in str(error)
    assert "*** does not match" in str(error)


def test_error_messages_name_the_environment_scope_and_url(issuer: StandInIssuer) -> None:
    error = fetch_error(issuer, secret="nope")
    text = str(error)
    assert "sandbox token request (client_credentials, scope 'service_provider')" in text
    assert issuer.token_url in text


def test_transport_failures_are_issuer_unavailable(issuer: StandInIssuer) -> None:
    issuer.stop()
    error = fetch_error(issuer)
    assert type(error) is IssuerUnavailableError
    assert error.status is None
    assert isinstance(error, HarborSecretsError)


def test_tls_failures_are_not_retried(issuer: StandInIssuer) -> None:
    # https:// to a plain-HTTP port fails the handshake: a configuration problem, not an outage.
    environment = Environment("sandbox", issuer.url.replace("http://", "https://"), issuer.url)
    slept: list[float] = []
    client = TokenClient(
        environment,
        ClientCredentials(CLIENT_ID, Secret(SECRET)),
        sleep=slept.append,
        clock=time.monotonic,
    )
    with client, pytest.raises(IssuerError) as caught:
        client.fetch(SCOPE)
    assert type(caught.value) is IssuerError
    assert "TLS handshake failed" in str(caught.value)
    assert client.requests_sent == 1
    assert slept == []


@pytest.mark.parametrize(
    ("value", "said"),
    [(True, "expires_in is true,"), ([300], "a JSON array"), ({"s": 300}, "a JSON object")],
)
def test_an_odd_expires_in_is_described_in_jsons_words_not_pythons(
    issuer: StandInIssuer, value: object, said: str
) -> None:
    issuer.inject(Fault.token(expires_in=value))
    message = str(fetch_error(issuer))
    assert said in message
    assert "True" not in message
    assert "list" not in message
    assert "dict" not in message
