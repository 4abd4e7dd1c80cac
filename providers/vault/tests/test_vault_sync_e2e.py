"""End to end: the real ``harbor-secrets`` CLI, the stand-in issuer, and OpenBao."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vault_support import BaoServer, unique

from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_testkit.environ import clean_environ

CLIENT_ID = "vault-e2e-client"
CLIENT_SECRET = "canary-vault-e2e-client-secret-5b2e"
SECRETS = [
    (environment, scope)
    for environment in ("production", "sandbox")
    for scope in ("service_provider", "tower_access")
]


@pytest.fixture
def issuer() -> Iterator[StandInIssuer]:
    with StandInIssuer(clients={CLIENT_ID: CLIENT_SECRET}, token_lifetime=300) as server:
        yield server


def config(prefix: str, client_secret: str = "env:HARBOR_CLIENT_SECRET") -> str:
    return f"""
[refresh]
refresh_before = "150s"

[credentials.main]
client_id = "{CLIENT_ID}"
client_secret = "{client_secret}"

[sinks.vault]
provider = "vault"
mount = "secret"
path = "harbor/{prefix}/{{environment}}/{{scope}}"
max_versions = 3

[[targets]]
credentials = "main"
environments = ["production", "sandbox"]
scopes = ["service_provider", "tower_access"]
sinks = ["vault"]
"""


def run_cli(
    bao: BaoServer, issuer: StandInIssuer, config_path: Path, vault_token: str, *args: str
) -> subprocess.CompletedProcess[str]:
    environ = clean_environ(home=bao.home)
    environ.update(
        VAULT_ADDR=bao.address,
        VAULT_TOKEN=vault_token,
        HARBOR_CLIENT_SECRET=CLIENT_SECRET,
        HARBOR_PRODUCTION_ACCOUNTS_URL=issuer.url,
        HARBOR_PRODUCTION_API_URL=issuer.url,
        HARBOR_SANDBOX_ACCOUNTS_URL=issuer.url,
        HARBOR_SANDBOX_API_URL=issuer.url,
    )
    harbor_secrets = Path(sys.executable).parent / "harbor-secrets"
    return subprocess.run(
        [str(harbor_secrets), "--config", str(config_path), *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def secret(bao: BaoServer, path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    kv = bao.client().secrets.kv.v2
    data = kv.read_secret_version(path=path, mount_point="secret", raise_on_deleted_version=True)
    meta = kv.read_secret_metadata(path=path, mount_point="secret")
    return data["data"]["data"], meta["data"]


def test_sync_writes_both_scopes_of_both_environments_then_nothing(
    bao: BaoServer, issuer: StandInIssuer, tmp_path: Path
) -> None:
    prefix = unique("e2e")
    config_path = tmp_path / "harbor.toml"
    config_path.write_text(config(prefix))
    vault_token = bao.token("harbor-secrets-writer")  # the README's policy is enough

    first = run_cli(bao, issuer, config_path, vault_token, "sync")
    assert first.returncode == 0, first.stdout + first.stderr
    assert issuer.token_requests == 4
    tokens = set()
    for environment, scope in SECRETS:
        data, meta = secret(bao, f"harbor/{prefix}/{environment}/{scope}")
        assert (data["environment"], data["scope"], data["client_id"]) == (
            environment,
            scope,
            CLIENT_ID,
        )
        assert data["managed_by"] == "harbor-secrets"
        assert data["schema"] == 1
        assert meta["current_version"] == 1
        assert meta["max_versions"] == 3
        assert meta["custom_metadata"]["expires_at"] == data["expires_at"]
        tokens.add(data["access_token"])
    assert tokens == set(issuer.issued)

    second = run_cli(bao, issuer, config_path, vault_token, "sync", "--output", "json")
    assert second.returncode == 0, second.stdout + second.stderr
    report = json.loads(second.stdout)
    assert report["counts"]["written"] == 0
    assert report["counts"]["fresh"] == 4
    assert issuer.token_requests == 4
    for environment, scope in SECRETS:
        _, meta = secret(bao, f"harbor/{prefix}/{environment}/{scope}")
        assert meta["current_version"] == 1

    for output in (first.stdout, first.stderr, second.stdout, second.stderr):
        for value in (CLIENT_SECRET, vault_token, *issuer.issued):
            assert value not in output


def test_client_secret_from_a_vault_reference(
    bao: BaoServer, issuer: StandInIssuer, tmp_path: Path
) -> None:
    """``client_secret = "vault:secret/harbor/credentials#client_secret"`` through the core."""
    bao.client().secrets.kv.v2.create_or_update_secret(
        path="harbor/credentials",
        secret={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        mount_point="secret",
    )
    prefix = unique("e2e")
    config_path = tmp_path / "harbor.toml"
    config_path.write_text(config(prefix, "vault:secret/harbor/credentials#client_secret"))
    vault_token = bao.token("harbor-secrets-writer")
    result = run_cli(bao, issuer, config_path, vault_token, "sync", "--output", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["counts"]["written"] == 4
    assert issuer.token_requests == 4
    assert CLIENT_SECRET not in result.stdout + result.stderr


def test_a_vault_failure_is_exit_1_and_leaves_the_store_alone(
    bao: BaoServer, issuer: StandInIssuer, tmp_path: Path
) -> None:
    prefix = unique("e2e")
    config_path = tmp_path / "harbor.toml"
    config_path.write_text(config(prefix))
    read_only = bao.token("harbor-read-only")
    result = run_cli(bao, issuer, config_path, read_only, "sync", "--output", "json")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["counts"]["written"] == 0
    assert read_only not in result.stdout + result.stderr
    assert "permission denied" in result.stdout + result.stderr
    listing = bao.cli("kv", "list", f"secret/harbor/{prefix}")
    assert listing.returncode != 0  # nothing was written under the prefix
