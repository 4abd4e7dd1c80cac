"""The sync engine on in-memory stores: due-ness, sharing, monotonicity, isolation of failures.

The token source is a narrow in-process fake here so each rule is tested on its own; the
same rules are exercised end to end against the stand-in issuer in test_cli_sync.py.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest

from harbor_secrets.config import Config, CredentialsConfig, load_config
from harbor_secrets.environments import Environment
from harbor_secrets.errors import ConfigError, InvalidClientError
from harbor_secrets.record import TokenRecord
from harbor_secrets.registry import Registry
from harbor_secrets.secrets import Secret
from harbor_secrets.sync import SyncReport, run_sync
from harbor_secrets.testing.memory import MemoryProvider, MemoryStore
from harbor_secrets.token_client import IssuedToken

REGISTRY = Registry(extra={"memory": MemoryProvider})
CONFIG = """
[credentials.main]
client_id = "id"
client_secret = "env:SECRET"

[credentials.other]
client_id = "other-id"
client_secret = "env:SECRET"

[sinks.a]
provider = "memory"
name = "a"

[sinks.b]
provider = "memory"
name = "b"

[[targets]]
credentials = "main"
environments = ["sandbox", "production"]
sinks = ["a", "b"]

[[targets]]
credentials = "other"
environments = ["sandbox"]
scopes = ["tower_access"]
sinks = ["a"]
key = "ignored"
"""


class FakeSource:
    """Counts fetches; fails for credentials listed in ``failing``."""

    def __init__(self, failing: set[str] | None = None) -> None:
        self.fetches: list[tuple[str, str, str]] = []
        self.failing = failing or set()
        self.lock = threading.Lock()
        self.counter = 0
        self.clients = 0

    def factory(
        self, config: Config, env: Environment, creds: CredentialsConfig, secret: Secret
    ) -> FakeSource.Client:
        assert secret.reveal() == "the-secret"
        self.clients += 1
        return FakeSource.Client(self, env.name, creds.client_id)

    class Client:
        def __init__(self, source: FakeSource, environment: str, client_id: str) -> None:
            self.source, self.environment, self.client_id = source, environment, client_id

        def fetch(self, scope: str) -> IssuedToken:
            with self.source.lock:
                self.source.fetches.append((self.client_id, self.environment, scope))
                self.source.counter += 1
                n = self.source.counter
            if self.client_id in self.source.failing:
                raise InvalidClientError("rejected", status=401, error_code="invalid_client")
            return IssuedToken(
                access_token=Secret(f"tok-{self.client_id}-{self.environment}-{scope}-{n}"),
                token_type="Bearer",
                expires_in=300,
                granted_scope=scope,
                refresh_token=None,
                # Each fetch is a second later, as successive real fetches would be.
                issued_at=datetime.now(UTC) + timedelta(seconds=n),
                attempts=1,
            )

        def close(self) -> None:
            pass


def fixed_config() -> str:
    template = 'key = "h/{credentials}/{environment}/{scope}"\n'
    return CONFIG.replace('name = "a"\n', 'name = "a"\n' + template)


def run(source: FakeSource, text: str, **kwargs: bool) -> SyncReport:
    return run_sync(
        load_config(text=text.replace('key = "ignored"\n', ""), environ={}),
        registry=REGISTRY,
        client_factory=source.factory,
        environ={"SECRET": "the-secret"},
        **kwargs,
    )


def test_two_credentials_on_one_key_are_refused() -> None:
    # Both credentials write sandbox/tower_access to sink a with the default template.
    with pytest.raises(ConfigError) as caught:
        run(FakeSource(), CONFIG)
    assert "{credentials}" in str(caught.value)
    assert caught.value.key == "sinks.a.key"


def test_second_run_within_refresh_before_fetches_and_writes_nothing() -> None:
    source = FakeSource()
    first = run(source, fixed_config())
    assert first.exit_code == 0
    assert first.count("written") == 9  # main: 2 envs x 2 scopes x 2 sinks; other: 1
    assert len(source.fetches) == 5  # one token request per token, shared by its sinks
    assert source.clients == 3  # one client per (credentials, environment), shared by scopes
    a, b = MemoryStore.get("a").records(), MemoryStore.get("b").records()
    key = "harbor/production/tower_access"
    assert a["h/main/production/tower_access"].access_token == b[key].access_token
    writes = MemoryStore.get("a").writes + MemoryStore.get("b").writes
    second = run(source, fixed_config())
    assert second.exit_code == 0
    assert second.count("fresh") == 9
    assert len(source.fetches) == 5
    assert MemoryStore.get("a").writes + MemoryStore.get("b").writes == writes


def test_only_due_sinks_are_written() -> None:
    source = FakeSource()
    run(source, fixed_config())
    store_b = MemoryStore.get("b")
    key = "harbor/sandbox/service_provider"
    stale = store_b.records()[key]
    store_b.put(
        key,
        TokenRecord.issue(
            access_token="old-token",
            issued_at=datetime.now(UTC) - timedelta(seconds=200),
            expires_in=300,
            scope="service_provider",
            environment="sandbox",
            client_id="id",
            issuer="x",
        ),
    )
    report = run(source, fixed_config())
    assert len(source.fetches) == 6  # only the due token was fetched again
    assert report.count("written") == 1
    assert store_b.records()[key].access_token != stale.access_token
    assert report.count("fresh") == 8


def test_force_rewrites_everything_and_dry_run_touches_nothing() -> None:
    source = FakeSource()
    dry = run(source, fixed_config(), dry_run=True)
    assert dry.exit_code == 0
    assert dry.count("would-write") == 9
    assert source.fetches == []
    assert MemoryStore.get("a").records() == {}
    run(source, fixed_config())
    forced = run(source, fixed_config(), force=True)
    assert forced.count("written") == 9
    assert len(source.fetches) == 10


def test_a_newer_stored_token_is_never_replaced() -> None:
    source = FakeSource()
    store = MemoryStore.get("a")
    key = "h/main/sandbox/tower_access"
    newer = TokenRecord.issue(
        access_token="newer-token-from-an-overlapping-run",
        issued_at=datetime.now(UTC) + timedelta(seconds=30),
        expires_in=300,
        scope="tower_access",
        environment="sandbox",
        client_id="id",
        issuer="x",
    )
    store.put(key, newer)
    report = run(source, fixed_config(), force=True)
    assert report.exit_code == 0
    assert report.count("kept-newer") == 1
    assert store.records()[key].access_token.reveal() == "newer-token-from-an-overlapping-run"


def test_failing_issuer_for_one_credential_leaves_its_tokens_and_others_proceed() -> None:
    source = FakeSource()
    run(source, fixed_config())
    before = MemoryStore.get("a").records()
    source.failing = {"other-id"}
    report = run(source, fixed_config(), force=True)
    assert report.exit_code == 1
    data = report.to_dict()
    failed_jobs = [job for job in data["jobs"] if not job["ok"]]
    assert [job["credentials"] for job in failed_jobs] == ["other"]
    assert failed_jobs[0]["error_type"] == "InvalidClientError"
    after = MemoryStore.get("a").records()
    assert after["h/other/sandbox/tower_access"] == before["h/other/sandbox/tower_access"]
    assert report.count("written") == 8


def test_failing_store_does_not_stop_other_sinks() -> None:
    source = FakeSource()
    MemoryStore.get("b").fail_writes = True
    report = run(source, fixed_config())
    assert report.exit_code == 1
    assert report.count("failed") == 4
    assert report.count("written") == 5
    assert len(MemoryStore.get("a").records()) == 5
    MemoryStore.get("b").fail_writes = False
    MemoryStore.get("b").fail_reads = True
    report = run(source, fixed_config())
    assert report.exit_code == 1
    reasons = {s["reason"] for j in report.to_dict()["jobs"] for s in j["sinks"]}
    assert "read-failed" in reasons


def test_report_json_shape() -> None:
    report = run(FakeSource(), fixed_config())
    data = report.to_dict()
    assert data["ok"] is True
    assert data["counts"]["written"] == 9
    assert data["tokens_fetched"] == 5
    sink = data["jobs"][0]["sinks"][0]
    assert set(sink) >= {"sink", "provider", "key", "action", "expires_at", "expires_in_seconds"}
    assert "tok-" not in str(data)


def test_a_stored_token_with_the_same_expiry_is_kept_and_said_to_be_no_earlier() -> None:
    """Equal expiry is not "newer": the report must not claim it is."""
    issued = datetime.now(UTC).replace(microsecond=0)

    class SameSecond(FakeSource):
        class Client(FakeSource.Client):
            def fetch(self, scope: str) -> IssuedToken:
                token = super().fetch(scope)
                return dataclasses.replace(token, issued_at=issued)

        def factory(
            self, config: Config, env: Environment, creds: CredentialsConfig, secret: Secret
        ) -> FakeSource.Client:
            return SameSecond.Client(self, env.name, creds.client_id)

    store = MemoryStore.get("a")
    key = "h/main/sandbox/tower_access"
    same = TokenRecord.issue(
        access_token="same-expiry",
        issued_at=issued,
        expires_in=300,
        scope="tower_access",
        environment="sandbox",
        client_id="id",
        issuer="x",
    )
    store.put(key, same)
    report = run(SameSecond(), fixed_config(), force=True)
    (kept,) = [
        sink
        for job in report.to_dict()["jobs"]
        for sink in job["sinks"]
        if sink["action"] == "kept-newer"
    ]
    assert kept["key"] == key
    assert kept["reason"] == "the store already holds a token expiring no earlier"
    assert store.records()[key].access_token.reveal() == "same-expiry"


def test_an_on_write_that_breaks_unexpectedly_leaves_every_write_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever a hook raises, the writes stand, each row says written, and the run fails."""

    def broken(*args: object, **kwargs: object) -> float:
        raise PermissionError("not allowed to kill a setuid hook")

    monkeypatch.setattr("harbor_secrets.sync.run_hook", broken)
    text = fixed_config().replace('name = "b"\n', 'name = "b"\non_write = ["true"]\n')
    report = run(FakeSource(), text)
    assert report.exit_code == 1
    b_rows = [s for job in report.results for s in job.sinks if s.sink == "b"]
    assert b_rows
    assert {row.action for row in b_rows} == {"written"}
    assert {row.on_write_ok for row in b_rows} == {False}
    assert all("PermissionError" in (row.on_write_error or "") for row in b_rows)
    assert report.on_write_failures == 1
    a_rows = [s for job in report.results for s in job.sinks if s.sink == "a"]
    assert {row.on_write_ok for row in a_rows} == {None}  # no hook configured there
    assert len(MemoryStore.get("b").records()) == 4


def test_each_record_and_result_names_the_refresher_that_wrote_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An operator sees which replica or host wrote last: in the record, in the run's
    report (also for a token another replica wrote) and in the write's log line."""
    text = fixed_config().replace('key = "ignored"\n', "")

    def run_as(writer: str, **kwargs: bool) -> SyncReport:
        return run_sync(
            load_config(text=text, environ={}),
            registry=REGISTRY,
            client_factory=FakeSource().factory,
            environ={"SECRET": "the-secret", "HARBOR_SECRETS_WRITER": writer},
            **kwargs,
        )

    with caplog.at_level(logging.INFO, logger="harbor_secrets"):
        first = run_as("host-a")
    stored = MemoryStore.get("a").records()["h/main/sandbox/tower_access"]
    assert stored.written_by == "host-a"
    sinks = [sink for job in first.to_dict()["jobs"] for sink in job["sinks"]]
    assert {sink["written_by"] for sink in sinks} == {"host-a"}
    written = [r for r in caplog.records if getattr(r, "event", "") == "sink.written"]
    assert written
    assert all(r.getMessage().endswith(": written by host-a") for r in written)
    assert all(getattr(r, "written_by", None) == "host-a" for r in written)
    # Another host finds them fresh, and says who wrote them.
    second = run_as("host-b")
    sinks = [sink for job in second.to_dict()["jobs"] for sink in job["sinks"]]
    assert {(sink["action"], sink["written_by"]) for sink in sinks} == {("fresh", "host-a")}
    # A write refused because the store holds a newer token cannot say whose it is.
    store = MemoryStore.get("a")
    key = "h/main/sandbox/tower_access"
    store.put(key, dataclasses.replace(stored, expires_at=stored.expires_at + timedelta(hours=1)))
    forced = run_as("host-c", force=True)
    (kept,) = [
        sink
        for job in forced.results
        for sink in job.sinks
        if sink.key == key and job.job.credentials == "main"
    ]
    assert kept.action == "kept-newer"
    assert kept.written_by is None
    assert "written_by" not in kept.to_dict(datetime.now(UTC))
