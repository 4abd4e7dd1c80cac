"""The token client against the real stand-in issuer over loopback HTTP.

Request shape, both client authentication methods, success validation, the refresh grant,
the test-token endpoint and the no-secret-ever-printed canary. Retries live in
test_token_client_retry.py, error mapping in test_token_client_errors.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from harbor_secrets.environments import Environment
from harbor_secrets.errors import (
    ConfigError,
    HarborSecretsError,
    InvalidGrantError,
    InvalidScopeError,
    MalformedResponseError,
)
from harbor_secrets.secrets import Secret
from harbor_secrets.stand_in_issuer import OMIT, Fault, StandInIssuer
from harbor_secrets.token_client import (
    ClientCredentials,
    IssuedToken,
    RetryPolicy,
    TokenClient,
)
from harbor_testkit.clock import FakeTime

CLIENT_ID = "svc-client"
SECRET = "canary-secret-5b0e7f21"
SCOPE = "service_provider"


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

    def make(
        *,
        method: str = "client_secret_post",
        client_id: str = CLIENT_ID,
        secret: str = SECRET,
        retry: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> TokenClient:
        client = TokenClient(
            Environment("sandbox", issuer.url, issuer.url),
            ClientCredentials(client_id, Secret(secret), method),
            retry=retry or RetryPolicy(connect_timeout=2, read_timeout=2),
            sleep=fake_time.sleep,
            clock=fake_time.clock,
            **kwargs,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def test_fetch_sends_harbors_documented_form_with_client_secret_post(
    issuer: StandInIssuer, make_client: MakeClient
) -> None:
    client = make_client()
    before = datetime.now(UTC)
    token = client.fetch(SCOPE)
    after = datetime.now(UTC)

    [request] = issuer.requests
    assert request.method == "POST"
    assert request.path == "/realms/harbor/protocol/openid-connect/token"
    assert request.grant_type == "client_credentials"
    assert request.scope == SCOPE
    assert request.client_id == CLIENT_ID
    assert request.auth_method == "client_secret_post"
    assert request.content_type == "application/x-www-form-urlencoded"
    assert request.accept == "application/json"
    assert request.user_agent is not None
    assert request.user_agent.startswith("harbor-secrets/")

    assert token.access_token.reveal() in issuer.issued
    assert token.token_type == "Bearer"
    assert token.expires_in == 300
    assert token.granted_scope == "service_provider profile email"
    assert token.refresh_token is None
    assert token.attempts == 1
    assert before <= token.issued_at <= after
    assert token.issued_at.tzinfo is UTC
    assert client.requests_sent == 1


def test_client_secret_basic_form_encodes_id_and_secret_before_base64(
    issuer: StandInIssuer, make_client: MakeClient
) -> None:
    # ':' in the id and '+', '%', '&', '=', ' ' and non-ASCII in the secret only survive
    # RFC 6749 §2.3.1's encoding; the stand-in decodes as Keycloak does.
    issuer.add_client("id:with colon ü", "s3cr:t/+&=% ü")
    client = make_client(
        method="client_secret_basic", client_id="id:with colon ü", secret="s3cr:t/+&=% ü"
    )
    token = client.fetch("tower_access")
    assert token.access_token.reveal() in issuer.issued
    [request] = issuer.requests
    assert request.auth_method == "client_secret_basic"
    assert request.client_id == "id:with colon ü"
    assert request.grant_type == "client_credentials"
    assert request.scope == "tower_access"


def test_client_secret_post_handles_punctuation_in_the_secret(
    issuer: StandInIssuer, make_client: MakeClient
) -> None:
    issuer.add_client("odd", "a&b=c+d %e ü")
    token = make_client(client_id="odd", secret="a&b=c+d %e ü").fetch(SCOPE)
    assert token.access_token.reveal() in issuer.issued


def test_credentials_are_validated() -> None:
    with pytest.raises(ConfigError, match="client_secret_jwt"):
        ClientCredentials("id", Secret("validation-only-1"), "client_secret_jwt")
    with pytest.raises(ConfigError, match="empty"):
        ClientCredentials("", Secret("validation-only-2"))


# -- success validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(300, 300), ("300", 300), (" 120 ", 120), (299.9, 299), ("59.5", 59), (86_400, 86_400)],
)
def test_expires_in_accepts_positive_numbers_and_numeric_strings(
    issuer: StandInIssuer, make_client: MakeClient, value: object, expected: int
) -> None:
    issuer.inject(Fault.token(expires_in=value))
    assert make_client().fetch(SCOPE).expires_in == expected


def test_missing_expires_in_uses_the_default_and_warns(
    issuer: StandInIssuer, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    issuer.inject(Fault.token(expires_in=OMIT), Fault.token(expires_in=None))
    client = make_client(default_expires_in=240)
    with caplog.at_level(logging.WARNING, logger="harbor_secrets.token_client"):
        assert client.fetch(SCOPE).expires_in == 240
        assert client.fetch(SCOPE).expires_in == 240
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "no expires_in" in warnings[0].getMessage()
    assert "240" in warnings[0].getMessage()


@pytest.mark.parametrize(
    "value",
    [0, -5, "0", "-1", 86_401, 1_767_225_600, "soon", "", True, [300], {"s": 1}, "1e999", 0.4],
)
def test_unusable_expires_in_is_malformed(
    issuer: StandInIssuer, make_client: MakeClient, value: object
) -> None:
    issuer.inject(Fault.token(expires_in=value))
    with pytest.raises(MalformedResponseError, match="expires_in"):
        make_client().fetch(SCOPE)


@pytest.mark.parametrize("value", ["", "   ", None, 123, OMIT])
def test_missing_or_empty_access_token_is_malformed(
    issuer: StandInIssuer, make_client: MakeClient, value: object
) -> None:
    issuer.inject(Fault.token(access_token=value))
    with pytest.raises(MalformedResponseError, match="access_token"):
        make_client().fetch(SCOPE)


@pytest.mark.parametrize("value", ["mac", "", None, OMIT, 1, "Bearer2"])
def test_token_type_other_than_bearer_is_malformed(
    issuer: StandInIssuer, make_client: MakeClient, value: object
) -> None:
    issuer.inject(Fault.token(token_type=value))
    with pytest.raises(MalformedResponseError, match="token_type"):
        make_client().fetch(SCOPE)


@pytest.mark.parametrize("value", ["BEARER", "bearer", "Bearer"])
def test_token_type_bearer_in_any_case(
    issuer: StandInIssuer, make_client: MakeClient, value: str
) -> None:
    issuer.inject(Fault.token(token_type=value))
    assert make_client().fetch(SCOPE).token_type == value


@pytest.mark.parametrize("granted", ["profile email", "tower_access", "service_provider_x"])
def test_granted_scope_lacking_the_requested_one_is_invalid_scope(
    issuer: StandInIssuer, make_client: MakeClient, granted: str
) -> None:
    issuer.inject(Fault.token(scope=granted))
    with pytest.raises(InvalidScopeError, match="lacks the requested 'service_provider'"):
        make_client().fetch(SCOPE)


@pytest.mark.parametrize("granted", [OMIT, None, "email service_provider profile"])
def test_absent_or_wider_scope_is_fine(
    issuer: StandInIssuer, make_client: MakeClient, granted: object
) -> None:
    issuer.inject(Fault.token(scope=granted))
    token = make_client().fetch(SCOPE)
    assert token.granted_scope == (None if granted in (OMIT, None) else granted)


def test_unknown_fields_are_ignored_and_empty_refresh_token_is_absent(
    issuer: StandInIssuer, make_client: MakeClient
) -> None:
    issuer.inject(
        Fault.token(
            refresh_token="",
            id_token="header.payload.sig",
            session_state={"nested": [1, 2]},
            **{"not-before-policy": "later"},
        )
    )
    token = make_client().fetch(SCOPE)
    assert token.refresh_token is None
    assert token.expires_in == 300


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=200, body="<html><body>Welcome</body></html>"),
        Fault(status=200, body='{"access_token": "abc", "expires_in": 3'),
        Fault(status=200, body='["not", "an", "object"]'),
        Fault(status=200, body=b"\xff\xfe{}"),
        Fault(status=200, body=""),
        Fault(status=200, body='{"error": "invalid_client"}'),
        Fault.truncated(),
    ],
    ids=["html", "invalid-json", "array", "not-utf8", "empty", "error-as-200", "truncated"],
)
def test_unparseable_success_bodies_are_malformed_and_not_retried(
    issuer: StandInIssuer, make_client: MakeClient, fault: Fault
) -> None:
    issuer.inject(fault)
    client = make_client()
    with pytest.raises(MalformedResponseError):
        client.fetch(SCOPE)
    assert client.requests_sent == 1


def test_a_huge_body_is_reported_as_too_large_not_as_cut_short(
    issuer: StandInIssuer, make_client: MakeClient
) -> None:
    """The client stops reading at its own limit: the message must say so, not blame the
    connection."""
    issuer.inject(Fault(status=200, body=b"x" * (10 * 1024 * 1024)))
    client = make_client()
    with pytest.raises(MalformedResponseError) as caught:
        client.fetch(SCOPE)
    message = str(caught.value)
    assert "larger than 1 MiB" in message
    assert "stopped reading" in message
    assert "cut short" not in message
    assert client.requests_sent == 1


def test_a_body_the_connection_cut_short_still_says_so(
    issuer: StandInIssuer, make_client: MakeClient
) -> None:
    issuer.inject(Fault.truncated())
    with pytest.raises(MalformedResponseError, match="cut short"):
        make_client().fetch(SCOPE)


# -- refresh grant ----------------------------------------------------------------------


@pytest.fixture
def refreshing_issuer() -> Iterator[StandInIssuer]:
    with StandInIssuer({CLIENT_ID: SECRET}, issue_refresh_tokens=True) as running:
        yield running


def _client_for(issuer: StandInIssuer, fake_time: FakeTime) -> TokenClient:
    return TokenClient(
        Environment("sandbox", issuer.url, issuer.url),
        ClientCredentials(CLIENT_ID, Secret(SECRET)),
        sleep=fake_time.sleep,
        clock=fake_time.clock,
    )


def test_fetch_uses_a_held_refresh_token_first(
    refreshing_issuer: StandInIssuer, fake_time: FakeTime
) -> None:
    with _client_for(refreshing_issuer, fake_time) as client:
        first = client.fetch(SCOPE)
        assert first.refresh_token is not None
        second = client.fetch(SCOPE)
        other_scope = client.fetch("tower_access")
    grants = [(r.grant_type, r.scope) for r in refreshing_issuer.requests]
    assert grants == [
        ("client_credentials", SCOPE),
        ("refresh_token", None),  # Harbor's documented refresh form carries no scope
        ("client_credentials", "tower_access"),
    ]
    assert second.access_token != first.access_token
    assert second.access_token.reveal() in refreshing_issuer.issued
    assert other_scope.granted_scope is not None
    assert "tower_access" in other_scope.granted_scope


def test_rejected_refresh_token_falls_back_to_client_credentials(
    refreshing_issuer: StandInIssuer, fake_time: FakeTime
) -> None:
    with _client_for(refreshing_issuer, fake_time) as client:
        client.fetch(SCOPE)
        refreshing_issuer.revoke_refresh_tokens()
        token = client.fetch(SCOPE)
        assert client.requests_sent == 3
    assert [r.grant_type for r in refreshing_issuer.requests] == [
        "client_credentials",
        "refresh_token",
        "client_credentials",
    ]
    assert token.access_token.reveal() in refreshing_issuer.issued


def test_expired_refresh_token_is_not_used(fake_time: FakeTime) -> None:
    with StandInIssuer(
        {CLIENT_ID: SECRET}, issue_refresh_tokens=True, refresh_lifetime=60
    ) as issuer:
        with _client_for(issuer, fake_time) as client:
            client.fetch(SCOPE)
            fake_time.offset += 61
            client.fetch(SCOPE)
        assert [r.grant_type for r in issuer.requests] == ["client_credentials"] * 2


def test_refresh_with_a_bad_token_raises_invalid_grant(
    refreshing_issuer: StandInIssuer, fake_time: FakeTime
) -> None:
    client = _client_for(refreshing_issuer, fake_time)
    with client, pytest.raises(InvalidGrantError) as caught:
        client.refresh(Secret("not-a-refresh-token"), SCOPE)
    assert caught.value.status == 400
    assert caught.value.hint is not None
    assert "client_credentials" in caught.value.hint


def test_refresh_tokens_are_forgotten_on_close(
    refreshing_issuer: StandInIssuer, fake_time: FakeTime
) -> None:
    client = _client_for(refreshing_issuer, fake_time)
    client.fetch(SCOPE)
    client.close()
    client.fetch(SCOPE)  # a closed client's own session reopens; nothing is remembered
    assert [r.grant_type for r in refreshing_issuer.requests] == ["client_credentials"] * 2


# -- test-token endpoint ----------------------------------------------------------------


def test_test_token_accepts_an_issued_token(issuer: StandInIssuer, make_client: MakeClient) -> None:
    client = make_client()
    token = client.fetch(SCOPE)
    result = client.test_token(token.access_token)
    assert result.ok
    assert result.status == 200
    assert issuer.test_token_requests == 1
    assert client.requests_sent == 2
    assert issuer.requests[-1].accept == "application/json"


def test_test_token_401_carries_harbors_guidance(
    issuer: StandInIssuer, make_client: MakeClient
) -> None:
    result = make_client().test_token(Secret("some-other-token"))
    assert not result.ok
    assert result.status == 401
    assert "check your credentials and environment" in result.message


def test_test_token_404_carries_harbors_guidance(issuer: StandInIssuer) -> None:
    environment = Environment("sandbox", issuer.url, issuer.url + "/wrong-prefix")
    with TokenClient(environment, ClientCredentials(CLIENT_ID, Secret(SECRET))) as client:
        result = client.test_token(Secret("whatever-token"))
    assert (result.ok, result.status) == (False, 404)
    assert "check the API URL" in result.message


# -- never printed ----------------------------------------------------------------------


def test_canary_secret_and_tokens_never_appear_in_errors_reprs_or_debug_logs(
    fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    canary = "canary-secret-9c2d4e71"
    texts: list[str] = []
    tokens: list[IssuedToken] = []

    def keep(exc: HarborSecretsError) -> None:
        texts.extend([str(exc), repr(exc), exc.message, exc.hint or ""])

    caplog.set_level(logging.DEBUG)  # every logger, urllib3 included
    with StandInIssuer({"canary-client": canary}, issue_refresh_tokens=True) as issuer:
        for method in ("client_secret_post", "client_secret_basic"):
            environment = Environment("sandbox", issuer.url, issuer.url)
            credentials = ClientCredentials("canary-client", Secret(canary), method)
            with TokenClient(
                environment,
                credentials,
                retry=RetryPolicy(read_timeout=2, max_attempts=3),
                sleep=fake_time.sleep,
                clock=fake_time.clock,
            ) as client:
                texts.extend([repr(client), repr(credentials)])
                # Successes: client credentials, then the refresh grant, after a retry.
                issuer.inject(Fault.connection_reset())
                tokens.append(client.fetch(SCOPE))
                tokens.append(client.fetch(SCOPE))
                texts.append(repr(tokens[-1]))
                texts.append(client.test_token(tokens[-1].access_token).message)
                last = tokens[-1].access_token.reveal()
                refresh = tokens[-1].refresh_token
                assert refresh is not None
                # Failures, including an issuer that echoes what it was sent.
                issuer.inject(
                    Fault.error(400, "invalid_request", f"bad client_secret={canary} t={last}"),
                    Fault.error(400, "invalid_grant", f"refresh {refresh.reveal()} is dead"),
                    Fault.token(token_type=f"mac {last}"),
                    Fault(status=200, body=f'{{"access_token": "{canary}", "expires_'),
                    Fault.retry_after(503, 1),
                    Fault.retry_after(503, 1),
                    Fault.retry_after(503, 1),
                )
                for _ in range(4):  # the refresh grant consumes the first two faults
                    with pytest.raises(HarborSecretsError) as caught:
                        client.fetch(SCOPE)
                    keep(caught.value)
        with TokenClient(
            Environment("sandbox", issuer.url, issuer.url),
            ClientCredentials("canary-client", Secret(canary + "-wrong")),
        ) as wrong:
            with pytest.raises(HarborSecretsError) as caught:
                wrong.fetch(SCOPE)
            keep(caught.value)
        issued = issuer.issued

    secrets = [canary, canary + "-wrong", *issued]
    for token in tokens:
        secrets.append(token.access_token.reveal())
        if token.refresh_token is not None:
            secrets.append(token.refresh_token.reveal())
    everything = "\n".join([*texts, caplog.text])
    assert "POST" in caplog.text  # the debug logs were captured
    for value in secrets:
        assert value not in everything
