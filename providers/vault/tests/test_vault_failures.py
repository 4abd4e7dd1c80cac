"""Every failure is a clear StoreError with a hint, and the stored record stays as it was."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hvac.exceptions
import pytest
from harbor_secrets_vault.errors import Operation
from vault_support import BaoServer, MakeProvider, make_record, start_bao, unique

from harbor_secrets import StoreError, TokenRecord, WriteOutcome


def stored(bao: BaoServer, path: str) -> tuple[int, dict[str, Any]]:
    body = bao.client().secrets.kv.v2.read_secret_version(
        path=path, mount_point="secret", raise_on_deleted_version=True
    )
    return body["data"]["metadata"]["version"], body["data"]["data"]


def failure(action: Any) -> StoreError:
    with pytest.raises(StoreError) as caught:
        action()
    return caught.value


@pytest.fixture
def existing(bao: BaoServer, make_vault: MakeProvider) -> tuple[str, TokenRecord]:
    """A path that already holds a record written by harbor-secrets."""
    path = f"harbor/{unique()}/service_provider"
    record = make_record()
    make_vault().write(path, record)
    return path, record


def test_permission_denied_names_path_and_capability(
    bao: BaoServer,
    make_vault: MakeProvider,
    existing: tuple[str, TokenRecord],
    caplog: pytest.LogCaptureFixture,
) -> None:
    path, record = existing
    canary = f"canary-vault-token-{secrets.token_hex(8)}"
    bao.token("harbor-read-only", token_id=canary)
    provider = make_vault(environ={"VAULT_TOKEN": canary})
    caplog.set_level(logging.DEBUG)
    assert provider.read(path) == record  # reading is allowed
    error = failure(
        lambda: provider.write(
            path, make_record(issued_at=datetime.now(UTC) + timedelta(minutes=2))
        )
    )
    assert error.reason == "permission-denied"
    text = str(error)
    assert f"secret/data/{path}" in text
    assert '"create" and "update"' in text
    assert canary not in text
    assert canary not in caplog.text
    assert stored(bao, path) == (1, record.to_dict())


def test_an_invalid_token_is_reported_without_the_token(
    make_vault: MakeProvider, existing: tuple[str, TokenRecord]
) -> None:
    canary = f"canary-bogus-{secrets.token_hex(8)}"
    error = failure(lambda: make_vault(environ={"VAULT_TOKEN": canary}).read(existing[0]))
    assert error.reason == "token-invalid"
    assert "the Vault token from VAULT_TOKEN is invalid or expired" in str(error)
    assert canary not in str(error)
    assert canary not in repr(error)


def test_missing_metadata_capability_says_the_token_was_written(
    bao: BaoServer, make_vault: MakeProvider
) -> None:
    bao.write_policy(
        "data-only", 'path "secret/data/harbor/*" { capabilities = ["create", "read", "update"] }'
    )
    path = f"harbor/{unique()}/service_provider"
    record = make_record()
    error = failure(
        lambda: make_vault(environ={"VAULT_TOKEN": bao.token("data-only")}).write(path, record)
    )
    assert error.reason == "permission-denied"
    assert "the token was written" in str(error)
    assert f'"update" on path "secret/metadata/{path}"' in str(error)
    assert stored(bao, path) == (1, record.to_dict())


def test_sealed_server(tmp_path: Path, make_vault: MakeProvider) -> None:
    """A second, short-lived server is sealed so the shared one is unaffected."""
    server = start_bao(tmp_path / "sealed")
    try:
        unseal_key = server.unseal_key()
        path = "harbor/sandbox/tower_access"
        record = make_record()
        environ = {"VAULT_TOKEN": server.root_token}
        make_vault(address=server.address, environ=environ).write(path, record)
        server.client().sys.seal()
        provider = make_vault(address=server.address, environ=environ)
        for action in (lambda: provider.read(path), lambda: provider.write(path, make_record())):
            error = failure(action)
            assert error.reason == "sealed"
            assert "sealed" in str(error)
            assert "unseal" in str(error)
        server.client().sys.submit_unseal_key(unseal_key)
        version = server.client().secrets.kv.v2.read_secret_version(
            path=path, mount_point="secret", raise_on_deleted_version=True
        )
        assert version["data"]["metadata"]["version"] == 1
        assert version["data"]["data"] == record.to_dict()
    finally:
        server.stop()


@pytest.mark.parametrize("mount", ["nope", "team/kv"])
def test_missing_mount(bao: BaoServer, make_vault: MakeProvider, mount: str) -> None:
    error = failure(lambda: make_vault(mount=mount).write("harbor/x/y", make_record()))
    assert error.reason == "missing-mount"
    assert f"bao secrets enable -path={mount} kv-v2" in str(error)
    listing = bao.client().sys.list_mounted_secrets_engines()["data"]
    assert f"{mount}/" not in listing


def test_mount_inside_another_mount(make_vault: MakeProvider) -> None:
    error = failure(lambda: make_vault(mount="secret/harbor").read("x/y"))
    assert error.reason == "missing-mount"
    assert 'mount = "secret"' in str(error)


def test_mount_that_is_not_kv(make_vault: MakeProvider) -> None:
    error = failure(lambda: make_vault(mount="cubbyhole").read("harbor/x/y"))
    assert error.reason == "wrong-kv-version"
    assert "not KV" in str(error)


@pytest.mark.parametrize(("mount", "configured", "actual"), [("kv1", 2, 1), ("secret", 1, 2)])
def test_wrong_kv_version_writes_nothing(
    bao: BaoServer, make_vault: MakeProvider, mount: str, configured: int, actual: int
) -> None:
    env = unique()
    provider = make_vault(mount=mount, kv_version=configured)
    error = failure(lambda: provider.write(f"harbor/{env}/a", make_record()))
    assert error.reason == "wrong-kv-version"
    assert f"KV v{actual} mount" in str(error)
    assert f"kv_version = {actual}" in str(error)
    client = bao.client()
    for probe in (f"{mount}/harbor/{env}/a", f"{mount}/data/harbor/{env}/a"):
        with pytest.raises(hvac.exceptions.InvalidPath):
            client.adapter.get(f"/v1/{probe}")


class Interferer:
    """Writes the same path through a second client just before each of our data writes."""

    def __init__(self, bao: BaoServer, path: str, records: Iterator[TokenRecord]) -> None:
        self.client = bao.client()
        self.path = path
        self.records = records
        self.data_writes = 0
        self.last: TokenRecord | None = None

    def install(self, provider: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        connection = provider._connection
        original = connection.post

        def post(op: Operation, body: dict[str, Any]) -> dict[str, Any]:
            if op.path == f"secret/data/{self.path}":
                self.data_writes += 1
                record = next(self.records, None)
                if record is not None:
                    self.last = record
                    self.client.secrets.kv.v2.create_or_update_secret(
                        path=self.path, secret=record.to_dict(), mount_point="secret"
                    )
            result: dict[str, Any] = original(op, body)
            return result

        monkeypatch.setattr(connection, "post", post)


def test_check_and_set_conflict_with_a_newer_record_keeps_it(
    bao: BaoServer, make_vault: MakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = f"harbor/{unique()}/service_provider"
    base = datetime.now(UTC)
    provider = make_vault()
    provider.write(path, make_record(issued_at=base))
    newer = make_record(issued_at=base + timedelta(seconds=120))
    interferer = Interferer(bao, path, iter([newer]))
    interferer.install(provider, monkeypatch)
    ours = make_record(issued_at=base + timedelta(seconds=60))
    assert provider.read(path) is not None
    assert provider.write(path, ours) is WriteOutcome.KEPT_NEWER
    assert interferer.data_writes == 1  # the re-read decided; no second attempt
    assert stored(bao, path) == (2, newer.to_dict())


def test_check_and_set_conflicts_exhausted(
    bao: BaoServer, make_vault: MakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = f"harbor/{unique()}/service_provider"
    base = datetime.now(UTC)
    provider = make_vault(cas_retries=2)
    provider.write(path, make_record(issued_at=base))
    # Each interfering write is older than ours, so every re-read decides to try again.
    older = (make_record(issued_at=base + timedelta(seconds=step + 1)) for step in range(10))
    interferer = Interferer(bao, path, older)
    interferer.install(provider, monkeypatch)
    error = failure(
        lambda: provider.write(path, make_record(issued_at=base + timedelta(minutes=5)))
    )
    assert error.reason == "cas-conflict"
    assert "check-and-set failed 3 times" in str(error)
    assert "cas_retries" in str(error)
    assert interferer.data_writes == 3  # cas_retries + 1 attempts, never forced
    assert interferer.last is not None
    assert stored(bao, path) == (4, interferer.last.to_dict())
