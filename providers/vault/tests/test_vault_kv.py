"""What the provider leaves in KV: the record, metadata, ownership marks, request counts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from vault_support import BaoServer, MakeProvider, make_record, unique

from harbor_secrets import StoreError, WriteOutcome


def metadata(bao: BaoServer, path: str, mount: str = "secret") -> dict[str, Any]:
    body = bao.client().secrets.kv.v2.read_secret_metadata(path=path, mount_point=mount)
    return dict(body["data"])


def stored(bao: BaoServer, path: str) -> tuple[int, dict[str, Any]]:
    body = bao.client().secrets.kv.v2.read_secret_version(
        path=path, mount_point="secret", raise_on_deleted_version=True
    )
    return body["data"]["metadata"]["version"], body["data"]["data"]


@pytest.fixture
def requests_seen(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every HTTP request this process sends, as "METHOD /path"."""
    seen: list[str] = []
    original = requests.Session.send

    def send(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        seen.append(f"{request.method} {urlsplit(request.url or '').path}")
        return original(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", send)
    return seen


def test_the_secret_data_is_exactly_the_stored_record(
    bao: BaoServer, make_vault: MakeProvider
) -> None:
    path = f"harbor/{unique()}/tower_access"
    record = make_record()
    assert make_vault().write(path, record) is WriteOutcome.WRITTEN
    version, data = stored(bao, path)
    assert version == 1
    assert data == record.to_dict()


def test_vault_kv_get_field_access_token_works_for_a_reader(
    bao: BaoServer, make_vault: MakeProvider
) -> None:
    """The consumer path from the issue, with the README's reader policy."""
    record = make_record(token="tower-token-for-the-mobile-sdk")
    make_vault().write("harbor/sandbox/tower_access", record)
    reader = bao.token("harbor-token-reader")
    result = bao.cli(
        "kv", "get", "-field=access_token", "secret/harbor/sandbox/tower_access", token=reader
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "tower-token-for-the-mobile-sdk"
    denied = bao.cli("kv", "put", "secret/harbor/sandbox/tower_access", "x=y", token=reader)
    assert denied.returncode != 0


def test_metadata_is_set_without_clobbering_other_settings(
    bao: BaoServer, make_vault: MakeProvider
) -> None:
    path = f"harbor/{unique()}/service_provider"
    client = bao.client()
    # An operator prepared the path: a custom key and a delete_version_after of their own.
    client.adapter.post(
        f"/v1/secret/metadata/{path}",
        json={"custom_metadata": {"owner": "platform-team"}, "delete_version_after": "768h"},
    )
    provider = make_vault(max_versions=3)
    first = make_record()
    assert provider.write(path, first) is WriteOutcome.WRITTEN
    meta = metadata(bao, path)
    assert meta["max_versions"] == 3
    assert meta["delete_version_after"] == "768h0m0s"
    assert meta["custom_metadata"] == {
        "owner": "platform-team",
        "managed-by": "harbor-secrets",
        "expires_at": first.to_dict()["expires_at"],
    }
    # Someone adds a key later; the next write keeps it and moves expires_at on.
    client.adapter.post(
        f"/v1/secret/metadata/{path}",
        json={"custom_metadata": {**meta["custom_metadata"], "ticket": "OPS-1"}},
    )
    later = make_record(issued_at=datetime.now(UTC) + timedelta(seconds=120))
    assert make_vault(max_versions=3).write(path, later) is WriteOutcome.WRITTEN
    meta = metadata(bao, path)
    assert meta["custom_metadata"]["owner"] == "platform-team"
    assert meta["custom_metadata"]["ticket"] == "OPS-1"
    assert meta["custom_metadata"]["expires_at"] == later.to_dict()["expires_at"]
    assert meta["delete_version_after"] == "768h0m0s"


def test_max_versions_prunes_old_versions(bao: BaoServer, make_vault: MakeProvider) -> None:
    path = f"harbor/{unique()}/service_provider"
    provider = make_vault(max_versions=2)
    start = datetime.now(UTC)
    for step in range(5):
        provider.write(path, make_record(issued_at=start + timedelta(seconds=step)))
    meta = metadata(bao, path)
    assert meta["current_version"] == 5
    assert sorted(int(v) for v in meta["versions"]) == [4, 5]


def test_requests_per_record(make_vault: MakeProvider, requests_seen: list[str]) -> None:
    """Fresh: one GET. Due: GET, POST data (cas), POST metadata. Mount lookup: once."""
    env = unique()
    provider = make_vault()
    assert provider.read(f"harbor/{env}/a") is None
    assert requests_seen == [
        "GET /v1/sys/internal/ui/mounts/secret",
        f"GET /v1/secret/data/harbor/{env}/a",
    ]
    requests_seen.clear()
    provider.write(f"harbor/{env}/a", make_record())
    assert requests_seen == [
        f"POST /v1/secret/data/harbor/{env}/a",
        f"POST /v1/secret/metadata/harbor/{env}/a",
    ]
    requests_seen.clear()
    assert provider.read(f"harbor/{env}/a") is not None
    assert requests_seen == [f"GET /v1/secret/data/harbor/{env}/a"]


def test_write_without_a_prior_read_reads_first(
    make_vault: MakeProvider, requests_seen: list[str]
) -> None:
    path = f"harbor/{unique()}/a"
    provider = make_vault()
    provider.write(path, make_record())
    assert [line.split()[0] for line in requests_seen[1:]] == ["GET", "POST", "POST"]


def test_a_secret_not_written_by_harbor_secrets_is_refused(
    bao: BaoServer, make_vault: MakeProvider
) -> None:
    path = f"harbor/{unique()}/tower_access"
    bao.client().secrets.kv.v2.create_or_update_secret(
        path=path, secret={"password": "someone-elses"}, mount_point="secret"
    )
    provider = make_vault()
    for attempt in (lambda: provider.read(path), lambda: provider.write(path, make_record())):
        with pytest.raises(StoreError) as caught:
            attempt()
        assert caught.value.reason == "not-managed"
        assert f"secret/{path}" in str(caught.value)
        assert "adopt = true" in str(caught.value)
    assert stored(bao, path) == (1, {"password": "someone-elses"})


def test_adopt_takes_the_secret_over(bao: BaoServer, make_vault: MakeProvider) -> None:
    path = f"harbor/{unique()}/tower_access"
    bao.client().secrets.kv.v2.create_or_update_secret(
        path=path, secret={"password": "someone-elses"}, mount_point="secret"
    )
    provider = make_vault(adopt=True)
    assert provider.read(path) is None
    record = make_record()
    assert provider.write(path, record) is WriteOutcome.WRITTEN
    assert stored(bao, path) == (2, record.to_dict())
    assert metadata(bao, path)["custom_metadata"]["managed-by"] == "harbor-secrets"
    # From now on it is ours: a sink without adopt may write it.
    newer = make_record(issued_at=datetime.now(UTC) + timedelta(seconds=90))
    assert make_vault().write(path, newer) is WriteOutcome.WRITTEN


def test_a_marked_secret_with_a_damaged_record_is_rewritten(
    bao: BaoServer, make_vault: MakeProvider
) -> None:
    path = f"harbor/{unique()}/tower_access"
    provider = make_vault()
    provider.write(path, make_record())
    bao.client().secrets.kv.v2.create_or_update_secret(
        path=path, secret={"access_token": ""}, mount_point="secret"
    )
    assert provider.read(path) is None  # ours (custom_metadata says so), but unusable
    record = make_record(issued_at=datetime.now(UTC) - timedelta(seconds=30))
    assert provider.write(path, record) is WriteOutcome.WRITTEN
    assert stored(bao, path)[1] == record.to_dict()


@pytest.mark.parametrize("how", ["delete", "destroy"])
def test_deleted_latest_version_reads_none_and_is_rewritten(
    bao: BaoServer, make_vault: MakeProvider, how: str
) -> None:
    path = f"harbor/{unique()}/service_provider"
    make_vault().write(path, make_record())
    kv = bao.client().secrets.kv.v2
    if how == "delete":
        kv.delete_latest_version_of_secret(path=path, mount_point="secret")
    else:
        kv.destroy_secret_versions(path=path, versions=[1], mount_point="secret")
    provider = make_vault()
    assert provider.read(path) is None
    record = make_record(issued_at=datetime.now(UTC) - timedelta(seconds=60))
    assert provider.write(path, record) is WriteOutcome.WRITTEN
    assert stored(bao, path) == (2, record.to_dict())


def test_kv1_stores_the_record_and_refuses_foreign_secrets(
    bao: BaoServer, make_vault: MakeProvider
) -> None:
    client = bao.client()
    ours, theirs = f"harbor/{unique()}/a", f"harbor/{unique()}/b"
    record = make_record()
    provider = make_vault(mount="kv1")
    assert provider.write(ours, record) is WriteOutcome.WRITTEN
    body = client.secrets.kv.v1.read_secret(path=ours, mount_point="kv1")
    assert body["data"] == record.to_dict()
    client.secrets.kv.v1.create_or_update_secret(
        path=theirs, secret={"api_key": "k"}, mount_point="kv1", method="POST"
    )
    with pytest.raises(StoreError) as caught:
        provider.write(theirs, record)
    assert caught.value.reason == "not-managed"
    assert client.secrets.kv.v1.read_secret(path=theirs, mount_point="kv1")["data"] == {
        "api_key": "k"
    }
    assert make_vault(mount="kv1", adopt=True).write(theirs, record) is WriteOutcome.WRITTEN


def test_records_round_trip_through_json_exactly(bao: BaoServer, make_vault: MakeProvider) -> None:
    """The CLI's JSON view of the secret is the schema-1 object, byte for byte."""
    path = f"harbor/{unique()}/service_provider"
    record = make_record(token='tok "quoted" \\ é')
    make_vault().write(path, record)
    result = bao.cli("kv", "get", "-format=json", f"secret/{path}")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["data"]["data"] == record.to_dict()
