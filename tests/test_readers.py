"""``get`` and ``exec``: the stored token for readers, every exit path, through the real CLI.

They only read: no request reaches the issuer, and the client secret is never resolved
(here its reference points at a file that does not exist and HARBOR_CLIENT_SECRET is unset).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import CLIENT_ID, Result, envfile_config
from harbor_secrets.record import format_time
from harbor_secrets.stand_in_issuer import StandInIssuer

Run = Callable[..., Result]
TOKEN = "HARBOR_SANDBOX_SERVICE_PROVIDER_ACCESS_TOKEN"
EXPIRES = "HARBOR_SANDBOX_SERVICE_PROVIDER_EXPIRES_AT"
NO_SECRET = {"HARBOR_CLIENT_SECRET": ""}


@pytest.fixture
def synced(tmp_path: Path, issuer: StandInIssuer, run_cli: Run) -> Path:
    """A config whose env file holds fresh tokens; then its secret reference is broken."""
    config = tmp_path / "harbor.toml"
    config.write_text(envfile_config(issuer.url), encoding="utf-8")
    assert run_cli("sync", "-c", str(config)).code == 0
    text = config.read_text().replace("env:HARBOR_CLIENT_SECRET", "file:/nonexistent/secret")
    config.write_text(text, encoding="utf-8")
    return config


def stored_token(tmp_path: Path) -> str:
    for line in (tmp_path / "harbor.env").read_text().splitlines():
        if line.startswith(TOKEN + "="):
            return line.split("=", 1)[1].strip("'")
    raise AssertionError("no token in the env file")


def set_expiry(tmp_path: Path, moment: datetime) -> None:
    path = tmp_path / "harbor.env"
    lines = [
        f"{EXPIRES}='{format_time(moment)}'" if line.startswith(EXPIRES + "=") else line
        for line in path.read_text().splitlines()
    ]
    path.write_text("\n".join(lines) + "\n")


def test_get_prints_the_bare_token_and_nothing_else_without_any_secret_or_request(
    synced: Path, tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    before = len(issuer.requests)
    result = run_cli(
        "get", "-c", str(synced), "-e", "sandbox", "-s", "service_provider", env=NO_SECRET
    )
    assert result.code == 0, result.output
    assert result.stdout == stored_token(tmp_path) + "\n"
    assert result.stderr == ""
    assert len(issuer.requests) == before  # nothing reached the issuer


def test_get_by_tower_id_and_json_record(
    synced: Path, tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    result = run_cli(
        "get",
        "-c",
        str(synced),
        "--tower-id",
        "0100000000000a3f",
        "-s",
        "tower_access",
        "-o",
        "json",
    )
    assert result.code == 0, result.output
    record = json.loads(result.stdout)
    assert record["scope"] == "tower_access"
    assert record["environment"] == "sandbox"
    assert record["access_token"] in issuer.issued
    assert record["issued_at"] is None  # an env file keeps only the token and its expiry


def test_a_missing_token_says_so_and_what_to_run(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    config = tmp_path / "harbor.toml"
    config.write_text(envfile_config(issuer.url), encoding="utf-8")
    result = run_cli("get", "-c", str(config), "-e", "sandbox", env=NO_SECRET)
    assert result.code == 1
    assert result.stdout == ""
    assert "no stored token for main/sandbox/service_provider" in result.stderr
    assert "harbor-secrets sync" in result.stderr
    assert issuer.token_requests == 0


def test_an_unreadable_store_says_so(tmp_path: Path, issuer: StandInIssuer, run_cli: Run) -> None:
    (tmp_path / "harbor.env").mkdir()  # a directory where the file should be
    config = tmp_path / "harbor.toml"
    config.write_text(envfile_config(issuer.url), encoding="utf-8")
    result = run_cli("get", "-c", str(config), "-e", "sandbox")
    assert result.code == 1
    assert "could not be read" in result.stderr
    assert "is a directory" in result.stderr
    assert "harbor-secrets status" in result.stderr


def test_an_expired_token_is_refused(synced: Path, tmp_path: Path, run_cli: Run) -> None:
    set_expiry(tmp_path, datetime.now(UTC) - timedelta(minutes=3))
    result = run_cli("get", "-c", str(synced), "-e", "sandbox")
    assert result.code == 1
    assert result.stdout == ""
    assert "expired 3m" in result.stderr
    assert "harbor-secrets status" in result.stderr


def test_a_token_with_too_little_left_is_refused(synced: Path, run_cli: Run) -> None:
    result = run_cli("get", "-c", str(synced), "-e", "sandbox", "--min-remaining", "10m")
    assert result.code == 1
    assert "less than --min-remaining 10m" in result.stderr
    assert run_cli("get", "-c", str(synced), "-e", "sandbox", "--min-remaining", "1m").code == 0


def test_the_first_sink_holding_the_token_answers_and_sink_picks_one(
    synced: Path, tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    text = synced.read_text()
    text = text.replace('sinks = ["local"]', 'sinks = ["empty", "local"]')
    text += '\n[sinks.empty]\nprovider = "envfile"\npath = "empty.env"\n'
    synced.write_text(text, encoding="utf-8")
    assert (
        run_cli("get", "-c", str(synced), "-e", "sandbox").stdout == stored_token(tmp_path) + "\n"
    )
    only_empty = run_cli("get", "-c", str(synced), "-e", "sandbox", "--sink", "empty")
    assert only_empty.code == 1
    assert "sink 'empty' holds no token" in only_empty.stderr
    unknown = run_cli("get", "-c", str(synced), "-e", "sandbox", "--sink", "nope")
    assert unknown.code == 2
    assert "--sink" in unknown.stderr


def test_a_scope_harbor_does_not_have_is_a_usage_error(synced: Path, run_cli: Run) -> None:
    result = run_cli("get", "-c", str(synced), "-e", "sandbox", "-s", "admin")
    assert result.code == 2
    assert "'admin' is not one of Harbor's scopes" in result.stderr


@pytest.fixture
def sandbox_only(tmp_path: Path, issuer: StandInIssuer, run_cli: Run) -> Path:
    """A config that keeps only sandbox's service_provider token, synced."""
    text = envfile_config(issuer.url, environments='["sandbox"]').replace(
        'scopes = ["service_provider", "tower_access"]', 'scopes = ["service_provider"]'
    )
    config = tmp_path / "harbor.toml"
    config.write_text(text, encoding="utf-8")
    assert run_cli("sync", "-c", str(config)).code == 0
    return config


@pytest.mark.parametrize(
    ("asked", "blamed", "said"),
    [
        (
            ("--tower-id", "1000000000000b2c"),
            "--tower-id",
            "environment production (tower 1000000000000b2c is in production)",
        ),
        (("-e", "production"), "--environment", "environment production"),
        (("-e", "sandbox", "-s", "tower_access"), "--scope", "scope tower_access in sandbox"),
    ],
)
def test_a_token_no_target_keeps_blames_the_option_that_asked_for_it(
    sandbox_only: Path, run_cli: Run, asked: tuple[str, ...], blamed: str, said: str
) -> None:
    result = run_cli("get", "-c", str(sandbox_only), *asked)
    assert result.code == 2
    assert f"error: {blamed}: no target keeps a token for {said}" in result.stderr
    assert "main/sandbox/service_provider" in result.stderr  # what it could ask for


def test_a_token_as_fresh_as_promised_is_not_blamed_on_the_scheduler(
    synced: Path, run_cli: Run
) -> None:
    """Asking for more than refresh_before minus the schedule period (90 s by default) can
    fail with a perfectly healthy schedule; the refusal says so instead of blaming it."""
    result = run_cli("get", "-c", str(synced), "-e", "sandbox", "--min-remaining", "10m")
    assert result.code == 1
    assert "as fresh as promised" in result.stderr
    assert "at most --min-remaining 1m 30s" in result.stderr
    assert "should have refreshed" not in result.stderr


def test_a_refusal_names_both_promises_as_it_cannot_know_how_the_store_is_kept(
    synced: Path, tmp_path: Path, run_cli: Run
) -> None:
    """100 s left is as fresh as a scheduled sync promises (90 s), not as `sync --watch`
    (138 s): a reader cannot tell which keeps the store, so it says both, and claims no more
    than it knows (it used to quote only the scheduled floor)."""
    set_expiry(tmp_path, datetime.now(UTC) + timedelta(seconds=100))
    result = run_cli("get", "-c", str(synced), "-e", "sandbox", "--min-remaining", "2m")
    assert result.code == 1
    assert "a scheduled sync keeps at least 1m 30s" in result.stderr
    assert "sync --watch keeps at least 2m 18s" in result.stderr
    assert "as fresh as a scheduled sync promises, not as sync --watch" in result.stderr
    assert "as fresh as promised" not in result.stderr
    # Less than either promise: the refresher is to blame, whichever it is.
    set_expiry(tmp_path, datetime.now(UTC) + timedelta(seconds=60))
    late = run_cli("get", "-c", str(synced), "-e", "sandbox", "--min-remaining", "70s")
    assert late.code == 1
    assert "should have refreshed" in late.stderr
    assert "every minute, or `sync --watch`" in late.stderr


@pytest.mark.parametrize("command", ["get", "token", "verify"])
def test_a_command_that_takes_one_token_refuses_a_second_scope(
    synced: Path, run_cli: Run, command: str
) -> None:
    result = run_cli(
        command, "-c", str(synced), "-e", "sandbox", "-s", "service_provider", "-s", "tower_access"
    )
    assert result.code == 2
    assert "-s/--scope was given 2 times" in result.stderr
    assert result.stdout == ""


def test_the_min_remaining_default_reads_as_a_duration(run_cli: Run) -> None:
    text = " ".join(run_cli("get", "--help").stdout.split())
    assert "[default: 30s]" in text
    assert "(30s)" not in text


def test_get_works_on_the_demos_output(tmp_path: Path, run_cli: Run) -> None:
    demo = tmp_path / "demo"
    assert run_cli("demo", "--directory", str(demo)).code == 0
    config = demo / "harbor-secrets.toml"
    for environment in ("production", "sandbox"):
        result = run_cli("get", "-c", str(config), "-e", environment, "-s", "tower_access")
        assert result.code == 0, result.output
        assert result.stdout.count("\n") == 1
        assert len(result.stdout) > 100


# -- exec ----------------------------------------------------------------------------------


def test_exec_hands_the_token_over_in_the_env_file_names_and_passes_the_status(
    synced: Path, tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    script = (
        f'test "${TOKEN}" = "{stored_token(tmp_path)}" && test -n "${EXPIRES}" '
        f'&& echo "$#:$1" && exit 7'
    )
    before = len(issuer.requests)
    result = run_cli(
        "exec", "-c", str(synced), "-e", "sandbox", "--", "sh", "-c", script, "sh", "-x"
    )
    assert result.code == 7, result.output
    assert result.stdout == "1:-x\n"  # its own options, after --, untouched
    assert len(issuer.requests) == before


def test_exec_takes_every_scope_it_is_given(synced: Path, tmp_path: Path, run_cli: Run) -> None:
    script = (
        f'test "${TOKEN}" = "{stored_token(tmp_path)}" '
        '&& test -n "$HARBOR_SANDBOX_TOWER_ACCESS_ACCESS_TOKEN" '
        '&& test "$HARBOR_SANDBOX_TOWER_ACCESS_ACCESS_TOKEN" != "$' + TOKEN + '" '
        '&& test -n "$HARBOR_SANDBOX_TOWER_ACCESS_EXPIRES_AT" && echo both'
    )
    result = run_cli(
        "exec", "-c", str(synced), "-e", "sandbox", "-s", "service_provider", "-s",
        "tower_access", "--", "sh", "-c", script,
    )  # fmt: skip
    assert result.code == 0, result.output
    assert result.stdout == "both\n"


def test_exec_passes_a_signal_through(synced: Path, run_cli: Run) -> None:
    result = run_cli("exec", "-c", str(synced), "-e", "sandbox", "--", "sh", "-c", "kill -TERM $$")
    assert result.code == -signal.SIGTERM


def test_exec_refuses_a_short_lived_token_and_runs_nothing(
    synced: Path, tmp_path: Path, run_cli: Run
) -> None:
    marker = tmp_path / "ran"
    result = run_cli(
        "exec",
        "-c",
        str(synced),
        "-e",
        "sandbox",
        "--min-remaining",
        "6m",
        "--",
        "touch",
        str(marker),
    )
    assert result.code == 1
    assert "less than --min-remaining 6m" in result.stderr
    assert not marker.exists()


def test_exec_of_a_missing_program_exits_127(synced: Path, run_cli: Run) -> None:
    result = run_cli("exec", "-c", str(synced), "-e", "sandbox", "--", "no-such-program-here")
    assert result.code == 127
    assert "cannot run 'no-such-program-here'" in result.stderr


def test_exec_needs_a_command(synced: Path, run_cli: Run) -> None:
    assert run_cli("exec", "-c", str(synced), "-e", "sandbox").code == 2


def test_help_says_which_command_to_use_when(run_cli: Run) -> None:
    get_help = " ".join(run_cli("get", "--help").stdout.split())
    token_help = " ".join(run_cli("token", "--help").stdout.split())
    assert "never needs the client secret" in get_help
    assert "Use `token` instead only to mint" in get_help
    assert "should use `get`" in token_help
    assert "-s, --scope" in token_help
    assert "not daemons" in " ".join(run_cli("exec", "--help").stdout.split())
    assert CLIENT_ID not in get_help


def test_exec_keeps_the_configurations_secrets_out_of_the_command(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    config = tmp_path / "harbor.toml"
    config.write_text(envfile_config(issuer.url), encoding="utf-8")  # env:HARBOR_CLIENT_SECRET
    assert run_cli("sync", "-c", str(config)).code == 0
    script = 'echo "secret=${HARBOR_CLIENT_SECRET:-unset} other=$UNRELATED"'
    result = run_cli(
        "exec",
        "-c",
        str(config),
        "-e",
        "sandbox",
        "--",
        "sh",
        "-c",
        script,
        env={"UNRELATED": "kept"},
    )
    assert result.code == 0, result.output
    assert result.stdout == "secret=unset other=kept\n"


def test_exec_refuses_an_unknown_option_instead_of_running_it(synced: Path, run_cli: Run) -> None:
    result = run_cli(
        "exec", "-c", str(synced), "-e", "sandbox", "--min-remainig", "2m", "--", "true"
    )
    assert result.code == 2
    assert "No such option" in result.stderr


def test_get_from_one_sink_needs_no_other_stores_credentials(
    synced: Path, tmp_path: Path, run_cli: Run
) -> None:
    """A reader host shares the writer's config but holds no Vault token: --sink local works."""
    text = synced.read_text().replace('sinks = ["local"]', 'sinks = ["local", "vault"]')
    text += '\n[sinks.vault]\nprovider = "vault"\naddress = "https://vault.example.com:8200"\n'
    synced.write_text(text, encoding="utf-8")
    result = run_cli("get", "-c", str(synced), "-e", "sandbox", "--sink", "local")
    assert result.code == 0, result.output
    assert result.stdout == stored_token(tmp_path) + "\n"
