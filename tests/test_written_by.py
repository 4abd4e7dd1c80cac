"""``written_by`` passes one rule, whether this refresher writes it or reads it from a store.

The review found (fix package B, item 5): a record read from a store was not checked, so a
``written_by`` of ``"vm\\n2026-… ERROR harbor_secrets.sync: FORGED"`` (anyone who can write
the store can put it there) printed a forged log line in ``status`` and in watch mode's
cycle log; and ``config check`` did not check ``HARBOR_SECRETS_WRITER`` (``"a b"``: config
check exit 0, sync exit 2). writer.py's rule (printable, no spaces, at most 253 characters)
now applies to both, and an invalid stored name reads as unknown.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Result, envfile_config
from harbor_secrets import TokenRecord
from harbor_secrets.config import load_config
from harbor_secrets.registry import Registry
from harbor_secrets.runtime import Runtime
from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_secrets.testing.memory import MemoryProvider, MemoryStore
from harbor_secrets.watch import Watcher
from harbor_secrets.writer import MAX_LENGTH, writer_name
from harbor_testkit.records import make_record

Run = Callable[..., Result]
FORGED = "vm\n2026-01-01T12:00:00Z ERROR harbor_secrets.sync: FORGED"
KEY = "harbor/sandbox/service_provider"


def stored_as(written_by: object) -> TokenRecord:
    data = make_record().to_dict()
    data["written_by"] = written_by
    return TokenRecord.from_dict(data)


@pytest.mark.parametrize(
    "written_by",
    [FORGED, "a b", "", "\x1b[31mred", "x" * (MAX_LENGTH + 1), "right\u202eleft", 42, None],
)
def test_a_stored_writer_name_that_breaks_the_rule_reads_as_unknown(written_by: object) -> None:
    record = stored_as(written_by)
    assert record.written_by == ""
    assert "written_by" not in record.to_dict()  # never written back either


@pytest.mark.parametrize("written_by", ["host-a", "harbor-secrets-6c9f-a1", "x" * MAX_LENGTH])
def test_a_good_stored_writer_name_is_kept(written_by: str) -> None:
    assert stored_as(written_by).written_by == written_by


def test_status_never_prints_a_forged_writer_name(tmp_path: Path, run_cli: Run) -> None:
    """Through the real CLI and the token-files store, whose record.json anyone with write
    access to the directory can edit."""
    (tmp_path / "tokens").mkdir()
    config = tmp_path / "harbor.toml"
    config.write_text(
        envfile_config("http://127.0.0.1:1", environments='["sandbox"]').replace(
            'provider = "envfile"\npath = "harbor.env"',
            'provider = "files"\ndirectory = "tokens"',
        ),
        encoding="utf-8",
    )
    runtime = Runtime(load_config(config, environ={}), client_secrets=False)
    with runtime:
        provider = runtime.sinks["local"].provider
        for scope in ("service_provider", "tower_access"):
            key = f"sandbox/{scope}"
            record = make_record(scope=scope)
            assert provider.write(key, record).value == "written"
            path = tmp_path / "tokens" / "sandbox" / scope / "record.json"
            data = json.loads(path.read_text(encoding="utf-8"))
            data["written_by"] = FORGED
            path.write_text(json.dumps(data), encoding="utf-8")
    for output in ("text", "json"):
        result = run_cli("-c", str(config), "status", "-o", output)
        assert result.code == 0, result.output
        assert "FORGED" not in result.output
    rows = json.loads(run_cli("-c", str(config), "status", "-o", "json").stdout)["tokens"]
    assert {row["written_by"] for row in rows} == {None}


def test_the_cycle_log_never_prints_a_forged_writer_name(caplog: pytest.LogCaptureFixture) -> None:
    config = load_config(
        text="""
[credentials.main]
client_id = "id"
client_secret = "env:SECRET"

[sinks.a]
provider = "memory"
name = "forged"

[[targets]]
environments = ["sandbox"]
scopes = ["service_provider"]
""",
        environ={},
    )
    # As another tool (or someone with write access to the store) would have stored it.
    MemoryStore.get("forged").put(KEY, dataclasses.replace(make_record(), written_by=FORGED))
    registry = Registry(extra={"memory": MemoryProvider})
    with (
        Runtime(config, registry=registry, environ={"SECRET": "s3cret-value"}) as runtime,
        caplog.at_level(logging.DEBUG),
    ):
        loop = Watcher(runtime)
        cycle = loop.run_cycle()
        loop.engine.close()
    assert cycle.report is not None
    assert cycle.report.count("fresh") == 1
    assert "FORGED" not in caplog.text
    assert "FORGED" not in json.dumps(cycle.report.to_dict())


@pytest.mark.parametrize("name", ["a b", "tab\there", "x" * (MAX_LENGTH + 1)])
def test_config_check_refuses_a_bad_writer_name_as_sync_does(
    name: str, tmp_path: Path, run_cli: Run, issuer: StandInIssuer
) -> None:
    config = tmp_path / "harbor.toml"
    config.write_text(envfile_config(issuer.url), encoding="utf-8")
    env = {"HARBOR_SECRETS_WRITER": name}
    checked = run_cli("-c", str(config), "config", "check", env=env)
    synced = run_cli("-c", str(config), "sync", env=env)
    assert (checked.code, synced.code) == (2, 2), (checked.output, synced.output)
    assert "HARBOR_SECRETS_WRITER" in checked.stderr
    assert issuer.token_requests == 0


def test_config_check_shows_the_writer_name(tmp_path: Path, run_cli: Run) -> None:
    config = tmp_path / "harbor.toml"
    config.write_text(envfile_config("http://127.0.0.1:1"), encoding="utf-8")
    env = {"HARBOR_SECRETS_WRITER": "host-a"}
    text = run_cli("-c", str(config), "config", "check", env=env)
    assert text.code == 0, text.output
    assert "records written by: host-a" in text.stdout
    data = json.loads(run_cli("-c", str(config), "config", "check", "-o", "json", env=env).stdout)
    assert data["writer"] == "host-a"


@pytest.mark.parametrize("host", ["", "bad host", "vm\nforged"])
def test_a_host_name_that_breaks_the_rule_is_not_written(
    host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without HARBOR_SECRETS_WRITER the host name is used, through the same rule: a name
    this tool would read back as unknown (or print raw) is never stored."""
    monkeypatch.setattr(socket, "gethostname", lambda: host)
    assert writer_name({}) == "unknown-host"


def test_a_good_host_name_is_the_writer_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "watch-7f9c-2")
    assert writer_name({}) == "watch-7f9c-2"
