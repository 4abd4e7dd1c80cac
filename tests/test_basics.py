"""Small pure pieces: durations, environments, the stored record, secrets and logging."""

from __future__ import annotations

import io
import json
import logging
import pickle
import socket
from datetime import UTC, datetime, timedelta

import pytest

from harbor_secrets import logs
from harbor_secrets.durations import format_duration, parse_duration
from harbor_secrets.environments import environment_for_tower, resolve_environment
from harbor_secrets.errors import ConfigError
from harbor_secrets.record import TokenRecord, parse_time
from harbor_secrets.secrets import Secret, scrub
from harbor_secrets.writer import WRITER_ENV_VAR, writer_name


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (150, 150.0),
        (1.5, 1.5),
        ("150s", 150.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        (" 90 ", 90.0),
        ("500ms", 0.5),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["soon", "-5s", -1, True, None, "5 minutes", [1]])
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_format_duration() -> None:
    assert format_duration(45) == "45s"
    assert format_duration(250) == "4m 10s"
    assert format_duration(-12) == "-12s"
    assert format_duration(7300) == "2h 1m"


@pytest.mark.parametrize(
    ("tower", "environment"),
    [
        ("1000000000000042", "production"),
        ("0100000000000a3f", "sandbox"),
        ("0100000000000A3F", "sandbox"),  # Harbor's SDKs take either case
        (" 10ab00cd00ef0012 ", "production"),
    ],
)
def test_tower_ids(tower: str, environment: str) -> None:
    assert environment_for_tower(tower) == environment


@pytest.mark.parametrize(
    "tower",
    [
        "0100000123",  # digits, but not Harbor's 16-character shape
        "1000000042",
        "",
        "01",
        "0100000000000a3g",  # g is not hexadecimal
        "0100000000000a3f0",  # 17 characters
        "01-0000000000a3f",
    ],
)
def test_a_tower_id_of_another_shape_is_refused_showing_the_shape(tower: str) -> None:
    with pytest.raises(ConfigError) as caught:
        environment_for_tower(tower)
    assert caught.value.exit_code == 2
    assert "16 hexadecimal characters" in str(caught.value)
    assert "0100000000000a3f" in str(caught.value)  # an example of the right shape


@pytest.mark.parametrize("tower", ["2000000000000001", "ab00000000000001", "0000000000000001"])
def test_an_unknown_prefix_names_the_known_ones_and_says_development_has_none(tower: str) -> None:
    with pytest.raises(ConfigError) as caught:
        environment_for_tower(tower)
    message = str(caught.value)
    assert "10 (production)" in message
    assert "01 (sandbox)" in message
    assert "development" in message
    assert "no tower prefix" in message


def test_development_is_one_of_harbors_environments() -> None:
    env = resolve_environment("development", environ={})
    assert env.token_url == (
        "https://accounts.dev.harborlockers.com/realms/harbor/protocol/openid-connect/token"
    )
    assert env.test_token_url == "https://api.dev.harborlockers.com/api/v1/login/test-token"
    override = resolve_environment(
        "development", environ={"HARBOR_DEVELOPMENT_API_URL": "http://127.0.0.1:9"}
    )
    assert override.api_url == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8401", "http://localhost:1", "http://[::1]:80", "https://idp.example.com/"],
)
def test_allowed_urls(url: str) -> None:
    env = resolve_environment("sandbox", {"accounts_url": url}, environ={})
    assert env.accounts_url == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1",
        "http://idp.example.com",
        "ftp://x",
        "https://x/?q=1",
        "x",
        "https://user:pw@idp.example.com",
    ],
)
def test_refused_urls(url: str) -> None:
    with pytest.raises(ConfigError, match=r"environments\.sandbox\.accounts_url"):
        resolve_environment("sandbox", {"accounts_url": url}, environ={})


def test_record_round_trip_and_contract_fields() -> None:
    issued = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    record = TokenRecord.issue(
        access_token="abc.def.ghi",
        issued_at=issued,
        expires_in=300,
        scope="tower_access",
        environment="sandbox",
        client_id="cid",
        issuer="https://idp/token",
    )
    data = json.loads(record.to_json())
    assert data == {
        "access_token": "abc.def.ghi",
        "token_type": "Bearer",
        "scope": "tower_access",
        "environment": "sandbox",
        "expires_at": "2026-01-02T03:09:05Z",
        "issued_at": "2026-01-02T03:04:05Z",
        "expires_in": 300,
        "client_id": "cid",
        "issuer": "https://idp/token",
        "managed_by": "harbor-secrets",
        "schema": 1,
    }
    assert TokenRecord.from_json(record.to_json()) == record
    assert "abc.def.ghi" not in repr(record)
    assert "abc.def.ghi" not in str(record.describe())
    older = TokenRecord.issue(
        access_token="x",
        issued_at=issued - timedelta(seconds=1),
        expires_in=300,
        scope="s",
        environment="e",
        client_id="c",
        issuer="i",
    )
    assert record.is_newer_than(older)
    assert not older.is_newer_than(record)
    assert not record.is_newer_than(record)


def test_record_names_its_writer_only_when_known_and_old_records_read_the_same() -> None:
    """``written_by`` extends schema 1: stored when known, absent (and "") otherwise, so a
    record written before it, or by a writer that does not know it, reads back as it was."""

    def issue(written_by: str = "") -> TokenRecord:
        return TokenRecord.issue(
            access_token="t",
            issued_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            expires_in=300,
            scope="tower_access",
            environment="sandbox",
            client_id="cid",
            issuer="https://idp/token",
            written_by=written_by,
        )

    named = issue("harbor-secrets-7d9f-x2x4z")
    data = json.loads(named.to_json())
    assert data["written_by"] == "harbor-secrets-7d9f-x2x4z"
    assert data["schema"] == 1
    assert TokenRecord.from_json(named.to_json()).written_by == "harbor-secrets-7d9f-x2x4z"
    anonymous = issue()
    assert "written_by" not in anonymous.to_dict()
    old = anonymous.to_json()  # what every store held before written_by existed
    assert TokenRecord.from_json(old).written_by == ""
    assert TokenRecord.from_json(old).to_json() == old
    assert "written_by" not in TokenRecord.from_json(old).extra


@pytest.mark.parametrize(
    "text", ["{}", "[]", '{"access_token": "x"}', '{"access_token": "", "expires_at": "x"}', "nope"]
)
def test_record_rejects_garbage_without_echoing(text: str) -> None:
    with pytest.raises(ValueError, match="stored record") as caught:
        TokenRecord.from_json(text)
    assert "nope" not in str(caught.value)


def test_parse_time_forms() -> None:
    assert parse_time("2026-01-02T03:04:05Z") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_time("2026-01-02T04:04:05+01:00") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_secret_never_prints() -> None:
    secret = Secret("canary-value-123456")
    assert "canary" not in f"{secret} {secret!r} {[secret]}"
    assert secret.reveal() == "canary-value-123456"
    assert scrub("token=canary-value-123456;") == "token=***;"
    with pytest.raises(TypeError):
        pickle.dumps(secret)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_logs_scrub_messages_arguments_extras_and_tracebacks(fmt: str) -> None:
    Secret("canary-log-secret-998877")
    stream = io.StringIO()
    logs.configure(2, fmt, stream)
    log = logging.getLogger("harbor_secrets.test")
    log.debug("value %s", "canary-log-secret-998877", extra={"detail": "canary-log-secret-998877"})
    try:
        raise RuntimeError("boom canary-log-secret-998877")
    except RuntimeError:
        log.exception("failed")
    logging.getLogger("urllib3").debug("canary-log-secret-998877 body")
    output = stream.getvalue()
    assert "canary-log-secret-998877" not in output
    assert "value ***" in output
    assert "boom ***" in output
    assert "body" not in output  # SDK loggers stay at WARNING under -vv
    if fmt == "json":
        first = json.loads(output.splitlines()[0])
        assert first["level"] == "debug"
        assert first["detail"] == "***"
    logs.configure(0, "text")


def test_secret_registry_is_bounded_and_ignores_short_words() -> None:
    from harbor_secrets import secrets

    Secret("secret")  # too short to scrub: would blank out an ordinary word
    assert scrub("a secret word") == "a secret word"
    client_secret = Secret("long-lived-client-secret-123")
    first = "oldest-token-0000000"
    secrets.register(first, ephemeral=True)
    for n in range(secrets._MAX_EPHEMERAL):
        Secret(f"later-token-{n:08d}", ephemeral=True)
    assert len(secrets._ephemeral) == secrets._MAX_EPHEMERAL
    assert scrub(first) == first  # dropped: long expired by now
    assert scrub(f"later-token-{secrets._MAX_EPHEMERAL - 1:08d}") == "***"
    # The client secret never leaves the list, however many tokens a watch process sees.
    assert scrub(f"boom {client_secret.reveal()}") == "boom ***"


def test_the_writer_is_the_host_name_unless_named() -> None:
    assert writer_name({}) == socket.gethostname()
    assert writer_name({WRITER_ENV_VAR: " replica-a "}) == "replica-a"


@pytest.mark.parametrize("value", ["", "   ", "two words", "tab\there", "x" * 254, "bell\a"])
def test_a_bad_writer_name_is_a_usage_error_that_does_not_echo_it(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        writer_name({WRITER_ENV_VAR: value})
    assert caught.value.exit_code == 2
    assert WRITER_ENV_VAR in str(caught.value)
    if value.strip():
        assert value.strip() not in str(caught.value)
