"""A provider that is not installed is a configuration error that says how to install it safely.

Our distributions are not on PyPI, so "pip install harbor-secrets-vault" from an index would
install whatever someone else published under that name. The hint is the README's install:
the files ``make dist`` built, through ``dist/requirements.txt`` (by hash, no index), then the
extra for the third-party dependencies. The error names the file and the key that asked for
the provider, as every configuration error does; a misspelt provider gets a guess.

"Not installed" is simulated by hiding the other providers' entry points (every provider is
installed in the development environment); everything else is the real CLI.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest

from conftest import minimal_config
from harbor_secrets import registry
from harbor_secrets.cli import main
from harbor_secrets.registry import install_hint

VAULT_SINK = """
[sinks.vault]
provider = "vault"
address = "http://127.0.0.1:8200"
"""

SAFE_INSTALL = "pip install --no-deps -r dist/requirements.txt"


@pytest.fixture
def only_envfile(monkeypatch: pytest.MonkeyPatch) -> None:
    """The core and harbor-secrets-envfile installed, no other provider."""
    real = metadata.entry_points

    def entry_points(*, group: str) -> list[metadata.EntryPoint]:
        return [
            point
            for point in real(group=group)
            if point.dist is not None and point.dist.name == "harbor-secrets-envfile"
        ]

    assert registry.Registry().names(), "the registry reads importlib.metadata's entry points"
    monkeypatch.setattr(metadata, "entry_points", entry_points)


def run(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def write(tmp_path: Path, *, secret: str = "env:SECRET", sinks: str = "") -> Path:
    path = tmp_path / "harbor.toml"
    path.write_text(minimal_config(secret=secret, sinks=sinks), encoding="utf-8")
    return path


def assert_safe_hint(text: str, distribution: str, extra: str) -> None:
    assert SAFE_INSTALL in text
    assert f"pip install '{extra}'" in text
    assert text.index(SAFE_INSTALL) < text.index(f"pip install '{extra}'"), "files first"
    assert f"pip install {distribution}" not in text  # by name from an index: never


def test_a_missing_sink_provider_names_the_file_the_key_and_the_safe_install(
    tmp_path: Path, only_envfile: None, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(tmp_path, sinks=VAULT_SINK)
    code, out, err = run("config", "check", "-c", str(config), capsys=capsys)
    assert code == 2
    assert out == ""
    assert f"error: {config}: sinks.vault.provider: provider 'vault' is not installed" in err
    assert_safe_hint(err, "harbor-secrets-vault", "harbor-secrets[vault]")


@pytest.mark.parametrize("skip", [False, True])
def test_a_missing_reference_provider_is_named_at_the_client_secret(
    tmp_path: Path, only_envfile: None, capsys: pytest.CaptureFixture[str], skip: bool
) -> None:
    """Whether the provider is installed is known offline: --skip-references says it too."""
    config = write(tmp_path, secret="ssm:/harbor/client-secret")
    args = ["config", "check", "-c", str(config)] + (["--skip-references"] if skip else [])
    code, _, err = run(*args, capsys=capsys)
    assert code == 2
    assert f"{config}: credentials.main.client_secret: provider 'aws-ssm' is not installed" in err
    assert_safe_hint(err, "harbor-secrets-aws", "harbor-secrets[aws]")


def test_the_providers_command_gives_the_same_hint(
    only_envfile: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run("providers", "-o", "json", capsys=capsys)
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["envfile"]["status"] == "installed"
    assert rows["vault"]["status"] == "not installed"
    assert rows["vault"]["install"] == install_hint("vault")
    assert_safe_hint(
        rows["kubernetes"]["install"], "harbor-secrets-kubernetes", "harbor-secrets[kubernetes]"
    )
    code, text, _ = run("providers", capsys=capsys)
    assert SAFE_INSTALL in text


def test_a_misspelt_provider_gets_a_guess(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "harbor.toml"
    config.write_text(
        minimal_config().replace('"envfile"', '"env-file"'),
        encoding="utf-8",
    )
    code, _, err = run("config", "check", "-c", str(config), "--skip-references", capsys=capsys)
    assert code == 2
    assert f"{config}: sinks.local.provider: 'env-file' is not one of" in err
    assert "did you mean envfile?" in err
