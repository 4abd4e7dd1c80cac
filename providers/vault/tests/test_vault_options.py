"""Sink options are validated offline, with errors that name the key and the fix."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from harbor_secrets_vault import VaultProvider

from harbor_secrets import (
    ENTRY_POINT_GROUP,
    ConfigError,
    RefreshPolicy,
)
from harbor_secrets.config import Job
from harbor_secrets.runtime import Sink
from harbor_secrets.testing import sink_from_options
from harbor_testkit.environ import clean_environ

CLOSED = "http://127.0.0.1:9"  # nothing listens; from_options must not notice


def sink(environ: Mapping[str, str] | None = None, **table: Any) -> Sink:
    environ = {"VAULT_TOKEN": "s.offline-token"} if environ is None else environ
    return sink_from_options(
        VaultProvider, table, environ=environ, name="vault", source="harbor.toml"
    )


def build(environ: Mapping[str, str] | None = None, **table: Any) -> VaultProvider:
    provider = sink(environ, **table).provider
    assert isinstance(provider, VaultProvider)
    return provider


def config_error(environ: Mapping[str, str] | None = None, **table: Any) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        build(environ, **table)
    assert caught.value.exit_code == 2
    return caught.value


def test_defaults_follow_the_vault_cli_environment() -> None:
    provider = build(
        {
            "VAULT_ADDR": "https://vault.example.com:8200",
            "VAULT_NAMESPACE": "team/",
            "VAULT_TOKEN": "s.x",
            "VAULT_CACERT": "/etc/ca.pem",
        }
    )
    described = provider.describe()
    assert described == {
        "provider": "vault",
        "address": "https://vault.example.com:8200",
        "namespace": "team",
        "mount": "secret",
        "kv_version": "auto",
        "auth": "token",
        "max_versions": 5,
        "adopt": False,
    }
    assert provider.settings.tls.verify == "/etc/ca.pem"
    assert provider.settings.auth.token is not None
    assert "s.x" not in repr(provider)
    assert "s.x" not in str(described)


def test_options_win_over_the_environment() -> None:
    built = sink(
        {"VAULT_ADDR": "https://other:8200", "VAULT_NAMESPACE": "other", "VAULT_TOKEN": "s.x"},
        address="https://vault.example.com",
        namespace="team",
        mount="/kv/",
        path="/apps/harbor/{environment}/{scope}/",
        kv_version=1,
        max_versions=2,
        cas_retries=0,
        timeout="2s",
    )
    provider = built.provider
    assert isinstance(provider, VaultProvider)
    settings = provider.settings
    assert (settings.address, settings.namespace, settings.mount) == (
        "https://vault.example.com",
        "team",
        "kv",
    )
    assert (settings.kv_version, settings.max_versions, settings.cas_retries) == (1, 2, 0)
    assert settings.timeout == 2.0
    key = built.key_for(Job("m", "sandbox", "tower_access", ("vault",)))
    assert key == "apps/harbor/sandbox/tower_access"  # the core renders, Vault trims the /


def test_missing_address_names_the_key_and_the_fix() -> None:
    error = config_error({"VAULT_TOKEN": "s.x"})
    assert error.key == "sinks.vault.address"
    assert "VAULT_ADDR" in str(error)


@pytest.mark.parametrize("address", ["vault.example.com:8200", "ftp://vault", "https://v/ui"])
def test_malformed_address_is_refused(address: str) -> None:
    assert config_error(address=address).key == "sinks.vault.address"


def test_plain_http_is_refused_except_loopback_or_when_allowed() -> None:
    error = config_error(address="http://vault.example.com:8200")
    assert "allow_insecure_http" in str(error)
    build(address="http://127.0.0.1:8200")
    build(address="http://localhost:8200")
    allowed = build(address="http://vault.vault.svc:8200", allow_insecure_http=True)
    assert any("plain http" in note for note in allowed.warnings(RefreshPolicy()))


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes"])
def test_vault_skip_verify_in_the_environment_is_refused(value: str) -> None:
    error = config_error(
        {"VAULT_ADDR": "https://vault:8200", "VAULT_TOKEN": "s.x", "VAULT_SKIP_VERIFY": value}
    )
    assert error.key == "sinks.vault.tls_skip_verify"
    assert "VAULT_SKIP_VERIFY" in str(error)
    assert "tls_skip_verify = true" in str(error)


@pytest.mark.parametrize("value", ["", "0", "false", "False"])
def test_vault_skip_verify_set_to_false_is_harmless(value: str) -> None:
    provider = build(
        {"VAULT_ADDR": "https://vault:8200", "VAULT_TOKEN": "s.x", "VAULT_SKIP_VERIFY": value}
    )
    assert provider.settings.tls.verify is True
    assert provider.warnings(RefreshPolicy()) == []


def test_tls_skip_verify_is_allowed_explicitly_and_warns_every_time() -> None:
    provider = build(
        {"VAULT_ADDR": "https://vault:8200", "VAULT_TOKEN": "s.x", "VAULT_SKIP_VERIFY": "1"},
        tls_skip_verify=True,
    )
    assert provider.settings.tls.verify is False
    for _ in range(2):
        notes = provider.warnings(RefreshPolicy())
        assert len(notes) == 1
        assert "tls_skip_verify" in notes[0]


def test_client_key_without_certificate_is_refused() -> None:
    assert config_error(address=CLOSED, client_key="/k.pem").key == "sinks.vault.client_key"


def test_client_certificate_from_the_environment() -> None:
    provider = build(
        {
            "VAULT_ADDR": CLOSED,
            "VAULT_TOKEN": "s.x",
            "VAULT_CLIENT_CERT": "/c.pem",
            "VAULT_CLIENT_KEY": "/k.pem",
        }
    )
    assert provider.settings.tls.cert == ("/c.pem", "/k.pem")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("kv_version", 3),
        ("kv_version", "v2"),
        ("max_versions", 0),
        ("cas_retries", -1),
        ("adopt", "yes"),
        ("timeout", "soon"),
        ("timeout", 0),
        ("mount", "/"),
        ("colour", "blue"),
    ],
)
def test_bad_values_name_their_key(option: str, value: object) -> None:
    table: dict[str, Any] = {option: value}
    assert config_error(None, address=CLOSED, **table).key == f"sinks.vault.{option}"


@pytest.mark.parametrize("path", ["harbor/../{scope}", "harbor//{scope}", "/"])
def test_a_path_that_is_no_secret_path_names_the_template(path: str) -> None:
    built = sink(address=CLOSED, path=path)
    with pytest.raises(ConfigError) as caught:
        built.key_for(Job("main", "sandbox", "tower_access", ("vault",)))
    assert caught.value.key == "sinks.vault.path"
    assert repr(path) in str(caught.value)
    assert "'.' or '..' segments" in str(caught.value)


def test_unknown_auth_method_and_misplaced_auth_options() -> None:
    assert config_error(address=CLOSED, auth={"method": "ldap"}).key == "sinks.vault.auth.method"
    error = config_error(address=CLOSED, auth={"method": "token", "role_id": "env:X"})
    assert error.key == "sinks.vault.auth.role_id"
    assert '"approle"' in str(error)
    error = config_error(address=CLOSED, auth={"method": "approle", "jwt": "env:X"})
    assert error.key == "sinks.vault.auth.jwt"
    error = config_error(address=CLOSED, auth={"method": "jwt", "jwt": "env:J", "typo": 1})
    assert error.key == "sinks.vault.auth.typo"


def test_required_auth_options() -> None:
    environ = {"VAULT_SECRET_ID": "sid", "VAULT_ROLE_ID": "rid", "J": "a.b.c"}
    error = config_error(environ, address=CLOSED, auth={"method": "approle", "role_id": "env:X"})
    assert error.key == "sinks.vault.auth.secret_id"
    error = config_error(environ, address=CLOSED, auth={"method": "kubernetes"})
    assert error.key == "sinks.vault.auth.role"
    error = config_error(environ, address=CLOSED, auth={"method": "jwt"})
    assert error.key == "sinks.vault.auth.jwt"


LITERALS = [
    ("token", {}, "hvs.CANARYLITERALVAULTTOKEN123"),
    ("token", {}, "Hvs:CANARY-TOKEN-WITH-COLON"),
    ("role_id", {"method": "approle", "secret_id": "env:S"}, "0b9e-CANARY-ROLE-ID"),
    ("secret_id", {"method": "approle", "role_id": "env:R"}, "canary secret id:with colon"),
    ("jwt", {"method": "jwt", "role": "r"}, "eyJhbGciOiJSUzI1NiJ9.CANARY.sig"),
    ("jwt", {"method": "jwt"}, "env:J\nCANARY-AFTER-A-NEWLINE"),
]


@pytest.mark.parametrize(("option", "auth", "literal"), LITERALS)
def test_a_literal_credential_is_refused_without_echoing_it(
    option: str, auth: dict[str, str], literal: str
) -> None:
    """Credentials are references; a pasted value is a configuration error, never shown."""
    environ = {"VAULT_TOKEN": "s.x", "R": "rid", "S": "sid"}
    error = config_error(environ, address=CLOSED, auth={**auth, option: literal})
    assert error.key == f"sinks.vault.auth.{option}"
    assert "reference" in str(error)
    assert literal not in str(error)
    assert "canary" not in str(error).lower()


def test_a_literal_token_stays_out_of_the_cli_output(tmp_path: Path) -> None:
    """The real CLI: ``config check`` and ``sync`` exit 2 and never print the value."""
    canary = "hvs.CANARYLITERALVAULTTOKEN123"
    config = tmp_path / "harbor.toml"
    config.write_text(
        f"""
[credentials.main]
client_id = "client"
client_secret = "env:HARBOR_CLIENT_SECRET"

[sinks.vault]
provider = "vault"
address = "{CLOSED}"
[sinks.vault.auth]
token = "{canary}"

[[targets]]
credentials = "main"
environments = ["sandbox"]
scopes = ["service_provider"]
sinks = ["vault"]
"""
    )
    environ = clean_environ({"HARBOR_CLIENT_SECRET": "client-secret"}, home=tmp_path)
    for args in (["config", "check"], ["sync", "-o", "json"]):
        result = subprocess.run(
            [sys.executable, "-m", "harbor_secrets", "-c", str(config), *args],
            env=environ,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, result.stdout + result.stderr
        assert "sinks.vault.auth.token" in result.stdout + result.stderr
        assert canary not in result.stdout + result.stderr
        assert "CANARY" not in result.stdout + result.stderr


def test_local_references_are_resolved_up_front() -> None:
    """A missing env:/file: credential is a configuration error, before any request."""
    with pytest.raises(ConfigError, match="VAULT_SECRET_ID"):
        build(
            {"ROLE": "role-id"},
            address=CLOSED,
            auth={"method": "approle", "role_id": "env:ROLE", "secret_id": "env:VAULT_SECRET_ID"},
        )


def test_no_token_anywhere_is_a_configuration_error(tmp_path: Path) -> None:
    error = config_error({"HOME": str(tmp_path)}, address=CLOSED)
    assert error.key == "sinks.vault.auth.method"
    assert "VAULT_TOKEN" in str(error)
    assert ".vault-token" in str(error)
    (tmp_path / ".vault-token").write_text("s.from-file\n")
    provider = build({"HOME": str(tmp_path)}, address=CLOSED)
    assert provider.settings.auth.token_file == str(tmp_path / ".vault-token")


def test_kv_v1_configuration_warns_about_missing_check_and_set() -> None:
    notes = build(address=CLOSED, mount="kv", kv_version=1).warnings(RefreshPolicy())
    assert any("check-and-set" in note for note in notes)


def test_from_options_never_touches_the_network() -> None:
    """A closed port and a token method that logs in: construction still succeeds."""
    provider = build(
        {"J": "x.y.z"}, address=CLOSED, auth={"method": "jwt", "role": "r", "jwt": "env:J"}
    )
    provider.close()  # nothing to revoke: it never logged in


def test_registered_on_the_entry_point_group() -> None:
    points = entry_points(group=ENTRY_POINT_GROUP, name="vault")
    assert [point.load() for point in points] == [VaultProvider]
    assert VaultProvider.key_option == "path"
    assert VaultProvider.reference_schemes == ("vault",)
