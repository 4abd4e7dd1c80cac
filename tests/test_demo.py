"""The demo tells the truth every time it runs, and its configuration keeps working after it.

``harbor-secrets demo`` stops its issuer when it ends; ``harbor-secrets stand-in-issuer -c``
serves the same address and client again, so the commands the demo suggests work. Real
processes, as a newcomer runs them.
"""

from __future__ import annotations

import os
import signal
import socket
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
    # run as `python -m harbor_secrets`, so that is the command it tells the user to run
    assert f"{sys.executable} -m harbor_secrets stand-in-issuer -c" in second.stdout


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


# --- its files: never through a link -----------------------------------------------------------


@pytest.mark.parametrize("name", ["client-secret", "harbor-secrets.toml"])
def test_the_demo_never_writes_through_a_symbolic_link(
    tmp_path: Path, run_cli: Run, name: str
) -> None:
    """A link planted in the demo's directory (a shared /tmp, say) must not receive the
    client secret or the configuration: the demo refuses it and its target is untouched."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n", encoding="utf-8")
    victim.chmod(0o644)
    directory = tmp_path / "demo"
    directory.mkdir()
    (directory / name).symlink_to(victim)
    result = run_cli("demo", "--directory", str(directory))
    assert result.code == 2, result.output
    assert "--directory" in result.stderr
    assert "symbolic link" in result.stderr
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert victim.stat().st_mode & 0o777 == 0o644
    assert not (directory / "harbor.env").exists()  # refused before anything ran


def test_the_demos_help_suggests_no_shared_directory(run_cli: Run) -> None:
    assert "/tmp" not in run_cli("demo", "--help").stdout


# --- what it says about what it found ------------------------------------------------------------


def _age(env_file: Path, scopes: tuple[str, ...], expires_at: str) -> None:
    """Give the tokens of ``scopes`` (in both environments) this expiry, as time would."""
    lines = []
    for line in env_file.read_text(encoding="utf-8").splitlines():
        name = line.partition("=")[0]
        if name.endswith("_EXPIRES_AT") and any(f"_{s.upper()}_" in name for s in scopes):
            line = f"{name}='{expires_at}'"
        lines.append(line)
    env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")


def heading(result: Result) -> str:
    return next(line for line in result.stdout.splitlines() if line.startswith("== first sync"))


def test_the_next_days_rerun_says_the_stored_tokens_expired(tmp_path: Path, run_cli: Run) -> None:
    """The common rerun is the next day: every stored token has expired. "Nothing stored
    yet" would be false; the heading comes from each row's own reason."""
    directory = tmp_path / "demo"
    assert run_cli("demo", "--directory", str(directory)).code == 0
    env_file = directory / "harbor.env"
    _age(env_file, ("service_provider", "tower_access"), "2020-01-01T00:00:00Z")
    expired = run_cli("demo", "--directory", str(directory))
    assert expired.code == 0, expired.output
    assert heading(expired) == (
        "== first sync: harbor.env holds tokens an earlier demo run stored (4 expired), so "
        "every token is fetched and written"
    )
    _age(env_file, ("tower_access",), "2020-01-01T00:00:00Z")
    mixed = run_cli("demo", "--directory", str(directory))
    assert heading(mixed) == (
        "== first sync: harbor.env holds tokens an earlier demo run stored (2 expired, 2 "
        "still fresh), so the 2 that are not fresh are fetched and written"
    )


# --- its port, when run again -----------------------------------------------------------------


def _port(result: Result) -> int:
    line = result.stdout.splitlines()[0]
    return int(line.split("http://127.0.0.1:", 1)[1].split()[0])


def test_a_rerun_keeps_the_port_its_configuration_names_and_says_when_it_cannot(
    tmp_path: Path, run_cli: Run
) -> None:
    """A stand-in issuer started from the demo's configuration keeps matching it after a
    rerun: the demo reuses the port the file names while it is free."""
    directory = tmp_path / "demo"
    first = run_cli("demo", "--directory", str(directory))
    assert first.code == 0, first.output
    port = _port(first)
    again = run_cli("demo", "--directory", str(directory))
    assert _port(again) == port
    assert f"port {port}, as the existing configuration names" in again.stdout
    with socket.socket() as holder:  # what a stand-in left running does to the port
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
        holder.bind(("127.0.0.1", port))
        holder.listen()
        moved = run_cli("demo", "--directory", str(directory))
    assert moved.code == 0, moved.output
    assert _port(moved) != port
    assert f"port {port}, which the existing configuration names, is taken" in moved.stdout
    assert f"127.0.0.1:{_port(moved)}" in (directory / "harbor-secrets.toml").read_text()


def test_a_refused_connection_on_this_host_is_not_blamed_on_an_overloaded_issuer(
    tmp_path: Path, run_cli: Run
) -> None:
    """The demo's issuer stopped; `verify` on its configuration finds nothing listening."""
    directory = tmp_path / "demo"
    assert run_cli("demo", "--directory", str(directory)).code == 0
    config = directory / "harbor-secrets.toml"
    config.write_text(
        config.read_text(encoding="utf-8") + "\n[http]\nmax_attempts = 1\n", encoding="utf-8"
    )
    result = run_cli("-c", str(config), "verify", "-e", "sandbox")
    assert result.code == 1, result.output
    assert "connection refused" in result.stderr
    assert "nothing listens on that port of this host" in result.stderr
    assert "stand-in-issuer -c" in result.stderr
    assert "overloaded" not in result.stderr


# --- the commands it suggests run as printed -------------------------------------------------


def test_the_commands_it_suggests_run_as_printed_without_the_venv_on_path(tmp_path: Path) -> None:
    """`make demo` runs .venv/bin/harbor-secrets, which is not on PATH: a bare
    `harbor-secrets` in the hints would be "command not found" (127)."""
    executable = Path(sys.executable).parent / "harbor-secrets"
    assert executable.is_file(), "the console script is installed next to the interpreter"
    environ = clean_environ({"PATH": "/usr/bin:/bin"})
    relative = os.path.relpath(executable, tmp_path)
    demo = subprocess.run(
        [relative, "demo", "--directory", "demo-output"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    suggested = [line.strip() for line in demo.stdout.splitlines() if " status" in line]
    assert suggested, demo.stdout
    status = suggested[0]
    assert status.startswith(relative), status
    result = subprocess.run(
        ["sh", "-c", status],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fresh" in result.stdout
