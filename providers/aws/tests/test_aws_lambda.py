"""The Lambda handler, invoked with EventBridge-shaped events against moto_server and the
stand-in issuer: it writes both scopes, skips stale events, and raises when a run fails."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from harbor_secrets_aws import lambda_handler
from harbor_secrets_aws.clients import shared_clients

from harbor_secrets import ConfigError, TokenRecord, format_time
from harbor_secrets.stand_in_issuer import StandInIssuer

CLIENT_ID = "lambda-client"
CLIENT_SECRET = "canary-lambda-secret-5e8c21"


def scheduled_event(at: datetime) -> dict[str, Any]:
    """What EventBridge delivers for a schedule (and what the Terraform module's input mimics)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": format_time(at),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/harbor-secrets"],
        "detail": {},
    }


@pytest.fixture
def issuer() -> Iterator[StandInIssuer]:
    with StandInIssuer(clients={CLIENT_ID: CLIENT_SECRET}, token_lifetime=300) as server:
        yield server


@pytest.fixture
def fresh_shared_clients() -> Iterator[None]:
    """Providers built by the engine use the process-wide cache; start and end it empty."""
    shared_clients().reset()
    yield
    shared_clients().reset()


@pytest.fixture
def lambda_env(
    aws_env: dict[str, str],
    issuer: StandInIssuer,
    sm_client: Any,
    unique: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    fresh_shared_clients: None,
) -> dict[str, str]:
    """A function's environment: client secret in Secrets Manager, tokens to Parameter Store."""
    secret_name = unique("harbor/client-")
    sm_client.create_secret(Name=secret_name, SecretString=json.dumps({"secret": CLIENT_SECRET}))
    prefix = unique("/lambda-")
    env = {
        "HARBOR_SANDBOX_ACCOUNTS_URL": issuer.url,
        "HARBOR_SANDBOX_API_URL": issuer.url,
        "HARBOR_TEST_SECRET_NAME": secret_name,
        "HARBOR_TEST_PREFIX": prefix,
        lambda_handler.INLINE_ENV_VAR: f"""
[credentials.main]
client_id = "{CLIENT_ID}"
client_secret = "aws-sm:{secret_name}#secret"

[sinks.params]
provider = "aws-ssm"
name = "{prefix}/{{environment}}/{{scope}}"

[[targets]]
environments = ["sandbox"]
scopes = ["service_provider", "tower_access"]
sinks = ["params"]
""",
    }
    monkeypatch.delenv(lambda_handler.MAX_AGE_ENV_VAR, raising=False)
    monkeypatch.delenv("HARBOR_SECRETS_CONFIG", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return {**aws_env, **env}


def parameter(ssm_client: Any, name: str) -> TokenRecord | None:
    try:
        response = ssm_client.get_parameter(Name=name, WithDecryption=True)
    except ssm_client.exceptions.ParameterNotFound:
        return None
    return TokenRecord.from_json(response["Parameter"]["Value"])


def test_scheduled_event_writes_both_scopes(
    lambda_env: dict[str, str], issuer: StandInIssuer, ssm_client: Any
) -> None:
    summary = lambda_handler.handler(scheduled_event(datetime.now(UTC)), None)
    assert summary["ok"] is True
    assert summary["counts"]["written"] == 2
    json.dumps(summary)  # the return value must be JSON for Lambda
    prefix = lambda_env["HARBOR_TEST_PREFIX"]
    for scope in ("service_provider", "tower_access"):
        stored = parameter(ssm_client, f"{prefix}/sandbox/{scope}")
        assert stored is not None
        assert stored.scope == scope
        assert stored.access_token.reveal() in issuer.issued
    assert issuer.token_requests == 2
    # The next tick finds both fresh and asks the issuer for nothing.
    again = lambda_handler.handler(scheduled_event(datetime.now(UTC)), None)
    assert again["counts"]["fresh"] == 2
    assert issuer.token_requests == 2


def test_stale_event_is_ignored(
    lambda_env: dict[str, str], issuer: StandInIssuer, ssm_client: Any
) -> None:
    late = scheduled_event(datetime.now(UTC) - timedelta(minutes=5))
    summary = lambda_handler.handler(late, None)
    assert summary["skipped"] is True
    assert summary["reason"] == "stale-event"
    assert summary["event_age_seconds"] > 290
    assert issuer.token_requests == 0
    prefix = lambda_env["HARBOR_TEST_PREFIX"]
    assert parameter(ssm_client, f"{prefix}/sandbox/tower_access") is None


def test_max_event_age_is_configurable(
    lambda_env: dict[str, str], issuer: StandInIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(lambda_handler.MAX_AGE_ENV_VAR, "600")
    summary = lambda_handler.handler(scheduled_event(datetime.now(UTC) - timedelta(minutes=5)))
    assert summary["counts"]["written"] == 2
    monkeypatch.setenv(lambda_handler.MAX_AGE_ENV_VAR, "soon")
    with pytest.raises(ConfigError):
        lambda_handler.handler(scheduled_event(datetime.now(UTC)))


def test_event_without_time_runs(lambda_env: dict[str, str], issuer: StandInIssuer) -> None:
    """A manual test invocation ({} from the console) runs like a scheduled one."""
    assert lambda_handler.handler({}, None)["counts"]["written"] == 2


def test_failed_run_raises_and_writes_nothing(
    lambda_env: dict[str, str],
    issuer: StandInIssuer,
    sm_client: Any,
    ssm_client: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sm_client.put_secret_value(
        SecretId=lambda_env["HARBOR_TEST_SECRET_NAME"],
        SecretString=json.dumps({"secret": "canary-wrong-secret-77"}),
    )
    with pytest.raises(lambda_handler.SyncFailedError) as error:
        lambda_handler.handler(scheduled_event(datetime.now(UTC)), None)
    assert "main/sandbox/service_provider" in str(error.value)
    assert error.value.summary["exit_code"] == 1
    prefix = lambda_env["HARBOR_TEST_PREFIX"]
    assert parameter(ssm_client, f"{prefix}/sandbox/service_provider") is None
    output = capsys.readouterr()
    for text in (str(error.value), json.dumps(error.value.summary), output.out, output.err):
        assert "canary-wrong-secret-77" not in text
        assert CLIENT_SECRET not in text


def test_failing_sink_does_not_stop_the_others(
    lambda_env: dict[str, str],
    issuer: StandInIssuer,
    sm_client: Any,
    ssm_client: Any,
    unique: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Secrets Manager secret someone else owns fails; Parameter Store still gets both."""
    foreign = unique("theirs-")
    for scope in ("service_provider", "tower_access"):
        sm_client.create_secret(Name=f"{foreign}/{scope}", SecretString="not ours")
    config = lambda_env[lambda_handler.INLINE_ENV_VAR]
    config = (
        config.replace('sinks = ["params"]', 'sinks = ["params", "secrets"]')
        + f'\n[sinks.secrets]\nprovider = "aws-secretsmanager"\nname = "{foreign}/{{scope}}"\n'
    )
    monkeypatch.setenv(lambda_handler.INLINE_ENV_VAR, config)
    with pytest.raises(lambda_handler.SyncFailedError) as error:
        lambda_handler.handler(scheduled_event(datetime.now(UTC)), None)
    summary = error.value.summary
    assert summary["counts"]["written"] == 2
    assert summary["counts"]["failed"] == 2
    reasons = {
        sink["reason"]
        for job in summary["jobs"]
        for sink in job["sinks"]
        if sink["sink"] == "secrets"
    }
    assert reasons == {"not-managed"}
    assert any("aws-ssm" in warning for warning in summary["warnings"])
    prefix = lambda_env["HARBOR_TEST_PREFIX"]
    assert parameter(ssm_client, f"{prefix}/sandbox/tower_access") is not None
    value = sm_client.get_secret_value(SecretId=f"{foreign}/tower_access")["SecretString"]
    assert value == "not ours"


def test_configuration_sources(tmp_path: Path) -> None:
    text = '[credentials.main]\nclient_id = "x"\nclient_secret = "env:S"\n[sinks.a]\n'
    text += 'provider = "aws-ssm"\nregion = "us-east-1"\n[[targets]]\nenvironments = ["sandbox"]\n'
    packaged = tmp_path / "config.toml"
    packaged.write_text(text)
    config = lambda_handler.load_lambda_config({"LAMBDA_TASK_ROOT": str(tmp_path)})
    assert config.source == str(packaged)
    other = tmp_path / "other.toml"
    other.write_text(text)
    assert lambda_handler.load_lambda_config({"HARBOR_SECRETS_CONFIG": str(other)}).source == str(
        other
    )
    inline = lambda_handler.load_lambda_config({lambda_handler.INLINE_ENV_VAR: text})
    assert inline.source == "<inline configuration>"
    with pytest.raises(ConfigError, match="both"):
        lambda_handler.load_lambda_config(
            {lambda_handler.INLINE_ENV_VAR: text, "HARBOR_SECRETS_CONFIG": str(other)}
        )
    with pytest.raises(ConfigError, match="no configuration"):
        lambda_handler.load_lambda_config({"LAMBDA_TASK_ROOT": str(tmp_path / "empty")})


def test_clients_live_at_module_scope() -> None:
    assert lambda_handler.CLIENTS is shared_clients()
