"""aws-ssm against moto_server: SecureString, tags on creation, tiers, the lock, failures."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from harbor_secrets_aws import ParameterStoreProvider
from harbor_secrets_aws.clients import AwsSettings, ClientCache

from harbor_secrets import ConfigError, RefreshPolicy, StoreError, TokenRecord, WriteOutcome
from harbor_secrets.config import Job
from harbor_secrets.testing import sink_from_options

NOW = datetime.now(UTC).replace(microsecond=0)


def record(offset: int = 0, token: str | None = None) -> TokenRecord:
    return TokenRecord.issue(
        access_token=token or f"tok-{uuid.uuid4().hex}",
        issued_at=NOW + timedelta(seconds=offset),
        expires_in=300,
        scope="tower_access",
        environment="sandbox",
        client_id="client-1",
        issuer="http://127.0.0.1:1/realms/harbor/protocol/openid-connect/token",
    )


def stored(ssm_client: Any, name: str) -> dict[str, Any]:
    response = ssm_client.get_parameter(Name=name, WithDecryption=True)
    return dict(json.loads(response["Parameter"]["Value"]))


def exists(ssm_client: Any, name: str) -> bool:
    try:
        ssm_client.get_parameter(Name=name)
    except ssm_client.exceptions.ParameterNotFound:
        return False
    return True


def tags_of(ssm_client: Any, name: str) -> dict[str, str]:
    response = ssm_client.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)
    return {tag["Key"]: tag["Value"] for tag in response["TagList"]}


def describe(ssm_client: Any, name: str) -> dict[str, Any]:
    response = ssm_client.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}]
    )
    (parameter,) = response["Parameters"]
    return dict(parameter)


@pytest.fixture
def make(
    aws_settings: AwsSettings, aws_clients: ClientCache
) -> Callable[..., ParameterStoreProvider]:
    def build(**kwargs: Any) -> ParameterStoreProvider:
        kwargs.setdefault("clients", aws_clients)
        return ParameterStoreProvider(settings=aws_settings, **kwargs)

    return build


@pytest.fixture
def name(unique: Callable[[str], str]) -> str:
    return unique("/harbor/sandbox/tower_access-")


def test_creates_a_tagged_secure_string_then_overwrites_without_labels(
    make: Callable[..., ParameterStoreProvider], ssm_client: Any, name: str
) -> None:
    provider = make(tags={"team": "platform"})
    first, second = record(), record(offset=60)
    assert provider.read(name) is None
    assert provider.write(name, first) is WriteOutcome.WRITTEN
    assert provider.write(name, second) is WriteOutcome.WRITTEN
    assert stored(ssm_client, name) == second.to_dict()
    parameter = describe(ssm_client, name)
    assert parameter["Type"] == "SecureString"
    assert parameter["Tier"] == "Standard"
    assert parameter["Version"] == 2
    assert tags_of(ssm_client, name) == {"managed-by": "harbor-secrets", "team": "platform"}
    history = ssm_client.get_parameter_history(Name=name)["Parameters"]
    assert all(not version.get("Labels") for version in history)
    assert not exists(ssm_client, name + ".lock"), "the lock must be released"


def test_kms_key_is_used_for_the_secure_string(
    make: Callable[..., ParameterStoreProvider],
    ssm_client: Any,
    name: str,
    aws_clients: ClientCache,
    aws_settings: AwsSettings,
) -> None:
    key_id = aws_clients.client("kms", aws_settings).create_key()["KeyMetadata"]["KeyId"]
    make(kms_key_id=key_id).write(name, record())
    assert describe(ssm_client, name)["KeyId"] == key_id


def test_oversized_record_is_refused_before_any_request(
    make: Callable[..., ParameterStoreProvider],
    ssm_client: Any,
    name: str,
    fresh_client: Callable[[str], Any],
    count_calls: Callable[[Any], Counter[str]],
) -> None:
    client = fresh_client("ssm")
    calls = count_calls(client)
    big = record(token="x" * 5000)
    with pytest.raises(StoreError) as error:
        make(client=client).write(name, big)
    assert error.value.reason == "too-large"
    assert "allow_advanced_tier = true" in str(error.value)
    assert "x" * 50 not in str(error.value)
    assert calls == Counter()
    assert not exists(ssm_client, name)


def test_advanced_tier_only_when_allowed(
    make: Callable[..., ParameterStoreProvider], ssm_client: Any, name: str
) -> None:
    provider = make(allow_advanced_tier=True)
    big = record(token="x" * 5000)
    assert provider.write(name, big) is WriteOutcome.WRITTEN
    assert describe(ssm_client, name)["Tier"] == "Advanced"
    assert stored(ssm_client, name) == big.to_dict()
    with pytest.raises(StoreError, match="8192-byte limit"):
        provider.write(name, record(offset=60, token="y" * 9000))
    assert stored(ssm_client, name) == big.to_dict()


def test_keys_become_valid_parameter_names(aws_env: dict[str, str]) -> None:
    def render(template: str) -> str:
        sink = sink_from_options(ParameterStoreProvider, {"name": template}, environ=aws_env)
        return sink.key_for(Job("main", "sandbox", "tower_access", ("test",)))

    assert render(ParameterStoreProvider.default_key_template) == "/harbor/sandbox/tower_access"
    assert render("harbor/{environment}/{scope}") == "/harbor/sandbox/tower_access"
    assert render("harbor-{environment}-{scope}") == "harbor-sandbox-tower_access"
    for bad in ("/harbor//{scope}", "/harbor/{scope}/", "/aws/{scope}", "ssm-{scope}", "a b"):
        with pytest.raises(ConfigError, match="not a valid SSM parameter name"):
            render(bad)


def test_held_lock_makes_the_write_fail_without_writing(
    make: Callable[..., ParameterStoreProvider], ssm_client: Any, name: str
) -> None:
    before = record()
    make().write(name, before)
    holder = json.dumps({"owner": "someone", "expires_at": time.time() + 60})
    ssm_client.put_parameter(Name=name + ".lock", Value=holder, Type="String")
    with pytest.raises(StoreError) as error:
        make(lock_wait=0.3).write(name, record(offset=60))
    assert error.value.reason == "locked"
    assert stored(ssm_client, name) == before.to_dict()
    assert ssm_client.get_parameter(Name=name + ".lock")["Parameter"]["Value"] == holder


def test_expired_lock_is_broken(
    make: Callable[..., ParameterStoreProvider], ssm_client: Any, name: str
) -> None:
    stale = json.dumps({"owner": "crashed", "expires_at": time.time() - 1})
    ssm_client.put_parameter(Name=name + ".lock", Value=stale, Type="String")
    fresh = record()
    assert make(lock_wait=5).write(name, fresh) is WriteOutcome.WRITTEN
    assert stored(ssm_client, name) == fresh.to_dict()
    assert not exists(ssm_client, name + ".lock")


def test_unmanaged_parameter_is_refused_unless_adopted(
    make: Callable[..., ParameterStoreProvider], ssm_client: Any, name: str
) -> None:
    ssm_client.put_parameter(Name=name, Value="some other value", Type="SecureString")
    with pytest.raises(StoreError) as read_error:
        make().read(name)
    assert read_error.value.reason == "not-managed"
    with pytest.raises(StoreError) as write_error:
        make().write(name, record())
    assert write_error.value.reason == "not-managed"
    assert ssm_client.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"] == (
        "some other value"
    )
    adopted = make(adopt=True)
    assert adopted.read(name) is None
    fresh = record()
    assert adopted.write(name, fresh) is WriteOutcome.WRITTEN
    assert stored(ssm_client, name) == fresh.to_dict()


def test_parameter_created_by_someone_else_meanwhile_is_compared_again(
    make: Callable[..., ParameterStoreProvider],
    ssm_client: Any,
    name: str,
    fresh_client: Callable[[str], Any],
) -> None:
    """Between our read and our create another writer (not using the lock) creates it."""
    newer = record(offset=120)
    client = fresh_client("ssm")
    raced: list[bool] = []

    def create_first(params: dict[str, Any], **_: Any) -> None:
        if params.get("Name") == name and params.get("Overwrite") is False and not raced:
            raced.append(True)
            ssm_client.put_parameter(
                Name=name,
                Value=newer.to_json(),
                Type="SecureString",
                Tags=[{"Key": "managed-by", "Value": "harbor-secrets"}],
            )

    client.meta.events.register("before-parameter-build.ssm.PutParameter", create_first)
    assert make(client=client).write(name, record()) is WriteOutcome.KEPT_NEWER
    assert raced
    assert stored(ssm_client, name) == newer.to_dict()


def test_api_calls_per_write(
    make: Callable[..., ParameterStoreProvider],
    name: str,
    fresh_client: Callable[[str], Any],
    count_calls: Callable[[Any], Counter[str]],
) -> None:
    client = fresh_client("ssm")
    calls = count_calls(client)
    provider = make(client=client)
    provider.read(name)
    provider.write(name, record())
    # read; lock; read under the lock; create; unlock
    assert calls == Counter({"GetParameter": 2, "PutParameter": 2, "DeleteParameter": 1})
    calls.clear()
    provider.read(name)
    provider.write(name, record(offset=60))
    assert calls == Counter({"GetParameter": 2, "PutParameter": 2, "DeleteParameter": 1})


@pytest.mark.parametrize(
    ("code", "message", "reason"),
    [
        ("ThrottlingException", "Rate exceeded", "throttled"),
        ("TooManyUpdates", "Too many updates", "throttled"),
        ("AccessDeniedException", "not authorized to perform: ssm:PutParameter", "access-denied"),
        (
            "AccessDeniedException",
            "User: arn:aws:sts::1:assumed-role/job is not authorized to perform: kms:Encrypt",
            "kms-denied",
        ),
        ("InvalidKeyId", "Invalid keyId alias/nope", "kms-denied"),
    ],
)
def test_failed_put_leaves_the_parameter_and_releases_the_lock(
    make: Callable[..., ParameterStoreProvider],
    ssm_client: Any,
    name: str,
    fresh_client: Callable[[str], Any],
    inject_error: Callable[..., None],
    code: str,
    message: str,
    reason: str,
) -> None:
    before = record()
    make().write(name, before)
    client = fresh_client("ssm")
    # Only the put of the value fails; the lock parameter's puts and deletes go through.
    inject_error(client, "PutParameter", code, message, when=lambda p: p["Name"] == name)
    with pytest.raises(StoreError) as error:
        make(client=client).write(name, record(offset=60))
    assert error.value.reason == reason
    assert error.value.hint
    assert stored(ssm_client, name) == before.to_dict()
    assert not exists(ssm_client, name + ".lock")


def test_missing_parameter_reads_none_and_denied_read_is_an_error(
    make: Callable[..., ParameterStoreProvider],
    name: str,
    fresh_client: Callable[[str], Any],
    inject_error: Callable[..., None],
) -> None:
    assert make().read(name) is None
    client = fresh_client("ssm")
    inject_error(client, "GetParameter", "AccessDeniedException", "not authorized")
    with pytest.raises(StoreError) as error:
        make(client=client).read(name)
    assert error.value.reason == "access-denied"


def test_no_frequency_warning_for_parameter_store(
    make: Callable[..., ParameterStoreProvider],
) -> None:
    assert make().warnings(RefreshPolicy()) == []
