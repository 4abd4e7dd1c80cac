"""A token no sink can store is not requested: the run says so and exits 1.

A missing directory or a read-only file system is known before any request (the start-up
check already warns about both); minting a token that cannot be stored costs the issuer a
request every run for nothing. A denial only trying can reveal (permissions, a full disk)
is still tried, and a sink that can be written still gets its token.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import Result, envfile_config
from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_testkit.tmpfs import tmpfs

Run = Callable[..., Result]


def write_config(tmp_path: Path, issuer: StandInIssuer, sinks: str, names: str) -> Path:
    text = envfile_config(issuer.url, environments='["sandbox"]')
    start = text.index("[sinks.local]")
    end = text.index("[[targets]]")
    text = text[:start] + sinks + "\n" + text[end:]
    text = text.replace('sinks = ["local"]', f"sinks = {names}")
    config = tmp_path / "harbor.toml"
    config.write_text(text, encoding="utf-8")
    return config


@pytest.fixture
def read_only_mount(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "read-only", size=64 << 10, read_only=True) as mount:
        yield mount


def test_a_missing_directory_costs_no_token_request(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    sinks = f'[sinks.local]\nprovider = "envfile"\npath = "{tmp_path / "gone" / "x.env"}"\n'
    config = write_config(tmp_path, issuer, sinks, '["local"]')
    result = run_cli("-c", str(config), "sync", "-o", "json")
    assert result.code == 1, result.output
    assert issuer.token_requests == 0
    summary = json.loads(result.stdout)
    assert summary["tokens_fetched"] == 0
    for job in summary["jobs"]:
        (sink,) = job["sinks"]
        assert sink["action"] == "failed"
        assert sink["reason"] == "missing-directory"
        assert "no token was requested" in sink["error"]
    assert "no token was requested" in result.stderr


@pytest.mark.parametrize("provider", ["envfile", "files"])
def test_a_read_only_file_system_costs_no_token_request(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run, read_only_mount: Path, provider: str
) -> None:
    if provider == "envfile":
        sinks = f'[sinks.local]\nprovider = "envfile"\npath = "{read_only_mount / "a.env"}"\n'
    else:
        sinks = f'[sinks.local]\nprovider = "files"\ndirectory = "{read_only_mount}"\n'
    config = write_config(tmp_path, issuer, sinks, '["local"]')
    result = run_cli("-c", str(config), "sync")
    assert result.code == 1, result.output
    assert issuer.token_requests == 0
    assert "read-only file system" in result.stdout
    assert "no token was requested" in result.stdout
    check = run_cli("-c", str(config), "config", "check")
    assert "read-only file system" in check.stdout  # the start-up check warned first


def test_a_writable_sink_still_gets_its_token_beside_an_unwritable_one(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    sinks = (
        '[sinks.local]\nprovider = "envfile"\npath = "harbor.env"\n\n'
        f'[sinks.gone]\nprovider = "envfile"\npath = "{tmp_path / "gone" / "x.env"}"\n'
    )
    config = write_config(tmp_path, issuer, sinks, '["local", "gone"]')
    result = run_cli("-c", str(config), "sync", "-o", "json")
    assert result.code == 1
    assert issuer.token_requests == 2  # one per token, for the sink that can store it
    for job in json.loads(result.stdout)["jobs"]:
        actions = {sink["sink"]: (sink["action"], sink["reason"]) for sink in job["sinks"]}
        assert actions == {"local": ("written", "missing"), "gone": ("failed", "missing-directory")}
        gone = next(sink for sink in job["sinks"] if sink["sink"] == "gone")
        assert "no token was requested" not in gone["error"]


def test_a_dry_run_says_which_sinks_could_not_be_written(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    sinks = f'[sinks.local]\nprovider = "envfile"\npath = "{tmp_path / "gone" / "x.env"}"\n'
    config = write_config(tmp_path, issuer, sinks, '["local"]')
    result = run_cli("-c", str(config), "sync", "--dry-run", "-o", "json")
    assert result.code == 1
    assert json.loads(result.stdout)["counts"]["failed"] == 2
    assert issuer.token_requests == 0
