"""Shared fixtures for the core's tests: the stand-in issuer, configs, and the CLI."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_secrets.testing.memory import reset_memory_stores
from harbor_testkit.cli_text import issuer_sections
from harbor_testkit.environ import clean_environ

CLIENT_ID = "harbor-test-client"
# Canary values: tests assert these never appear in any output.
CLIENT_SECRET = "canary-client-secret-7f3a9c"


@pytest.fixture
def issuer() -> Iterator[StandInIssuer]:
    with StandInIssuer(clients={CLIENT_ID: CLIENT_SECRET}, token_lifetime=300) as server:
        yield server


@pytest.fixture
def shared_directory() -> Iterator[Path]:
    """A directory every user may enter and write, removed after: for a test that runs a
    process as another user (pytest's own directories are root's, 0700)."""
    directory = Path(tempfile.mkdtemp(prefix="harbor-shared-"))
    directory.chmod(0o777)
    try:
        yield directory
    finally:
        subprocess.run(["rm", "-rf", str(directory)], check=True)


@pytest.fixture(autouse=True)
def _fresh_memory_stores() -> Iterator[None]:
    reset_memory_stores()
    yield
    reset_memory_stores()


def envfile_config(
    issuer_url: str,
    *,
    env_path: str = "harbor.env",
    secret_ref: str = "env:HARBOR_CLIENT_SECRET",
    environments: str = '["production", "sandbox"]',
    extra: str = "",
) -> str:
    issuer = issuer_sections(
        issuer_url, CLIENT_ID, environments=("production", "sandbox"), secret_ref=secret_ref
    )
    return f"""
[refresh]
refresh_before = "150s"

{issuer}

[sinks.local]
provider = "envfile"
path = "{env_path}"

[[targets]]
credentials = "main"
environments = {environments}
scopes = ["service_provider", "tower_access"]
sinks = ["local"]
{extra}
"""


def minimal_config(
    *,
    secret: str = "env:SECRET",
    sinks: str = "",
    target: str = 'environments = ["sandbox"]',
) -> str:
    """The smallest configuration the loader accepts (one credential, one env-file sink
    ``local``, one target on the built-in sandbox), for tests about one setting: ``secret``
    is the client_secret reference, ``sinks`` more [sinks.*] tables, ``target`` the body of
    the one [[targets]] table."""
    return f"""
[credentials.main]
client_id = "id"
client_secret = "{secret}"

[sinks.local]
provider = "envfile"
path = "harbor.env"
{sinks}
[[targets]]
{target}
"""


def help_text(*command: str) -> str:
    """What ``harbor-secrets COMMAND --help`` prints, from a real process (the help the
    docs are checked against); a failing --help fails the test with its stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "harbor_secrets", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., Result]:
    """Run ``python -m harbor_secrets`` as a real process, as cron would."""

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Result:
        environ = clean_environ({"HARBOR_CLIENT_SECRET": CLIENT_SECRET, **(env or {})})
        completed = subprocess.run(
            [sys.executable, "-m", "harbor_secrets", *args],
            capture_output=True,
            text=True,
            env=environ,
            cwd=cwd or tmp_path,
            timeout=60,
            check=False,
        )
        return Result(completed.returncode, completed.stdout, completed.stderr)

    return run


@pytest.fixture(scope="session")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The docs' servers (tests/doc_servers.py), synced, shared by every docs test."""
    from doc_servers import start_stores

    yield from start_stores(tmp_path_factory.mktemp("docs"))
