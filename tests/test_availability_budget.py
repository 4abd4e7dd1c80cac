"""``config check`` prints the availability budget the configuration gives (text and JSON).

Every figure comes from the freshness policy (``RefreshPolicy.availability``); these tests
compare the command's output with the policy built from the same file, and check that the
figures move with ``[refresh]`` and ``[http]``, that a store readers see late (a mounted
Kubernetes Secret) loses its delay, and that a store on the refresher's own host is named
as not shared. The arithmetic itself is in test_freshness.py and docs/AVAILABILITY.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import Result
from harbor_secrets.config import load_config
from harbor_secrets.durations import format_duration

Run = Callable[..., Result]

CONFIG = """
[refresh]
refresh_before = "{refresh_before}"

[http]
total_budget = "{budget}"

[credentials.main]
client_id = "my-client"
client_secret = "env:HARBOR_CLIENT_SECRET"

[sinks.vault]
provider = "vault"
address = "https://vault.example:8200"

[sinks.local]
provider = "envfile"
path = "harbor.env"

[sinks.files]
provider = "files"
directory = "tokens"

[[targets]]
environments = ["sandbox"]
sinks = ["vault", "local", "files"]
"""


def check(run_cli: Run, tmp_path: Path, **values: str) -> tuple[str, dict[str, Any], Path]:
    path = tmp_path / "harbor.toml"
    settings = {"refresh_before": "150s", "budget": "30s", **values}
    path.write_text(CONFIG.format(**settings))
    (tmp_path / "tokens").mkdir(exist_ok=True)
    vault = {"VAULT_TOKEN": "not-a-real-token"}  # never used: config check is offline
    text = run_cli("-c", str(path), "config", "check", env=vault)
    assert text.code == 0, text.stderr
    data = run_cli("-c", str(path), "config", "check", "-o", "json", env=vault)
    assert data.code == 0, data.stderr
    return text.stdout, json.loads(data.stdout)["availability"], path


@pytest.mark.parametrize(("refresh_before", "budget"), [("150s", "30s"), ("90s", "10s")])
def test_the_budget_is_the_freshness_policys_for_this_file(
    run_cli: Run, tmp_path: Path, refresh_before: str, budget: str
) -> None:
    text, data, path = check(run_cli, tmp_path, refresh_before=refresh_before, budget=budget)
    config = load_config(path, environ={"HARBOR_CLIENT_SECRET": "x"})
    for mode, watching in (("scheduled", False), ("watch", True)):
        expected = config.refresh.availability(
            watching=watching, request_budget=config.http.total_budget
        )
        assert data[mode] == expected.to_dict()
        floor = format_duration(expected.reader_floor)
        slow = format_duration(expected.reader_floor_slow_issuer)
        survived = format_duration(expected.outage_survived)
        assert f"readers find at least {floor} left while Harbor and the store" in text
        assert f"(at least {slow} left if each token request takes its whole" in text
        assert f"survived for at least {survived} (at most 5m 0s)" in text


def test_the_default_figures_in_words(run_cli: Run, tmp_path: Path) -> None:
    text, data, _ = check(run_cli, tmp_path)
    assert data["scheduled"]["reader_floor_seconds"] == 90
    assert data["watch"]["reader_floor_seconds"] == 138.95
    (scheduled,) = [line for line in text.splitlines() if "run every 1m 0s" in line]
    assert "at least 1m 30s left while Harbor and the store answer promptly" in scheduled
    assert "at least 1m 1s left if each token request takes its whole 30s" in scheduled
    assert "1m 0s before get/exec refuse one with less than 30s left" in scheduled
    (watch,) = [line for line in text.splitlines() if "sync --watch" in line]
    assert "at least 2m 18s left" in watch
    assert "docs/AVAILABILITY.md" in text


def test_stores_on_this_host_are_named_as_not_shared(run_cli: Run, tmp_path: Path) -> None:
    text, data, _ = check(run_cli, tmp_path)
    assert data["local_sinks"] == ["local", "files"]  # the env file and token files, not Vault
    for sink in ("local", "files"):
        assert f"sinks.{sink} is a file on this host, not shared" in text
    assert "sinks.vault is" not in text
    assert "one refresher on each host, next to its readers" in text
    assert data["delayed_readers"] == {}
    assert "warning" not in text.lower()  # a fact about the store, not a mistake
