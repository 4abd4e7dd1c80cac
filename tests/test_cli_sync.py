"""End to end: the real CLI process, the stand-in issuer over loopback HTTP, a real env file."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from dotenv import dotenv_values

from conftest import CLIENT_SECRET, Result, envfile_config
from harbor_secrets.stand_in_issuer import StandInIssuer

Run = Callable[..., Result]
NAMES = [
    f"HARBOR_{env}_{scope}_{suffix}"
    for env in ("PRODUCTION", "SANDBOX")
    for scope in ("SERVICE_PROVIDER", "TOWER_ACCESS")
    for suffix in ("ACCESS_TOKEN", "EXPIRES_AT")
]


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "harbor.toml"
    path.write_text(text, encoding="utf-8")
    return path


def assert_no_secrets(issuer: StandInIssuer, *texts: str) -> None:
    values = [CLIENT_SECRET, *issuer.issued]
    for text in texts:
        for value in values:
            assert value not in text


def test_sync_writes_both_scopes_then_a_second_run_sends_nothing(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    config = write_config(tmp_path, envfile_config(issuer.url))
    first = run_cli("-c", str(config), "-vv", "sync")
    assert first.code == 0, first.output
    assert issuer.token_requests == 4
    env_file = tmp_path / "harbor.env"
    values = dotenv_values(env_file)
    assert sorted(values) == sorted(NAMES)
    assert set(issuer.issued) == {values[n] for n in NAMES if n.endswith("ACCESS_TOKEN")}
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert "4 written" in first.stdout
    assert_no_secrets(issuer, first.stdout, first.stderr)

    before = env_file.read_bytes()
    mtime = env_file.stat().st_mtime_ns
    second = run_cli("-c", str(config), "sync", "--output", "json")
    assert second.code == 0, second.output
    report = json.loads(second.stdout)
    assert report["counts"]["fresh"] == 4
    assert report["counts"]["written"] == 0
    assert report["token_requests"] == 0
    assert issuer.token_requests == 4
    assert env_file.read_bytes() == before
    assert env_file.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("verbosity", [[], ["-v"], ["-vv"], ["-vv", "--log-format", "json"]])
def test_wrong_client_secret_exits_1_and_changes_nothing(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run, verbosity: list[str]
) -> None:
    config = write_config(tmp_path, envfile_config(issuer.url))
    assert run_cli("-c", str(config), "sync").code == 0
    env_file = tmp_path / "harbor.env"
    before = env_file.read_bytes()
    wrong = "canary-wrong-secret-d41d8c"
    result = run_cli(
        "-c", str(config), *verbosity, "sync", "--force", env={"HARBOR_CLIENT_SECRET": wrong}
    )
    assert result.code == 1, result.output
    assert env_file.read_bytes() == before
    assert "check the client id" in result.output
    assert "4 failed" in result.stdout
    assert_no_secrets(issuer, result.stdout, result.stderr)
    assert wrong not in result.output


def test_dry_run_fetches_and_writes_nothing(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    config = write_config(tmp_path, envfile_config(issuer.url))
    result = run_cli("-c", str(config), "sync", "--dry-run")
    assert result.code == 0, result.output
    assert "4 would be written" in result.stdout
    assert issuer.token_requests == 0
    assert not (tmp_path / "harbor.env").exists()


def test_bad_config_exits_2_before_any_network_call(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    config = write_config(tmp_path, envfile_config(issuer.url, extra="[bogus]\n"))
    result = run_cli("-c", str(config), "sync")
    assert result.code == 2
    assert "bogus" in result.stderr
    assert "fix:" in result.stderr
    missing = write_config(tmp_path, envfile_config(issuer.url, secret_ref="env:NOT_SET_ANYWHERE"))
    result = run_cli("-c", str(missing), "sync")
    assert result.code == 2
    assert "NOT_SET_ANYWHERE" in result.stderr
    assert issuer.token_requests == 0
    assert not (tmp_path / "harbor.env").exists()


def test_unreachable_issuer_exits_1(tmp_path: Path, run_cli: Run) -> None:
    # A port nobody listens on: connection refused, retried within the budget, then exit 1.
    text = envfile_config("http://127.0.0.1:9", extra="") + (
        '\n[http]\ntotal_budget = "2s"\nconnect_timeout = "0.5s"\n'
    )
    config = write_config(tmp_path, text)
    result = run_cli("-c", str(config), "sync", "--output", "json")
    assert result.code == 1, result.output
    assert not (tmp_path / "harbor.env").exists()
    report = json.loads(result.stdout)
    assert report["counts"]["failed"] == 4
    assert report["token_requests"] >= 4  # a failed run still reports what it sent


def test_unrelated_lines_survive_a_sync(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    env_file = tmp_path / "harbor.env"
    env_file.write_text("# keep me\nDATABASE_URL='postgres://x'\n", encoding="utf-8")
    config = write_config(tmp_path, envfile_config(issuer.url))
    assert run_cli("-c", str(config), "sync").code == 0
    text = env_file.read_text(encoding="utf-8")
    assert text.startswith("# keep me\nDATABASE_URL='postgres://x'\n")
    assert dotenv_values(env_file)["DATABASE_URL"] == "postgres://x"


def test_status_reports_each_token(tmp_path: Path, issuer: StandInIssuer, run_cli: Run) -> None:
    config = write_config(tmp_path, envfile_config(issuer.url))
    missing = run_cli("-c", str(config), "status")
    assert missing.code == 1
    assert "missing" in missing.stdout
    assert run_cli("-c", str(config), "sync").code == 0
    result = run_cli("-c", str(config), "status", "--output", "json")
    assert result.code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert {row["state"] for row in data["tokens"]} == {"fresh"}
    assert all(250 < row["expires_in_seconds"] <= 300 for row in data["tokens"])
    assert issuer.token_requests == 4
    assert_no_secrets(issuer, result.stdout, result.stderr)


def test_token_prints_only_the_token(tmp_path: Path, issuer: StandInIssuer, run_cli: Run) -> None:
    config = write_config(tmp_path, envfile_config(issuer.url))
    result = run_cli(
        "-c", str(config), "token", "--tower-id", "0100000000000a3f", "--scope", "tower_access"
    )
    assert result.code == 0, result.output
    assert result.stdout.strip() in issuer.issued
    assert result.stdout.count("\n") == 1
    assert issuer.requests[-1].scope == "tower_access"


def test_verify_fresh_and_stored_tokens(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    config = write_config(tmp_path, envfile_config(issuer.url))
    ok = run_cli("-c", str(config), "verify", "-e", "sandbox")
    assert ok.code == 0, ok.output
    assert ok.stdout.startswith("ok:")
    no_token = run_cli("-c", str(config), "verify", "-e", "sandbox", "--sink", "local")
    assert no_token.code == 1
    assert "run harbor-secrets sync first" in no_token.stderr
    assert run_cli("-c", str(config), "sync").code == 0
    stored = run_cli("-c", str(config), "verify", "-e", "sandbox", "--sink", "local")
    assert stored.code == 0, stored.output
    env_file = tmp_path / "harbor.env"
    env_file.write_text(
        env_file.read_text().replace(
            dotenv_values(env_file)["HARBOR_SANDBOX_SERVICE_PROVIDER_ACCESS_TOKEN"] or "",
            "not-a-token-harbor-knows",
        )
    )
    rejected = run_cli("-c", str(config), "verify", "-e", "sandbox", "--sink", "local")
    assert rejected.code == 1
    assert "401" in rejected.stderr
    assert "credentials and environment" in rejected.stderr


def test_config_check_redacts_and_warns(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    text = envfile_config(issuer.url).replace('refresh_before = "150s"', 'refresh_before = "30s"')
    config = write_config(tmp_path, text)
    result = run_cli("-c", str(config), "config", "check")
    assert result.code == 0, result.output
    assert "env:HARBOR_CLIENT_SECRET" in result.stdout
    assert "schedule period" in result.stdout
    assert "HARBOR_SANDBOX_TOWER_ACCESS" in result.stdout
    assert_no_secrets(issuer, result.stdout, result.stderr)
    data = json.loads(run_cli("-c", str(config), "config", "check", "-o", "json").stdout)
    assert data["credentials"]["main"]["client_secret"] == "env:HARBOR_CLIENT_SECRET"
    assert issuer.token_requests == 0


def test_config_from_environment_variable(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    config = write_config(tmp_path, envfile_config(issuer.url))
    result = run_cli("sync", env={"HARBOR_SECRETS_CONFIG": str(config)})
    assert result.code == 0, result.output
    no_config = run_cli("sync")
    assert no_config.code == 2
    assert "HARBOR_SECRETS_CONFIG" in no_config.stderr


def test_environment_override_by_variable(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    config = write_config(
        tmp_path, envfile_config("https://accounts.invalid", environments='["sandbox"]')
    )
    result = run_cli(
        "-c",
        str(config),
        "sync",
        env={"HARBOR_SANDBOX_ACCOUNTS_URL": issuer.url, "HARBOR_SANDBOX_API_URL": issuer.url},
    )
    assert result.code == 0, result.output
    assert issuer.token_requests == 2


def test_environment_command(run_cli: Run) -> None:
    assert run_cli("environment", "0100000000000a3f").stdout.strip() == "sandbox"
    data = json.loads(run_cli("environment", "1000000000000B2C", "-o", "json").stdout)
    assert data["environment"] == "production"
    assert data["tower_id"] == "1000000000000b2c"  # as Harbor's apps write it in API paths
    assert data["test_token_url"] == "https://api.harborlockers.com/api/v1/login/test-token"
    bad = run_cli("environment", "2200000000000001")
    assert bad.code == 2
    assert "10 (production) or 01 (sandbox)" in bad.stderr
    assert "no tower prefix" in bad.stderr  # a development tower: say there is none to read
    short = run_cli("environment", "0100000123")
    assert short.code == 2
    assert "16 hexadecimal characters" in short.stderr


def test_providers_lists_installed_and_missing(run_cli: Run) -> None:
    data = json.loads(run_cli("providers", "-o", "json").stdout)
    by_name = {item["name"]: item for item in data}
    assert by_name["envfile"]["status"] == "installed"
    assert by_name["envfile"]["distribution"] == "harbor-secrets-envfile"
    for item in data:
        if item["status"] != "installed":
            assert "pip install" in item["install"]


def test_help_teaches_every_command(run_cli: Run) -> None:
    top = run_cli("--help")
    assert top.code == 0
    assert "Exit codes" in top.stdout
    for command in (
        ["sync"],
        ["status"],
        ["token"],
        ["verify"],
        ["environment"],
        ["providers"],
        ["config", "check"],
        ["demo"],
    ):
        result = run_cli(*command, "--help")
        assert result.code == 0, command
        assert "Examples:" in result.stdout, command


def test_version_and_usage_errors(run_cli: Run) -> None:
    from harbor_secrets import __version__

    assert run_cli("--version").stdout.strip().endswith(__version__)
    assert run_cli("sync", "--bogus").code == 2
    assert run_cli("nosuchcommand").code == 2


def test_demo_writes_both_scopes(tmp_path: Path, run_cli: Run) -> None:
    result = run_cli("demo", "--directory", str(tmp_path / "demo"))
    assert result.code == 0, result.output
    values = dotenv_values(tmp_path / "demo" / "harbor.env")
    assert sorted(values) == sorted(NAMES)
    assert "token requests sent by the second sync: 0" in result.stdout
    for name in NAMES:
        if name.endswith("ACCESS_TOKEN"):
            assert (values[name] or "") not in result.stdout
    assert os.stat(tmp_path / "demo" / "client-secret").st_mode & 0o077 == 0


def test_config_check_skip_references_needs_no_secret_files(tmp_path: Path, run_cli: Run) -> None:
    # A provider that reads file: references while it is built (Vault's AppRole) must still
    # be checkable in CI, where the secret files do not exist.
    text = """
[credentials.main]
client_id = "id"
client_secret = "file:/nonexistent/client-secret"

[sinks.vault]
provider = "vault"
address = "https://vault.example.com:8200"

[sinks.vault.auth]
method = "approle"
role_id = "file:/nonexistent/role-id"
secret_id = "file:/nonexistent/secret-id"

[[targets]]
environments = ["sandbox"]
"""
    config = write_config(tmp_path, text)
    strict = run_cli("-c", str(config), "config", "check")
    assert strict.code == 2
    assert "/nonexistent/" in strict.stderr
    skipped = run_cli("-c", str(config), "config", "check", "--skip-references")
    assert skipped.code == 0, skipped.output
    assert "file:/nonexistent/client-secret" in skipped.stdout


def test_token_with_a_misspelled_scope_exits_2_before_any_request(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    config = write_config(tmp_path, envfile_config(issuer.url))
    result = run_cli("-c", str(config), "token", "-e", "sandbox", "-s", "tower-access")
    assert result.code == 2, result.output
    assert "service_provider" in result.stderr
    assert "tower_access" in result.stderr
    assert issuer.token_requests == 0


def test_the_sync_table_says_why_a_token_failed_not_just_a_code(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    config = write_config(tmp_path, envfile_config(issuer.url, environments='["sandbox"]'))
    result = run_cli("-c", str(config), "sync", env={"HARBOR_CLIENT_SECRET": "wrong-secret"})
    assert result.code == 1
    rows = [line for line in result.stdout.splitlines() if line.startswith("main/")]
    assert len(rows) == 2
    for row in rows:
        assert "failed" in row
        assert "invalid_client" in row  # what stderr says, not only "token-request-failed"
        assert "check the client id" in row


@pytest.mark.parametrize("command", ["token", "verify"])
def test_an_interactive_failure_does_not_talk_about_a_scheduled_run(
    tmp_path: Path, run_cli: Run, command: str
) -> None:
    closed = "http://127.0.0.1:9"  # discard: nothing listens
    text = envfile_config(closed, environments='["sandbox"]') + "\n[http]\nmax_attempts = 1\n"
    config = write_config(tmp_path, text)
    result = run_cli("-c", str(config), command, "-e", "sandbox")
    assert result.code == 1, result.output
    assert "connection refused" in result.stderr
    assert "scheduled" not in result.stderr
    assert "next run" not in result.stderr
