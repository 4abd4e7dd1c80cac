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
