"""aws-sm: and ssm: secret references, resolved against moto_server and through the config."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from harbor_secrets_aws import ParameterStoreProvider, SecretsManagerProvider
from harbor_secrets_aws.clients import AwsSettings, ClientCache, shared_clients
from harbor_secrets_aws.references import parse_secretsmanager_reference

from harbor_secrets import SecretReferenceError, load_config, run_sync
from harbor_secrets.stand_in_issuer import StandInIssuer

CANARY = "canary-client-secret-4b1d9e"


@pytest.fixture
def sm(aws_settings: AwsSettings, aws_clients: ClientCache) -> SecretsManagerProvider:
    return SecretsManagerProvider(settings=aws_settings, clients=aws_clients)


@pytest.fixture
def ssm(aws_settings: AwsSettings, aws_clients: ClientCache) -> ParameterStoreProvider:
    return ParameterStoreProvider(settings=aws_settings, clients=aws_clients)


def test_parse_reference() -> None:
    assert parse_secretsmanager_reference("aws-sm:harbor/client") == ("harbor/client", None)
    assert parse_secretsmanager_reference("aws-sm:harbor/client#secret") == (
        "harbor/client",
        "secret",
    )
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:harbor/client-AbCdEf"
    assert parse_secretsmanager_reference(f"aws-sm:{arn}#k") == (arn, "k")
    for bad in ("aws-sm:", "aws-sm:name#", "aws-sm:#field", "vault:x"):
        with pytest.raises(SecretReferenceError):
            parse_secretsmanager_reference(bad)


def test_plain_string_secret(
    sm: SecretsManagerProvider, sm_client: Any, unique: Callable[[str], str]
) -> None:
    name = unique("harbor/client-")
    sm_client.create_secret(Name=name, SecretString=CANARY)
    assert sm.resolve_reference(f"aws-sm:{name}").reveal() == CANARY
    with pytest.raises(SecretReferenceError, match="plain string") as error:
        sm.resolve_reference(f"aws-sm:{name}#client_secret")
    assert CANARY not in str(error.value)


def test_json_secret_needs_a_field(
    sm: SecretsManagerProvider, sm_client: Any, unique: Callable[[str], str]
) -> None:
    name = unique("harbor/client-")
    arn = sm_client.create_secret(
        Name=name, SecretString=json.dumps({"client_id": "abc", "client_secret": CANARY})
    )["ARN"]
    assert sm.resolve_reference(f"aws-sm:{name}#client_secret").reveal() == CANARY
    assert sm.resolve_reference(f"aws-sm:{arn}#client_secret").reveal() == CANARY
    with pytest.raises(SecretReferenceError, match="JSON object") as no_field:
        sm.resolve_reference(f"aws-sm:{name}")
    assert "client_secret" in str(no_field.value)  # the field names help; values never shown
    with pytest.raises(SecretReferenceError, match="no non-empty string field") as bad_field:
        sm.resolve_reference(f"aws-sm:{name}#password")
    for error in (no_field, bad_field):
        assert CANARY not in str(error.value)


def test_missing_secret_and_parameter(
    sm: SecretsManagerProvider, ssm: ParameterStoreProvider, unique: Callable[[str], str]
) -> None:
    with pytest.raises(SecretReferenceError, match="does not exist"):
        sm.resolve_reference(f"aws-sm:{unique('nope-')}")
    with pytest.raises(SecretReferenceError, match="does not exist"):
        ssm.resolve_reference(f"ssm:/{unique('nope-')}")


def test_parameter_reference(
    ssm: ParameterStoreProvider, ssm_client: Any, unique: Callable[[str], str]
) -> None:
    name = unique("/harbor/client_secret-")
    ssm_client.put_parameter(Name=name, Value=CANARY, Type="SecureString")
    assert ssm.resolve_reference(f"ssm:{name}").reveal() == CANARY


def test_sync_resolves_client_secret_from_secrets_manager(
    sm_client: Any,
    ssm_client: Any,
    unique: Callable[[str], str],
    aws_env: dict[str, str],
) -> None:
    """The Lambda's set-up through the public API: the client secret is an ``aws-sm:``
    reference, the tokens go to SSM; the issuer accepts only the right secret."""
    name = unique("harbor/client-")
    prefix = unique("/refs-")
    sm_client.create_secret(Name=name, SecretString=json.dumps({"client_secret": CANARY}))
    shared_clients().reset()
    try:
        with StandInIssuer(clients={"client-1": CANARY}, token_lifetime=300) as issuer:
            environ = {
                **aws_env,
                "HARBOR_SANDBOX_ACCOUNTS_URL": issuer.url,
                "HARBOR_SANDBOX_API_URL": issuer.url,
            }
            config = load_config(
                text=f"""
[credentials.main]
client_id = "client-1"
client_secret = "aws-sm:{name}#client_secret"

[sinks.params]
provider = "aws-ssm"
name = "{prefix}/{{environment}}/{{scope}}"

[[targets]]
environments = ["sandbox"]
scopes = ["service_provider"]
sinks = ["params"]
""",
                environ=environ,
            )
            report = run_sync(config)
            assert issuer.token_requests == 1
    finally:
        shared_clients().reset()
    summary = json.dumps(report.to_dict())
    assert report.exit_code == 0, summary
    assert CANARY not in summary
    value = ssm_client.get_parameter(Name=f"{prefix}/sandbox/service_provider", WithDecryption=True)
    assert json.loads(value["Parameter"]["Value"])["client_id"] == "client-1"
