"""Readers (``get``, ``status``) that may not read a store get reading advice, never a bug report
and never a writer's advice ("let the user create and rename files in ...").

Root ignores file permissions, so the CLI runs as root without ``CAP_DAC_OVERRIDE`` and
``CAP_DAC_READ_SEARCH`` (``setpriv``), exactly as an unprivileged reader would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CLIENT_SECRET, envfile_config
from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_testkit.environ import clean_environ

WRITE_ADVICE = ("create and rename", "create directories", "mkdir", "writes every configured sink")
NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


def run_as_reader(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    prefix = NO_DAC if os.geteuid() == 0 else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "harbor_secrets", *args],
        capture_output=True,
        text=True,
        env=clean_environ({"HARBOR_CLIENT_SECRET": CLIENT_SECRET}),
        cwd=cwd,
        timeout=60,
        check=False,
    )


def files_config(issuer_url: str, directory: Path) -> str:
    return envfile_config(issuer_url).replace(
        'provider = "envfile"\npath = "harbor.env"',
        f'provider = "files"\ndirectory = "{directory}"',
    )


def assert_reading_advice(result: subprocess.CompletedProcess[str], path: Path) -> None:
    text = result.stdout + result.stderr
    assert result.returncode == 1, text
    assert "Permission denied" in text
    assert f"read {path}" in text
    for advice in WRITE_ADVICE:
        assert advice not in text
    assert "bug" not in text
    assert "Traceback" not in text


@pytest.fixture
def env_store(tmp_path: Path, issuer: StandInIssuer) -> tuple[Path, Path]:
    config = tmp_path / "harbor.toml"
    config.write_text(envfile_config(issuer.url), encoding="utf-8")
    assert run_as_reader("-c", str(config), "sync", cwd=tmp_path).returncode == 0
    env_file = tmp_path / "harbor.env"
    env_file.chmod(0o000)
    return config, env_file


@pytest.mark.parametrize("command", [["get", "-e", "sandbox"], ["status"]])
def test_an_unreadable_env_file_gets_reading_advice(
    env_store: tuple[Path, Path], tmp_path: Path, command: list[str]
) -> None:
    config, env_file = env_store
    result = run_as_reader("-c", str(config), *command, cwd=tmp_path)
    assert_reading_advice(result, env_file)


@pytest.fixture(params=["sandbox", "sandbox/service_provider"])
def files_store(
    tmp_path: Path, issuer: StandInIssuer, request: pytest.FixtureRequest
) -> tuple[Path, Path]:
    """The environment's directory (the per-token ones below it cannot be searched), or
    one per-token directory itself (the case the fault round reported)."""
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    config = tmp_path / "harbor.toml"
    config.write_text(files_config(issuer.url, tokens), encoding="utf-8")
    assert run_as_reader("-c", str(config), "sync", cwd=tmp_path).returncode == 0
    unsearchable = tokens / request.param
    unsearchable.chmod(0o000)
    return config, unsearchable


@pytest.mark.parametrize("command", [["get", "-e", "sandbox"], ["status"]])
def test_an_unsearchable_token_directory_gets_reading_advice(
    files_store: tuple[Path, Path], tmp_path: Path, command: list[str]
) -> None:
    config, unsearchable = files_store
    try:
        result = run_as_reader("-c", str(config), *command, cwd=tmp_path)
    finally:
        unsearchable.chmod(0o700)
    assert_reading_advice(result, unsearchable)
