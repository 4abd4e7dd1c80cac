"""aws-secretsmanager against moto_server: ownership, idempotent versions, CAS, failures."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from harbor_secrets_aws import SecretsManagerProvider
from harbor_secrets_aws.clients import AwsSettings, ClientCache
from harbor_secrets_aws.stored import request_token

from harbor_secrets import ConfigError, RefreshPolicy, StoreError, TokenRecord, WriteOutcome
from harbor_secrets.config import Job
from harbor_secrets.testing import sink_from_options

NOW = datetime.now(UTC).replace(microsecond=0)


def record(offset: int = 0, token: str | None = None, environment: str = "sandbox") -> TokenRecord:
    return TokenRecord.issue(
        access_token=token or f"tok-{uuid.uuid4().hex}",
        issued_at=NOW + timedelta(seconds=offset),
        expires_in=300,
        scope="tower_access",
        environment=environment,
        client_id="client-1",
        issuer="http://127.0.0.1:1/realms/harbor/protocol/openid-connect/token",
    )


def current_value(sm_client: Any, name: str) -> str:
    response = sm_client.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")
    return str(response["SecretString"])


def version_count(sm_client: Any, name: str) -> int:
    return len(sm_client.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"])


@pytest.fixture
def make(
    aws_settings: AwsSettings, aws_clients: ClientCache
) -> Callable[..., SecretsManagerProvider]:
    def build(**kwargs: Any) -> SecretsManagerProvider:
        kwargs.setdefault("clients", aws_clients)
        return SecretsManagerProvider(settings=aws_settings, **kwargs)

    return build


@pytest.fixture
def name(unique: Callable[[str], str]) -> str:
    return unique("harbor/sandbox/tower_access-")


def test_first_write_creates_a_tagged_secret(
    make: Callable[..., SecretsManagerProvider], sm_client: Any, name: str
) -> None:
    provider = make(tags={"team": "platform"}, kms_key_id="alias/harbor", description="d1")
    first = record()
    assert provider.read(name) is None
    assert provider.write(name, first) is WriteOutcome.WRITTEN
    described = sm_client.describe_secret(SecretId=name)
    tags = {tag["Key"]: tag["Value"] for tag in described["Tags"]}
    assert tags == {"managed-by": "harbor-secrets", "team": "platform"}
    assert described["Description"] == "d1"
    assert described["KmsKeyId"] == "alias/harbor"
    assert json.loads(current_value(sm_client, name)) == first.to_dict()
    # The version id is the token derived from the record: a retried create is a no-op.
    versions = sm_client.list_secret_version_ids(SecretId=name)["Versions"]
    assert [v["VersionId"] for v in versions] == [request_token(name, first.to_json())]


def test_unmanaged_secret_is_refused_and_left_alone(
    make: Callable[..., SecretsManagerProvider], sm_client: Any, name: str
) -> None:
    sm_client.create_secret(Name=name, SecretString='{"password": "not ours"}')
    provider = make()
    with pytest.raises(StoreError) as read_error:
        provider.read(name)
    assert read_error.value.reason == "not-managed"
    with pytest.raises(StoreError) as write_error:
        provider.write(name, record())
    assert write_error.value.reason == "not-managed"
    assert "adopt = true" in str(write_error.value)
    assert current_value(sm_client, name) == '{"password": "not ours"}'
    assert version_count(sm_client, name) == 1


def test_unmanaged_secret_holding_a_record_is_still_refused(
    make: Callable[..., SecretsManagerProvider], sm_client: Any, name: str
) -> None:
    """Ownership is the tag, not the look of the value."""
    copied = record(offset=-100).to_json()
    sm_client.create_secret(Name=name, SecretString=copied)
    with pytest.raises(StoreError, match="not tagged managed-by=harbor-secrets"):
        make().write(name, record())
    assert current_value(sm_client, name) == copied


def test_adopt_takes_over_an_unmanaged_secret(
    make: Callable[..., SecretsManagerProvider], sm_client: Any, name: str
) -> None:
    sm_client.create_secret(Name=name, SecretString="legacy value")
    provider = make(adopt=True)
    assert provider.read(name) is None
    fresh = record()
    assert provider.write(name, fresh) is WriteOutcome.WRITTEN
    assert json.loads(current_value(sm_client, name)) == fresh.to_dict()


def test_secret_created_without_a_value_gets_its_first_version(
    make: Callable[..., SecretsManagerProvider], sm_client: Any, name: str
) -> None:
    """Terraform often creates the (tagged) secret and leaves the value to the job."""
    sm_client.create_secret(Name=name, Tags=[{"Key": "managed-by", "Value": "harbor-secrets"}])
    provider = make()
    assert provider.read(name) is None
    fresh = record()
    assert provider.write(name, fresh) is WriteOutcome.WRITTEN
    assert json.loads(current_value(sm_client, name)) == fresh.to_dict()


def test_a_retried_write_adds_no_version(
    make: Callable[..., SecretsManagerProvider],
    sm_client: Any,
    name: str,
    fresh_client: Callable[[str], Any],
    inject_error: Callable[..., None],
) -> None:
    first, second = record(), record(offset=60)
    make().write(name, first)
    assert version_count(sm_client, name) == 1
    # The new version is stored, then the run fails before AWSCURRENT moves to it.
    failing = fresh_client("secretsmanager")
    inject_error(failing, "UpdateSecretVersionStage", "ThrottlingException", "Rate exceeded")
    with pytest.raises(StoreError) as error:
        make(client=failing).write(name, second)
    assert error.value.reason == "throttled"
    assert json.loads(current_value(sm_client, name)) == first.to_dict()
    assert version_count(sm_client, name) == 2
    # The next run retries the same record: same ClientRequestToken, so no third version.
    assert make().write(name, second) is WriteOutcome.WRITTEN
    assert json.loads(current_value(sm_client, name)) == second.to_dict()
    assert version_count(sm_client, name) == 2
    # And a raw put with that token and value is ignored by Secrets Manager itself.
    sm_client.put_secret_value(
        SecretId=name,
        SecretString=second.to_json(),
        ClientRequestToken=request_token(name, second.to_json()),
    )
    assert version_count(sm_client, name) == 2


def test_a_writer_that_lost_the_race_does_not_go_backwards(
    make: Callable[..., SecretsManagerProvider], sm_client: Any, name: str
) -> None:
    """A reads r1; B writes r3; A's r2 is newer than what it read, older than what is there."""
    r1, r2, r3 = record(), record(offset=60), record(offset=120)
    make().write(name, r1)
    slow = make()
    assert slow.read(name) == r1  # cached: slow's write starts from this version
    assert make().write(name, r3) is WriteOutcome.WRITTEN
    assert slow.write(name, r2) is WriteOutcome.KEPT_NEWER  # the label move failed, re-read
    assert json.loads(current_value(sm_client, name)) == r3.to_dict()


def test_a_writer_whose_read_is_stale_still_writes_a_newer_record(
    make: Callable[..., SecretsManagerProvider], sm_client: Any, name: str
) -> None:
    r1, r2, r3 = record(), record(offset=60), record(offset=120)
    make().write(name, r1)
    slow = make()
    slow.read(name)
    make().write(name, r2)
    assert slow.write(name, r3) is WriteOutcome.WRITTEN
    assert json.loads(current_value(sm_client, name)) == r3.to_dict()


def test_api_calls_per_write(
    make: Callable[..., SecretsManagerProvider],
    name: str,
    fresh_client: Callable[[str], Any],
    count_calls: Callable[[Any], Counter[str]],
) -> None:
    client = fresh_client("secretsmanager")
    calls = count_calls(client)
    first = make(client=client)
    first.read(name)
    first.write(name, record())
    assert calls == Counter({"GetSecretValue": 1, "CreateSecret": 1})
    calls.clear()
    fresh = make(client=client)
    assert fresh.read(name) is not None  # a fresh token: the run stops here
    assert calls == Counter({"GetSecretValue": 1})
    calls.clear()
    due = make(client=client)
    due.read(name)
    due.write(name, record(offset=60))
    assert calls == Counter(
        {
            "GetSecretValue": 1,
            "DescribeSecret": 1,
            "PutSecretValue": 1,
            "UpdateSecretVersionStage": 1,
        }
    )


@pytest.mark.parametrize(
    ("operation", "code", "message", "reason"),
    [
        ("PutSecretValue", "ThrottlingException", "Rate exceeded", "throttled"),
        (
            "PutSecretValue",
            "AccessDeniedException",
            "User: arn:aws:sts::123456789012:assumed-role/job is not authorized to perform: "
            "secretsmanager:PutSecretValue",
            "access-denied",
        ),
        ("PutSecretValue", "AccessDeniedException", "Access to KMS is not allowed", "kms-denied"),
        ("PutSecretValue", "EncryptionFailure", "KMS key is disabled", "kms-denied"),
        ("DescribeSecret", "AccessDeniedException", "not authorized", "access-denied"),
        ("GetSecretValue", "DecryptionFailure", "cannot decrypt with KMS", "kms-denied"),
    ],
)
def test_aws_failures_become_store_errors_and_write_nothing(
    make: Callable[..., SecretsManagerProvider],
    sm_client: Any,
    name: str,
    fresh_client: Callable[[str], Any],
    inject_error: Callable[..., None],
    operation: str,
    code: str,
    message: str,
    reason: str,
) -> None:
    before = record()
    make().write(name, before)
    client = fresh_client("secretsmanager")
    inject_error(client, operation, code, message)
    provider = make(client=client)
    with pytest.raises(StoreError) as error:
        provider.write(name, record(offset=60))
    assert error.value.reason == reason
    assert error.value.hint
    assert name in str(error.value)
    assert json.loads(current_value(sm_client, name)) == before.to_dict()


def test_missing_secret_reads_none_but_access_denied_is_an_error(
    make: Callable[..., SecretsManagerProvider],
    name: str,
    fresh_client: Callable[[str], Any],
    inject_error: Callable[..., None],
) -> None:
    assert make().read(name) is None
    client = fresh_client("secretsmanager")
    inject_error(client, "GetSecretValue", "AccessDeniedException", "not authorized")
    with pytest.raises(StoreError) as error:
        make(client=client).read(name)
    assert error.value.reason == "access-denied"


def test_secret_scheduled_for_deletion_is_explained(
    make: Callable[..., SecretsManagerProvider], sm_client: Any, name: str
) -> None:
    provider = make()
    provider.write(name, record())
    sm_client.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    with pytest.raises(StoreError) as error:
        make().write(name, record(offset=60))
    assert error.value.reason == "deleted"
    assert "restore-secret" in str(error.value)


def test_token_never_appears_in_errors(
    make: Callable[..., SecretsManagerProvider],
    name: str,
    fresh_client: Callable[[str], Any],
    inject_error: Callable[..., None],
) -> None:
    canary = f"canary-{uuid.uuid4().hex}"
    client = fresh_client("secretsmanager")
    inject_error(
        client,
        "CreateSecret",
        "ValidationException",
        f"1 validation error detected: Value '{canary}' at 'secretString' failed to satisfy "
        f"constraint; also saw {canary}",
    )
    with pytest.raises(StoreError) as error:
        make(client=client).write(name, record(token=canary))
    assert canary not in str(error.value)
    assert canary not in repr(error.value)
    assert error.value.__cause__ is None
    assert error.value.__suppress_context__


def test_warns_when_policy_writes_more_often_than_aws_recommends(
    make: Callable[..., SecretsManagerProvider],
) -> None:
    provider = make()
    (warning,) = provider.warnings(RefreshPolicy())  # 300 s tokens refreshed 150 s early
    assert "10 minutes" in warning
    assert "24 hours" in warning
    assert "aws-ssm" in warning
    slow = RefreshPolicy(refresh_before=300, schedule_period=60, token_lifetime=3600)
    assert slow.write_interval >= 600
    assert provider.warnings(slow) == []


def test_keys_must_be_valid_secret_names(aws_env: dict[str, str]) -> None:
    def key(template: str) -> str:
        sink = sink_from_options(SecretsManagerProvider, {"name": template}, environ=aws_env)
        return sink.key_for(Job("main", "sandbox", "tower_access", ("test",)))

    assert key("harbor/{environment}/{scope}") == "harbor/sandbox/tower_access"
    with pytest.raises(ConfigError, match="not a valid Secrets Manager secret name"):
        key("harbor {environment}")
