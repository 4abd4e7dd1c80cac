"""A clock that was wrong when a token was stored must not poison the store.

A run under a clock 10 minutes fast stores an expiry 10 minutes too late. It used to be
believed until real time caught up: ``status`` called the dead token fresh, ``get`` served
it and ``sync --force`` kept it ("expiring no earlier"). In watch mode a clock stepped back
did the same: refreshing stopped and ``/healthz`` stayed 200 while readers held a dead
token. The freshness policy now calls such a record implausible, and every consumer asks it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import CLIENT_SECRET, Result, envfile_config
from harbor_secrets.config import Config, CredentialsConfig, Job, load_config
from harbor_secrets.environments import Environment
from harbor_secrets.freshness import CLOCK_ALLOWANCE, RefreshPolicy, TokenState
from harbor_secrets.registry import Registry
from harbor_secrets.runtime import Runtime
from harbor_secrets.secrets import Secret
from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_secrets.sync import WRITTEN, TokenSource, default_client_factory, run_sync
from harbor_secrets.testing.memory import MemoryProvider, MemoryStore
from harbor_secrets.token_client import IssuedToken
from harbor_secrets.watch import Watcher, WatchPacing
from harbor_testkit.clock import ClockedSource, FakeClock
from harbor_testkit.records import make_record

Run = Callable[..., Result]
AHEAD = timedelta(minutes=10)
POLICY = RefreshPolicy(refresh_before=150, schedule_period=60, token_lifetime=300)
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


# -- the rule ---------------------------------------------------------------------------------


def test_a_record_issued_in_the_future_is_implausible_beyond_the_allowance() -> None:
    edge = make_record(issued_at=NOW + timedelta(seconds=CLOCK_ALLOWANCE))
    beyond = make_record(issued_at=NOW + timedelta(seconds=CLOCK_ALLOWANCE + 1))
    assert POLICY.assess(edge, NOW).state is TokenState.FRESH
    verdict = POLICY.assess(beyond, NOW)
    assert verdict.state is TokenState.IMPLAUSIBLE
    assert verdict.state.needs_refresh
    assert POLICY.for_reader(beyond, NOW, min_remaining=30).state.value == "implausible"
    assert not POLICY.for_reader(beyond, NOW, min_remaining=30).usable


def test_without_an_issue_time_the_token_lifetime_bounds_the_expiry() -> None:
    """The env file keeps only the token and its expiry: issued_at reads as expires_at."""
    stored = make_record(issued_at=NOW)
    bare = dataclasses.replace(stored, issued_at=stored.expires_at)
    assert not bare.has_issue_time
    assert POLICY.assess(bare, NOW).state is TokenState.FRESH
    later = NOW - timedelta(seconds=CLOCK_ALLOWANCE + 1)  # this clock behind the writer's
    assert POLICY.assess(bare, later).state is TokenState.IMPLAUSIBLE


def test_watch_mode_does_not_sleep_towards_an_implausible_expiry() -> None:
    from harbor_secrets.freshness import Observation

    far = Observation(NOW + AHEAD + timedelta(seconds=300), refreshed=False)
    near = Observation(NOW + timedelta(seconds=200), refreshed=False)
    # look again within schedule_period
    assert POLICY.next_wake([far], NOW).refresh_at is None
    assert POLICY.next_wake([far, near], NOW).refresh_at == NOW + timedelta(seconds=50)


# -- a run under a clock 10 minutes fast, then the right clock, through the real CLI -----------


def fast_clock_factory(
    config: Config, environment: Environment, credentials: CredentialsConfig, secret: Secret
) -> TokenSource:
    """The real token client, with the times a clock 10 minutes fast would record, and no
    issuer ``Date`` to tell it so (an issuer that sends none, or a writer from before the
    issuer's clock was the arbiter): the record it stores expires 10 minutes too late."""
    real = default_client_factory(config, environment, credentials, secret)

    class Fast:
        def fetch(self, scope: str) -> IssuedToken:
            token = real.fetch(scope)
            assert token.received_at is not None
            return dataclasses.replace(
                token,
                issued_at=token.issued_at + AHEAD,
                received_at=token.received_at + AHEAD,
                issuer_date=None,
            )

        def close(self) -> None:
            real.close()

    return Fast()


SINKS = {
    "envfile": 'provider = "envfile"\npath = "harbor.env"',
    "files": 'provider = "files"\ndirectory = "tokens"',
}


@pytest.fixture(params=list(SINKS))
def poisoned(request: pytest.FixtureRequest, tmp_path: Path, issuer: StandInIssuer) -> Path:
    """A config whose store was written by a run whose clock was 10 minutes fast."""
    (tmp_path / "tokens").mkdir()
    text = envfile_config(issuer.url, environments='["sandbox"]').replace(
        'provider = "envfile"\npath = "harbor.env"', SINKS[request.param]
    )
    config = tmp_path / "harbor.toml"
    config.write_text(text, encoding="utf-8")
    environ = {"HARBOR_CLIENT_SECRET": CLIENT_SECRET}
    report = run_sync(
        load_config(config, environ=environ), environ=environ, client_factory=fast_clock_factory
    )
    assert report.count(WRITTEN) == 2
    return config


def test_status_calls_a_record_from_a_fast_clock_implausible(poisoned: Path, run_cli: Run) -> None:
    result = run_cli("-c", str(poisoned), "status", "-o", "json")
    assert result.code == 1, result.output
    states = {row["state"] for row in json.loads(result.stdout)["tokens"]}
    assert states == {"implausible"}


def test_get_does_not_serve_a_record_from_a_fast_clock(poisoned: Path, run_cli: Run) -> None:
    result = run_cli("-c", str(poisoned), "get", "-e", "sandbox")
    assert result.code == 1
    assert result.stdout == ""
    assert "written under a clock that was wrong" in result.stderr


def test_sync_replaces_a_record_from_a_fast_clock(
    poisoned: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    before = issuer.issued
    plain = run_cli("-c", str(poisoned), "sync", "-o", "json")  # not even --force is needed
    assert plain.code == 0, plain.output
    summary = json.loads(plain.stdout)
    assert summary["counts"]["written"] == 2
    assert {s["reason"] for job in summary["jobs"] for s in job["sinks"]} == {"implausible"}
    assert "written under a clock that was wrong" in plain.stderr
    got = run_cli("-c", str(poisoned), "get", "-e", "sandbox")
    assert got.code == 0, got.output
    assert got.stdout.strip() in issuer.issued - before
    assert run_cli("-c", str(poisoned), "status").code == 0


def test_sync_force_replaces_a_record_from_a_fast_clock(
    poisoned: Path, issuer: StandInIssuer, run_cli: Run
) -> None:
    forced = run_cli("-c", str(poisoned), "sync", "--force", "-o", "json")
    assert forced.code == 0, forced.output
    assert json.loads(forced.stdout)["counts"] == {
        "written": 2,
        "fresh": 0,
        "kept-newer": 0,
        "would-write": 0,
        "failed": 0,
    }


# -- watch mode, its clock stepped back -----------------------------------------------------

WATCH_CONFIG = """
[credentials.main]
client_id = "id"
client_secret = "env:SECRET"

[sinks.a]
provider = "memory"
name = "clock"

[[targets]]
environments = ["sandbox"]
scopes = ["service_provider"]
"""


@pytest.fixture
def watcher() -> Iterator[tuple[Watcher, FakeClock, ClockedSource]]:
    clock = FakeClock(NOW)
    source = ClockedSource(clock)
    config = load_config(text=WATCH_CONFIG, environ={})
    registry = Registry(extra={"memory": MemoryProvider})
    with Runtime(config, registry=registry, environ={"SECRET": "s3cret-value"}) as runtime:
        yield (
            Watcher(
                runtime,
                pacing=WatchPacing.for_config(config),
                client_factory=source.factory,
                now=clock.now,
                uniform=lambda low, high: low,
            ),
            clock,
            source,
        )


def test_watch_mode_refreshes_after_its_clock_is_stepped_back(
    watcher: tuple[Watcher, FakeClock, ClockedSource],
) -> None:
    loop, clock, source = watcher
    first = loop.run_cycle()
    assert first.report is not None
    assert first.report.count(WRITTEN) == 1
    assert loop.health().ok
    clock.advance(-AHEAD.total_seconds())  # NTP steps the clock back 10 minutes
    unhealthy = loop.health()
    assert not unhealthy.ok  # readers on this host would find a token they cannot trust
    assert "clock" in unhealthy.reason
    second = loop.run_cycle()
    assert second.report is not None
    assert second.report.count(WRITTEN) == 1, "the loop must refresh, not wait 10 minutes"
    assert source.fetches == 2
    assert loop.health().ok
    stored = MemoryStore.get("clock").records()["harbor/sandbox/service_provider"]
    assert stored.issued_at == clock.now().replace(microsecond=0)
    assert second.refresh_at is not None
    assert second.refresh_at <= clock.now() + timedelta(seconds=150)
    loop.engine.close()


def test_the_engine_writes_over_a_record_from_the_future() -> None:
    """In-process, with the memory store: the record the engine writes carries the policy's
    judgement, so the store's never-go-backwards check lets it replace the future one."""
    clock = FakeClock(NOW)
    source = ClockedSource(clock)
    store = MemoryStore.get("clock")
    key = "harbor/sandbox/service_provider"
    store.put(key, make_record(issued_at=NOW + AHEAD, token="from-a-fast-clock"))
    config = load_config(text=WATCH_CONFIG, environ={})
    registry = Registry(extra={"memory": MemoryProvider})
    from harbor_secrets.sync import SyncEngine

    with Runtime(config, registry=registry, environ={"SECRET": "s3cret-value"}) as runtime:
        engine = SyncEngine(runtime, client_factory=source.factory, now=clock.now)
        report = engine.run(force=True, jobs=[Job("main", "sandbox", "service_provider", ("a",))])
    assert report.count(WRITTEN) == 1
    assert store.records()[key].access_token.reveal() == "tok-clock-0001-padding"


def test_healthz_stays_ok_while_short_lived_tokens_are_refreshed_at_half_their_life(
    watcher: tuple[Watcher, FakeClock, ClockedSource],
) -> None:
    """Tokens of 4 s with refresh_before 150 s: the loop refreshes them every 2 s, and a
    liveness probe must not restart it for that; it must fail when the loop stops."""
    loop, clock, source = watcher
    source.lifetime = 4
    for _ in range(5):
        cycle = loop.run_cycle()
        assert cycle.report is not None
        assert cycle.report.count(WRITTEN) == 1
        assert loop.health().ok, loop.health().reason
        assert cycle.refresh_at is not None
        assert clock.now() < cycle.refresh_at <= clock.now() + timedelta(seconds=2)
        clock.advance(2.05)
        assert loop.health().ok, loop.health().reason
    clock.advance(2.0)  # the loop stopped: the token is dead
    assert not loop.health().ok


def test_an_issuer_granting_more_than_token_lifetime_is_named(
    watcher: tuple[Watcher, FakeClock, ClockedSource], caplog: pytest.LogCaptureFixture
) -> None:
    """A store without issue times would call such tokens implausible every run: say why."""
    loop, _, source = watcher
    source.lifetime = 3600
    loop.run_cycle()
    assert "the issuer grants tokens of 3600s, longer than refresh.token_lifetime (300s)" in (
        caplog.text
    )
    assert 'set token_lifetime = "3600s"' in caplog.text
    assert "no issue time" not in caplog.text  # the memory store keeps it: not blamed


def test_an_issuer_granting_more_than_token_lifetime_names_the_sinks_it_upsets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The env file keeps only the expiry, so only token_lifetime bounds it: the warning
    names that sink (it used to name "the env file" whatever the sinks were)."""
    source = ClockedSource(FakeClock(datetime.now(UTC)))
    source.lifetime = 3600
    config = tmp_path / "harbor.toml"
    config.write_text(envfile_config("http://127.0.0.1:1", environments='["sandbox"]'))
    environ = {"HARBOR_CLIENT_SECRET": CLIENT_SECRET}
    run_sync(load_config(config, environ=environ), environ=environ, client_factory=source.factory)
    assert "sinks.local keeps no issue time (only the expiry)" in caplog.text
    assert 'set token_lifetime = "3600s"' in caplog.text
