"""``config check`` shows what will be used, in the user's words: where the client secret goes
(each environment's token URL and where it came from), and every sink's settings without a
Python repr in sight. Run in-process: the command is a plain function."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harbor_secrets.commands.config_check import config_check_command
from harbor_secrets.invocation import Globals

CONFIG = """
[environments.production]
api_url = "https://api.harborlockers.com/api/v1/login/test-token"

[credentials.main]
client_id = "id"
client_secret = "env:HARBOR_CLIENT_SECRET"

[sinks.local]
provider = "envfile"
path = "harbor.env"

[sinks.params]
provider = "aws-ssm"
region = "eu-west-1"
tags = {team = "payments"}

[[targets]]
environments = ["sandbox", "production"]
"""
ELSEWHERE = "https://elsewhere.example"


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], output: str = "text") -> str:
    path = tmp_path / "harbor.toml"
    path.write_text(CONFIG, encoding="utf-8")
    globals_ = Globals(config=str(path), output=output)
    assert config_check_command(globals_, skip_references=False) == 0
    return capsys.readouterr().out


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PRODUCTION", "SANDBOX", "DEVELOPMENT"):
        for url in ("ACCOUNTS_URL", "API_URL"):
            monkeypatch.delenv(f"HARBOR_{name}_{url}", raising=False)
    monkeypatch.setenv("HARBOR_CLIENT_SECRET", "canary-not-shown")
    monkeypatch.setenv("HARBOR_SANDBOX_ACCOUNTS_URL", ELSEWHERE)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def test_text_shows_each_used_environments_urls_and_where_they_came_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = check(tmp_path, capsys)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert (
        f"token URL: {ELSEWHERE}/realms/harbor/protocol/openid-connect/token "
        "(from the environment variable HARBOR_SANDBOX_ACCOUNTS_URL)"
    ) in lines
    assert (
        "test-token URL: https://api.sandbox.harborlockers.com/api/v1/login/test-token "
        "(Harbor's default)"
    ) in lines
    assert (
        "test-token URL: https://api.harborlockers.com/api/v1/login/test-token (from "
        "environments.production.api_url in the file, given as the full test-token URL)"
    ) in lines
    assert "development:" not in lines  # not used by any target: not shown
    assert "canary-not-shown" not in text


def test_json_gives_the_same_facts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(check(tmp_path, capsys, "json"))
    sandbox = data["environments"]["sandbox"]
    assert sandbox["in_use"] is True
    assert sandbox["token_url"] == f"{ELSEWHERE}/realms/harbor/protocol/openid-connect/token"
    assert sandbox["token_url_from"] == {
        "from": "environment",
        "name": "HARBOR_SANDBOX_ACCOUNTS_URL",
        "given_as": None,
    }
    assert sandbox["test_token_url_from"]["from"] == "default"
    assert data["environments"]["development"]["in_use"] is False


#: What a Python repr looks like: Class(field=…), a dict or list literal, a bare True/False/None.
REPR = re.compile(r"\w+\(\w+=|\{'|\['|\bTrue\b|\bFalse\b|\bNone\b")


def test_no_python_repr_reaches_the_text_or_the_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = check(tmp_path, capsys)
    assert not REPR.search(text), text
    assert "key_template=HARBOR_{environment}_{scope}" in text
    assert "adopt=false" in text
    assert 'tags={managed-by = "harbor-secrets", team = "payments"}' in text
    raw = check(tmp_path, capsys, "json")
    assert "KeyTemplate" not in raw
    data = json.loads(raw)
    assert data["sinks"]["local"]["key_template"] == "HARBOR_{environment}_{scope}"
    assert data["sinks"]["local"]["lock_timeout_seconds"] == 10
    assert "lock_timeout=10s" in text


HOOKED = """
[credentials.main]
client_id = "id"
client_secret = "env:HARBOR_CLIENT_SECRET"

[sinks.local]
provider = "envfile"
path = "harbor.env"
on_write = {argv}
on_write_timeout = "45s"

[sinks.quiet]
provider = "envfile"
path = "quiet.env"

[[targets]]
environments = ["sandbox"]
"""


def check_hooked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: str, output: str = "text"
) -> str:
    path = tmp_path / "hooked.toml"
    path.write_text(HOOKED.format(argv=argv), encoding="utf-8")
    assert (
        config_check_command(Globals(config=str(path), output=output), skip_references=False) == 0
    )
    return capsys.readouterr().out


def test_each_sinks_on_write_command_is_shown_in_text_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = '["sh", "-c", "exit 0"]'
    text = check_hooked(tmp_path, capsys, argv)
    local = next(line for line in text.splitlines() if line.startswith("  local:"))
    assert 'on_write=["sh", "-c", "exit 0"] on_write_timeout=45s' in local
    quiet = next(line for line in text.splitlines() if line.startswith("  quiet:"))
    assert " on_write=" not in quiet
    assert "warning" not in text  # sh is on PATH
    data = json.loads(check_hooked(tmp_path, capsys, argv, "json"))
    assert data["sinks"]["local"]["on_write"] == {
        "argv": ["sh", "-c", "exit 0"],
        "timeout_seconds": 45,
    }
    assert data["sinks"]["quiet"]["on_write"] is None


@pytest.mark.parametrize(
    ("program", "says"),
    [
        ("no-such-program-7f3a", "'no-such-program-7f3a' is not found on PATH"),
        ("{tmp}/missing.sh", "{tmp}/missing.sh does not exist"),
        ("{tmp}/not-executable.sh", "{tmp}/not-executable.sh is not executable"),
    ],
)
def test_an_on_write_program_that_cannot_start_here_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], program: str, says: str
) -> None:
    (tmp_path / "not-executable.sh").write_text("#!/bin/sh\n", encoding="utf-8")
    program, says = program.format(tmp=tmp_path), says.format(tmp=tmp_path)
    text = check_hooked(tmp_path, capsys, json.dumps([program, "reload"]))
    assert f"warning: sinks.local.on_write: {says}" in text
    data = json.loads(check_hooked(tmp_path, capsys, json.dumps([program]), "json"))
    assert any(note.startswith(f"sinks.local.on_write: {says}") for note in data["warnings"])


def test_a_budget_that_is_gone_is_said_in_words_not_as_negative_durations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """refresh_before = 60s on a one-minute schedule leaves readers nothing at the worst
    moment: say what that means, never "survived for at least 0s" or "-30s before"."""
    path = tmp_path / "tight.toml"
    path.write_text('[refresh]\nrefresh_before = "60s"\n' + CONFIG, encoding="utf-8")
    assert config_check_command(Globals(config=str(path)), skip_references=False) == 0
    text = capsys.readouterr().out
    scheduled = next(line for line in text.splitlines() if "run every 1m 0s" in line)
    assert not re.search(r"-\d", scheduled), scheduled
    assert "at least 0s" not in scheduled
    assert "up to 0s" not in scheduled
    assert "is not survived if it begins at the worst moment" in scheduled
    assert "can refuse one even while everything answers" in scheduled
    assert "warning: refresh.refresh_before (60s) is not more than the schedule period" in text
