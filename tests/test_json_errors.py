"""With ``-o json``, stdout is JSON whatever happens: a result, or the error as an object.

``… -o json | jq`` used to get empty input on any failure (the message went to stderr only),
so a script could not tell a configuration mistake (exit 2) from a run-time failure (exit 1)
by reading its input. The one error handler (``cli.main``) now also prints
``{"ok": false, "exit_code": …, "error": …, "fix": …}`` on stdout, scrubbed, when JSON was
asked for; the message on stderr is unchanged. And ``verify`` has a JSON result of its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import CLIENT_SECRET, Result, envfile_config
from harbor_secrets.stand_in_issuer import StandInIssuer

Run = Callable[..., Result]


@pytest.fixture
def config(tmp_path: Path, issuer: StandInIssuer) -> Path:
    path = tmp_path / "harbor.toml"
    path.write_text(envfile_config(issuer.url), encoding="utf-8")
    return path


def error_object(result: Result) -> dict[str, Any]:
    assert CLIENT_SECRET not in result.output
    data: dict[str, Any] = json.loads(result.stdout)
    assert set(data) == {"ok", "exit_code", "error", "fix"}
    assert data["ok"] is False
    assert data["exit_code"] == result.code
    return data


def test_a_configuration_error_is_a_json_object_on_stdout(
    config: Path, tmp_path: Path, run_cli: Run
) -> None:
    result = run_cli("-c", str(tmp_path / "missing.toml"), "sync", "-o", "json")
    assert result.code == 2
    data = error_object(result)
    assert data["error"] == f"{tmp_path / 'missing.toml'}: file not found"
    assert data["fix"] == "check the path given to --config"
    assert "file not found" in result.stderr  # people still read stderr


def test_a_run_time_failure_is_a_json_object_on_stdout(
    config: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    """A rejected client secret: exit 1, and the JSON says so without the secret."""
    result = run_cli(
        "-o",
        "json",
        "-c",
        str(config),
        "token",
        "-e",
        "sandbox",
        env={"HARBOR_CLIENT_SECRET": "wrong-" + CLIENT_SECRET},
    )
    assert result.code == 1, result.output
    data = error_object(result)
    assert "rejected" in data["error"] or "invalid_client" in data["error"], data
    assert data["fix"]
    assert "wrong-" not in result.output


def test_a_bad_option_value_after_o_json_is_a_json_object(config: Path, run_cli: Run) -> None:
    """-o is read first (eagerly), so the options after it fail in JSON too."""
    result = run_cli("sync", "-o", "json", "-c", str(config), "--watch", "--listen", ":9464")
    assert result.code == 2
    assert "--listen" in error_object(result)["error"]


def test_text_output_keeps_stdout_empty_on_error(tmp_path: Path, run_cli: Run) -> None:
    result = run_cli("-c", str(tmp_path / "missing.toml"), "sync")
    assert result.code == 2
    assert result.stdout == ""


@pytest.mark.parametrize("where", ["before", "after"])
def test_verify_has_a_json_result(
    config: Path, issuer: StandInIssuer, run_cli: Run, where: str
) -> None:
    args = ["verify", "-c", str(config), "-e", "sandbox"]
    args = ["-o", "json", *args] if where == "before" else [*args, "-o", "json"]
    result = run_cli(*args)
    assert result.code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert data["status"] == 200
    assert data["environment"] == "sandbox"
    assert data["token"] == "fetched"
    assert data["test_token_url"] == issuer.test_token_url
    assert issuer.test_token_requests == 1
