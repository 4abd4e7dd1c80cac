"""The demo tells the truth every time it runs, and its configuration keeps working after it.

``harbor-secrets demo`` stops its issuer when it ends; ``harbor-secrets stand-in-issuer -c``
serves the same address and client again, so the commands the demo suggests work. Real
processes, as a newcomer runs them.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Result
from harbor_secrets.commands.stand_in import StandInOptions, stand_in_command
from harbor_secrets.errors import ConfigError
from harbor_secrets.invocation import Globals
from harbor_testkit.environ import clean_environ

Run = Callable[..., Result]
REPO = Path(__file__).resolve().parents[1]


def test_a_second_demo_run_does_not_claim_nothing_was_stored(tmp_path: Path, run_cli: Run) -> None:
    directory = tmp_path / "demo"
    first = run_cli("demo", "--directory", str(directory))
    assert first.code == 0, first.output
    assert "first sync: nothing stored yet" in first.stdout
    second = run_cli("demo", "--directory", str(directory))
    assert second.code == 0, second.output
    assert "nothing stored yet" not in second.stdout
    assert "already holds fresh tokens" in second.stdout
    assert "0 written, 4 fresh" in second.stdout
    assert "(mode 0600)" in second.stdout  # not Python's 0o600
    assert "harbor-secrets stand-in-issuer -c" in second.stdout


def start_stand_in(*args: str, cwd: Path) -> tuple[subprocess.Popen[str], str]:
    """``harbor-secrets stand-in-issuer ARGS`` in the background, once it listens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "harbor_secrets", "stand-in-issuer", *args],
        cwd=cwd,
        env=clean_environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("stand-in issuer listening on"):
        process.kill()
        pytest.fail(f"the stand-in did not start: {line}{process.communicate()[1]}")
    return process, line


def test_the_stand_in_command_serves_the_demos_configuration_again(
    tmp_path: Path, run_cli: Run
) -> None:
    directory = tmp_path / "demo"
    assert run_cli("demo", "--directory", str(directory)).code == 0
    config = str(directory / "harbor-secrets.toml")
    process, line = start_stand_in("-c", config, cwd=tmp_path)
    try:
        port = line.split("http://127.0.0.1:", 1)[1].split()[0]
        assert f"127.0.0.1:{port}" in (directory / "harbor-secrets.toml").read_text()
        # the tokens the demo's own issuer stored are accepted by this one
        stored = run_cli("-c", config, "verify", "-e", "sandbox", "--sink", "local")
        assert stored.code == 0, stored.output
        fresh = run_cli("-c", config, "verify", "-e", "production", "-s", "tower_access")
        assert fresh.code == 0, fresh.output
        # a second one finds the port taken: a usage error that says what to do
        taken = run_cli("stand-in-issuer", "-c", config)
        assert taken.code == 2, taken.output
        assert f"cannot listen on 127.0.0.1:{port}" in taken.stderr
        assert "another program holds the port" in taken.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_the_stand_in_refuses_a_configuration_it_cannot_serve(run_cli: Run) -> None:
    result = run_cli("stand-in-issuer", "-c", str(REPO / "config.example.toml"))
    assert result.code == 2
    assert "not a loopback http:// address" in result.stderr


def test_the_stand_in_takes_a_configuration_or_a_client_not_both(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be combined with -c"):
        stand_in_command(Globals(config=str(tmp_path / "x.toml")), StandInOptions(port=8401))
    with pytest.raises(ConfigError, match="--client-secret-file"):
        stand_in_command(Globals(), StandInOptions(client_id="x"))
