"""Global options go where people type them: before or after the subcommand.

``-c/--config``, ``-v``, ``--log-format`` and ``-o/--output`` are declared once and accepted
in either place; ``HARBOR_SECRETS_CONFIG`` still works. Each form runs the real CLI process.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Result, envfile_config
from harbor_secrets.stand_in_issuer import StandInIssuer

Run = Callable[..., Result]


@pytest.fixture
def config(tmp_path: Path, issuer: StandInIssuer) -> Path:
    path = tmp_path / "cfg.toml"
    path.write_text(envfile_config(issuer.url), encoding="utf-8")
    return path


def test_sync_dash_c_after_the_subcommand(config: Path, run_cli: Run) -> None:
    result = run_cli("sync", "-c", str(config))
    assert result.code == 0, result.output
    assert "4 written" in result.stdout


def test_sync_long_config_and_json_output_after_the_subcommand(config: Path, run_cli: Run) -> None:
    result = run_cli("sync", "--config", str(config), "-o", "json")
    assert result.code == 0, result.output
    assert json.loads(result.stdout)["counts"]["written"] == 4


def test_the_global_form_still_works(config: Path, run_cli: Run) -> None:
    result = run_cli("-c", str(config), "-o", "json", "sync")
    assert result.code == 0, result.output
    assert json.loads(result.stdout)["counts"]["written"] == 4


def test_the_environment_variable_still_works(config: Path, run_cli: Run) -> None:
    result = run_cli("status", "-o", "json", env={"HARBOR_SECRETS_CONFIG": str(config)})
    assert result.code == 1  # nothing synced yet: every token missing
    assert {row["state"] for row in json.loads(result.stdout)["tokens"]} == {"missing"}


def test_an_option_after_the_subcommand_wins_over_one_before(
    config: Path, tmp_path: Path, run_cli: Run
) -> None:
    result = run_cli("-c", str(tmp_path / "missing.toml"), "sync", "-c", str(config))
    assert result.code == 0, result.output


def test_verbosity_and_log_format_after_the_subcommand(config: Path, run_cli: Run) -> None:
    result = run_cli("sync", "-c", str(config), "-vv", "--log-format", "json")
    assert result.code == 0, result.output
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any(line["level"] == "debug" for line in lines)
    split = run_cli("-v", "sync", "--force", "-c", str(config), "-v")  # counts add up: debug
    assert "DEBUG" in split.stderr


@pytest.mark.parametrize(
    ("command", "rest"),
    [(("demo",), ()), (("stand-in-issuer",), ()), (("exec",), ("-e", "sandbox", "--", "true"))],
)
def test_json_output_where_a_command_has_none_is_one_usage_error_wherever_it_is_typed(
    run_cli: Run, command: tuple[str, ...], rest: tuple[str, ...]
) -> None:
    """-o is global: every command parses it, before or after its name, and one without a
    JSON form refuses it with one message (not click's "No such option" in one place)."""
    for args in (("-o", "json", *command, *rest), (*command, "-o", "json", *rest)):
        result = run_cli(*args)
        assert result.code == 2, (args, result.output)
        assert f"harbor-secrets {command[0]} has no --output json" in result.stderr, args
        assert json.loads(result.stdout)["exit_code"] == 2  # asked for JSON: the error is JSON


def test_a_bad_option_value_is_a_usage_error_naming_the_fix(config: Path, run_cli: Run) -> None:
    result = run_cli("sync", "-c", str(config), "--watch", "--listen", ":9464")
    assert result.code == 2
    assert "--listen" in result.stderr
    assert "fix:" in result.stderr


def test_an_explicit_log_format_beats_the_environment_variable_wherever_it_is_typed(
    config: Path, run_cli: Run
) -> None:
    env = {"HARBOR_SECRETS_LOG_FORMAT": "json"}
    for args in (
        ("--log-format", "text", "-v", "sync", "-c", str(config)),
        ("-v", "sync", "-c", str(config), "--log-format", "text"),
    ):
        result = run_cli(*args, env=env)
        assert result.code == 0, result.output
        assert "INFO" in result.stderr
        assert not result.stderr.lstrip().startswith("{")
    from_env = run_cli("-v", "sync", "-c", str(config), env=env)
    assert from_env.stderr.lstrip().startswith("{")


@pytest.mark.parametrize(
    "args",
    [
        ("demo", "-c", "x.toml"),
        ("-c", "x.toml", "demo"),
        ("environment", "0100000000000a3f", "-c", "x.toml"),
        ("--config", "x.toml", "providers"),
    ],
)
def test_commands_that_read_no_configuration_refuse_one(
    run_cli: Run, args: tuple[str, ...]
) -> None:
    """Accepting -c and ignoring it would let people believe their file was used."""
    result = run_cli(*args)
    assert result.code == 2, result.output
    assert "reads no configuration" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("option", "fix"),
    [
        ({"force": True}, "run `harbor-secrets sync --force` once, without --watch"),
        ({"dry_run": True}, "run `harbor-secrets sync --dry-run` without --watch"),
        ({"metrics_file": Path("m.prom")}, "--listen"),
        ({"pushgateway": "https://pg.example:9091"}, "--listen"),
    ],
)
def test_each_watch_refusal_gives_a_fix_about_that_option(
    option: dict[str, object], fix: str
) -> None:
    from harbor_secrets.commands.sync import SyncOptions
    from harbor_secrets.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        SyncOptions(watch=True, **option).check("text")  # type: ignore[arg-type]
    assert fix in (caught.value.fix or "")


def test_json_output_with_watch_points_at_json_logs() -> None:
    from harbor_secrets.commands.sync import SyncOptions
    from harbor_secrets.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        SyncOptions(watch=True).check("json")
    assert "--log-format json" in (caught.value.fix or "")
    assert "--force" not in (caught.value.fix or "")


def test_config_help_teaches_with_examples(run_cli: Run) -> None:
    text = run_cli("config", "--help").stdout
    assert "Examples:" in text
    assert "harbor-secrets config check -c harbor-secrets.toml" in text
    assert "--skip-references" in text
