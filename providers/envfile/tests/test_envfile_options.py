"""Sink options: validation, path resolution, key rendering, description and advice."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from harbor_secrets_envfile import EnvFileProvider

from harbor_secrets import (
    ENTRY_POINT_GROUP,
    ConfigError,
    ProviderContext,
    RefreshPolicy,
)
from harbor_secrets.config import Job
from harbor_secrets.runtime import Sink, build_sink


def _sink(table: dict[str, Any], source: str | None = None) -> Sink:
    """The sink as the core builds it: the core takes the prefix template, the provider the rest."""
    return build_sink("local", EnvFileProvider, table, ProviderContext("local", source=source))


def _build(table: dict[str, Any], source: str | None = None) -> EnvFileProvider:
    provider = _sink(table, source).provider
    assert isinstance(provider, EnvFileProvider)
    return provider


def test_registered_under_the_entry_point_group() -> None:
    (entry,) = [e for e in entry_points(group=ENTRY_POINT_GROUP) if e.name == "envfile"]
    assert entry.load() is EnvFileProvider
    assert EnvFileProvider.distribution == "harbor-secrets-envfile"
    assert EnvFileProvider.stores_full_record is False


def test_relative_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "conf" / "harbor.toml"
    config.parent.mkdir()
    config.write_text("")
    assert _build({"path": "out/harbor.env"}, str(config)).path == (
        tmp_path / "conf" / "out" / "harbor.env"
    )


def test_relative_path_without_a_config_file_is_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _build({"path": "harbor.env"}, "<string>").path == tmp_path / "harbor.env"
    assert _build({"path": "./x/../harbor.env"}).path == tmp_path / "harbor.env"
    monkeypatch.chdir("/")  # resolved once: a later chdir does not move the file
    assert _build({"path": str(tmp_path / "a.env")}).path == tmp_path / "a.env"


def test_home_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _build({"path": "~/harbor.env"}).path == tmp_path / "harbor.env"


@pytest.mark.parametrize(
    ("table", "key", "fix"),
    [
        ({}, "sinks.local.path", 'path = "'),
        ({"path": ""}, "sinks.local.path", 'path = "'),
        ({"path": "x", "colour": "red"}, "sinks.local.colour", "spelling"),
        ({"path": "x", "prefix": "HARBOR_{tenant}"}, "sinks.local.prefix", "{environment}"),
        ({"path": "x", "prefix": "{environment"}, "sinks.local.prefix", "{environment}"),
        ({"path": "x", "file_mode": "0644"}, "sinks.local.file_mode", "0640"),
        ({"path": "x", "file_mode": "0700"}, "sinks.local.file_mode", "0600"),
        ({"path": "x", "file_mode": "0400"}, "sinks.local.file_mode", "0600"),
        ({"path": "x", "file_mode": "rw"}, "sinks.local.file_mode", "0600"),
        ({"path": "x", "file_mode": True}, "sinks.local.file_mode", "0600"),
        ({"path": "x", "lock_timeout": "soon"}, "sinks.local.lock_timeout", "lock_timeout"),
    ],
)
def test_invalid_options_name_the_key_and_the_fix(
    table: dict[str, Any], key: str, fix: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _build(table, "harbor.toml")
    assert caught.value.key == key
    assert fix in str(caught.value)
    assert caught.value.exit_code == 2


def test_a_prefix_that_renders_no_shell_name_is_a_config_error_naming_the_template() -> None:
    sink = _sink({"path": "x", "prefix": "9_{scope}"}, "harbor.toml")
    with pytest.raises(ConfigError) as caught:
        sink.key_for(Job("main", "sandbox", "tower_access", ("local",)))
    assert caught.value.key == "sinks.local.prefix"
    assert "9_{scope}" in str(caught.value)
    assert "'9_TOWER_ACCESS'" in str(caught.value)
    assert "letter" in str(caught.value)
    assert caught.value.exit_code == 2


def test_options_are_applied() -> None:
    sink = _sink(
        {
            "path": "/srv/harbor.env",
            "prefix": "APP_{credentials}_{scope}",
            "file_mode": "0640",
            "lock_timeout": "2m",
        }
    )
    provider = sink.provider
    assert isinstance(provider, EnvFileProvider)
    assert sink.key_template.text == "APP_{credentials}_{scope}"
    assert (provider.file_mode, provider.lock_timeout) == (0o640, 120.0)
    assert _build({"path": "/x", "file_mode": 0o660}).file_mode == 0o660
    assert provider.describe() == {
        "provider": "envfile",
        "path": "/srv/harbor.env",
        "file_mode": "0640",
        "lock_timeout_seconds": 120.0,
    }
    assert repr(provider) == "EnvFileProvider(path='/srv/harbor.env')"


@pytest.mark.parametrize(
    ("environment", "scope", "credentials", "expected"),
    [
        ("sandbox", "service_provider", "main", "HARBOR_SANDBOX_SERVICE_PROVIDER"),
        ("production", "tower_access", "main", "HARBOR_PRODUCTION_TOWER_ACCESS"),
        ("eu-west.1", "a b/c", "x", "HARBOR_EU_WEST_1_A_B_C"),
        ("café", "s", "x", "HARBOR_CAF__S"),
    ],
)
def test_keys_become_shell_names(
    environment: str, scope: str, credentials: str, expected: str
) -> None:
    sink = _sink({"path": "/x"})
    assert sink.key_for(Job(credentials, environment, scope, ("local",))) == expected


def test_warnings_point_at_a_missing_directory_or_a_bad_target(tmp_path: Path) -> None:
    policy = RefreshPolicy()
    assert EnvFileProvider(tmp_path / "harbor.env").warnings(policy) == []
    assert "does not exist" in EnvFileProvider(tmp_path / "no" / "h.env").warnings(policy)[0]
    assert "is a directory" in EnvFileProvider(tmp_path).warnings(policy)[0]
    link = tmp_path / "link.env"
    link.symlink_to(tmp_path / "target.env")
    assert "symbolic link" in EnvFileProvider(link).warnings(policy)[0]
