"""Sink options: validation offline, region/profile/endpoint from the usual sources."""

from __future__ import annotations

from typing import Any

import pytest
from harbor_secrets_aws import ParameterStoreProvider, SecretsManagerProvider
from harbor_secrets_aws.clients import AwsSettings

from harbor_secrets import ConfigError
from harbor_secrets.testing import sink_from_options

PROVIDERS = [SecretsManagerProvider, ParameterStoreProvider]
ENV = {"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:1"}


def build(cls: Any, table: dict[str, Any], environ: dict[str, str] | None = None) -> Any:
    """The provider as the core builds it from ``[sinks.aws]``."""
    environ = ENV if environ is None else environ
    return sink_from_options(cls, table, environ=environ, name="aws", source="harbor.toml").provider


@pytest.mark.parametrize("cls", PROVIDERS)
def test_environment_supplies_region_and_endpoint(cls: Any) -> None:
    provider = build(cls, {})
    assert provider.settings == AwsSettings(region="eu-west-1", endpoint_url="http://127.0.0.1:1")


@pytest.mark.parametrize("cls", PROVIDERS)
def test_options_override_the_environment(cls: Any) -> None:
    provider = build(
        cls,
        {"region": "us-west-2", "endpoint_url": "https://vpce.example", "name": "x/{scope}"},
        {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_PROFILE": "ops"},
    )
    assert provider.settings == AwsSettings("us-west-2", "ops", "https://vpce.example")


@pytest.mark.parametrize("cls", PROVIDERS)
def test_default_region_variable_is_used(cls: Any) -> None:
    assert build(cls, {}, {"AWS_DEFAULT_REGION": "ap-south-1"}).settings.region == "ap-south-1"


@pytest.mark.parametrize("cls", PROVIDERS)
def test_no_region_anywhere_is_a_config_error(
    cls: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(ConfigError) as error:
        build(cls, {}, {})
    assert error.value.key == "sinks.aws.region"
    assert "AWS_REGION" in str(error.value)


@pytest.mark.parametrize("cls", PROVIDERS)
@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"regoin": "eu-west-1"}, "sinks.aws.regoin"),
        ({"adopt": "yes"}, "sinks.aws.adopt"),
        ({"tags": {"managed-by": "me"}}, "sinks.aws.tags"),
        ({"tags": {"team": 1}}, "sinks.aws.tags"),
        ({"endpoint_url": "localhost:4566"}, "sinks.aws.endpoint_url"),
    ],
)
def test_bad_options_name_the_key(cls: Any, table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        build(cls, table)
    assert error.value.key == key


def test_ssm_only_options() -> None:
    provider = build(ParameterStoreProvider, {"allow_advanced_tier": True, "lock_wait": "2s"})
    assert provider.allow_advanced_tier is True
    assert provider.lock_wait == 2.0
    with pytest.raises(ConfigError):
        build(SecretsManagerProvider, {"allow_advanced_tier": True})


@pytest.mark.parametrize("cls", PROVIDERS)
def test_describe_names_where_it_writes(cls: Any) -> None:
    provider = build(cls, {"kms_key_id": "alias/harbor", "tags": {"team": "platform"}})
    description = provider.describe()
    assert description["provider"] == cls.name
    assert description["region"] == "eu-west-1"
    assert description["kms_key_id"] == "alias/harbor"
    assert description["tags"] == {"managed-by": "harbor-secrets", "team": "platform"}
    assert "eu-west-1" in repr(provider)


@pytest.mark.parametrize("cls", PROVIDERS)
@pytest.mark.parametrize("option", ["aws_secret_access_key", "aws_session_token"])
def test_credentials_are_not_options_and_are_never_echoed(cls: Any, option: str) -> None:
    """No option takes a secret (credentials come from boto3's chain); one pasted in by
    mistake is refused by its name alone."""
    canary = "canary-aws-secret-7f3a0c"
    with pytest.raises(ConfigError) as error:
        build(cls, {option: canary})
    assert error.value.key == f"sinks.aws.{option}"
    assert canary not in str(error.value)
    assert canary not in repr(error.value)
