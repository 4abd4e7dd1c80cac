"""Several watch-mode replicas on one store: they take turns instead of waking together.

The cause the issue found: identical replicas read the same expiry, and a jitter of a few
percent of the sleep puts their wake-ups within a few hundred milliseconds, less than one
cycle apart, so each finds the token due and asks Harbor. The pacing now depends on who
wrote: the replica that wrote every token it saw wakes within W/2 of the deadline, every
other one between W and 2W (W = the freshness policy's ``wake_spread``).

The fleet simulation (harbor_testkit.fleet) runs the real watch loop and engine of each
replica in simulated time, with writes landing a cycle's duration after they are sent, so
whole days with hundreds of failovers take seconds and every figure is reproducible. The
same behaviour against real processes and real stores is tests/reliability/test_failover.py.
"""

from __future__ import annotations

import logging
import random
import threading
from datetime import UTC, datetime, timedelta

import pytest

from harbor_secrets.config import Config, CredentialsConfig, load_config
from harbor_secrets.environments import Environment
from harbor_secrets.freshness import RefreshPolicy
from harbor_secrets.metrics import sink_key
from harbor_secrets.registry import Registry
from harbor_secrets.runtime import Runtime
from harbor_secrets.secrets import Secret
from harbor_secrets.sync import (
    FAILED,
    FRESH,
    KEPT_NEWER,
    WRITTEN,
    JobResult,
    SinkResult,
    SyncEngine,
    SyncReport,
)
from harbor_secrets.testing.memory import MemoryProvider, MemoryStore
from harbor_secrets.token_client import IssuedToken
from harbor_secrets.watch import Watcher, wrote_every_token
from harbor_secrets.writer import WRITER_ENV_VAR
from harbor_testkit.fleet import Event, Fleet, FleetResult

DAY = 86_400.0
POLICY = RefreshPolicy()  # the defaults: 300 s tokens, refresh_before 150 s, 60 s period
#: The aim of issue 15: with every replica up, at most 1.1x one replica's token requests.
AIM = 1.1


@pytest.fixture(scope="module")
def one_replica() -> FleetResult:
    return Fleet(1, seed=15).run(DAY)


@pytest.mark.parametrize("replicas", [2, 3, 5])
def test_replicas_all_up_ask_harbor_as_often_as_one(
    one_replica: FleetResult, replicas: int
) -> None:
    fleet = Fleet(replicas, seed=15).run(DAY)
    assert fleet.requests <= AIM * one_replica.requests, (fleet.requests, one_replica.requests)
    # Every replica runs (and reads) all day; one of them does the writing.
    assert set(fleet.cycles) == {f"replica-{n}" for n in range(replicas)}
    assert fleet.least_left >= POLICY.reader_floor(watching=True, wrote_last=True)
    assert not fleet.went_backwards


def test_without_turns_replicas_wake_together_and_ask_again(one_replica: FleetResult) -> None:
    """The reported cause, reproduced: every replica paced as the writer asks Harbor far more
    often (the issue measured 1.67x with three)."""
    fleet = Fleet(3, seed=15, standby=False).run(DAY)
    assert fleet.requests > 1.2 * one_replica.requests


def test_the_writer_keeps_its_turn_and_the_others_stand_by() -> None:
    """Once the first refresh is done, every token is written by one replica."""
    fleet = Fleet(3, seed=7).run(DAY / 8)
    for history in fleet.landings.values():
        settled = [writer for at, _, writer in history if at > 600]
        assert len(set(settled)) == 1, set(settled)


def failovers(seed: int, replicas: int = 3) -> list[Event]:
    """A kill -9 (restarted 1-5 minutes later) or a SIGSTOP (10 s to 7 minutes) every 5 to
    15 minutes, of a replica picked at random: about 140 in a day."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible schedule
    events: list[Event] = []
    at = 600.0
    while at < DAY - 600:
        victim = rng.randrange(replicas)
        if rng.random() < 0.5:
            events += [Event(at, "kill", victim), Event(at + rng.uniform(60, 300), "start", victim)]
        else:
            events.append(Event(at, "stop", victim, rng.uniform(10, 420)))
        at += rng.uniform(300, 900)
    return events


def test_a_day_of_failovers_keeps_every_reader_above_the_promised_floor(
    one_replica: FleetResult,
) -> None:
    events = failovers(seed=15)
    assert len(events) > 100
    fleet = Fleet(3, seed=15).run(DAY, events)
    assert fleet.least_left >= POLICY.reader_floor(watching=True)
    assert not fleet.went_backwards
    # Taking over after the writer is lost costs at most one extra request now and then.
    assert fleet.requests <= AIM * one_replica.requests


def test_a_lone_replica_after_the_others_die_is_still_within_the_floor() -> None:
    events = [Event(1000, "kill", 0), Event(1000, "kill", 1)]
    fleet = Fleet(3, seed=3).run(DAY / 4, events)
    assert fleet.least_left >= POLICY.reader_floor(watching=True)
    assert fleet.cycles["replica-2"] > fleet.cycles["replica-0"]


def test_readers_survive_an_issuer_outage_shorter_than_the_budget() -> None:
    budget = POLICY.availability(watching=True, request_budget=30)
    outage = budget.outage_survived - 2 * POLICY.wake_spread - 30  # recovery within backoff
    events = [Event(5000, "issuer", seconds=outage), Event(9000, "store", seconds=outage)]
    fleet = Fleet(3, seed=4).run(DAY / 4, events)
    assert fleet.least_left > 0
    assert not fleet.went_backwards
    # Afterwards the replicas take turns again: about one request per token per refresh.
    start, end = 9000 + outage + 600, DAY / 4
    refreshes = (end - start) / POLICY.watch_write_interval + 1
    assert 0 < fleet.requests_between(start, end) <= AIM * 2 * refreshes  # two tokens


# -- which role a cycle leaves a replica in ------------------------------------------------

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
CONFIG = load_config(
    text='[credentials.main]\nclient_id = "i"\nclient_secret = "env:S"\n'
    '[sinks.a]\nprovider = "memory"\n[[targets]]\nenvironments = ["sandbox"]\n',
    environ={},
)
JOB = CONFIG.jobs()[0]


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def report(*sinks: tuple[str, float | None]) -> SyncReport:
    result = JobResult(JOB)
    result.sinks = [
        SinkResult("a", "memory", "k", action, expires_at=None if when is None else at(when))
        for action, when in sinks
    ]
    return SyncReport(results=[result], started_at=NOW, finished_at=NOW)


def test_a_replica_that_wrote_or_finds_its_own_token_wakes_first() -> None:
    mine = {sink_key(JOB, "a"): at(300)}
    assert wrote_every_token(report((WRITTEN, 300)), {})
    assert wrote_every_token(report((FRESH, 300)), mine)  # woke on the period, still its own


def test_a_replica_that_finds_another_ones_token_stands_by() -> None:
    mine = {sink_key(JOB, "a"): at(300)}
    assert not wrote_every_token(report((FRESH, 301)), mine)  # someone wrote since
    assert not wrote_every_token(report((FRESH, 300)), {})  # a restarted replica knows none
    assert not wrote_every_token(report((KEPT_NEWER, 300)), mine)  # lost a race
    assert not wrote_every_token(report((FAILED, None)), mine)  # saw nothing: stands by


# -- two replicas that do fetch at once ----------------------------------------------------

RACE_CONFIG = """
[credentials.main]
client_id = "id"
client_secret = "env:SECRET"

[sinks.shared]
provider = "memory"
name = "race"

[[targets]]
environments = ["sandbox"]
scopes = ["service_provider"]
"""


class BarrierSource:
    """Hands out tokens only once both replicas have asked, so both have read the store
    first; the later token expires one second after the earlier one."""

    def __init__(self) -> None:
        self.barrier = threading.Barrier(2, timeout=10)
        self.requests = 0
        self.lock = threading.Lock()

    def factory(
        self, config: Config, env: Environment, creds: CredentialsConfig, secret: Secret
    ) -> BarrierSource:
        return self

    def fetch(self, scope: str) -> IssuedToken:
        with self.lock:
            self.requests += 1
            order = self.requests
        self.barrier.wait()
        return IssuedToken(
            access_token=Secret(f"race-token-{order}"),
            token_type="Bearer",
            expires_in=300,
            granted_scope=scope,
            refresh_token=None,
            issued_at=NOW + timedelta(seconds=order),
            attempts=1,
        )

    def close(self) -> None:
        pass


def test_two_replicas_fetching_at_once_cost_one_extra_request_and_never_an_older_token() -> None:
    MemoryStore.reset_all()
    store = MemoryStore.get("race")
    source = BarrierSource()
    registry = Registry(extra={"memory": MemoryProvider})
    reports: dict[str, SyncReport] = {}

    def replica(name: str) -> None:
        environ = {"SECRET": "s", WRITER_ENV_VAR: name}
        config = load_config(text=RACE_CONFIG, environ=environ)
        with Runtime(config, registry=registry, environ=environ) as runtime:
            engine = SyncEngine(runtime, client_factory=source.factory, now=lambda: NOW)
            reports[name] = engine.run(log_warnings=False)

    threads = [threading.Thread(target=replica, args=(name,)) for name in ("r-1", "r-2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert source.requests == 2  # one extra, not more: each replica asks once per token
    (stored,) = store.records().values()
    assert stored.access_token.reveal() == "race-token-2"  # the newer one, whoever came last
    assert stored.expires_at == NOW + timedelta(seconds=302)
    actions = {name: report.results[0].sinks[0].action for name, report in reports.items()}
    writer = stored.written_by
    assert actions[writer] == WRITTEN
    assert set(actions.values()) <= {WRITTEN, KEPT_NEWER}


def test_each_replicas_cycle_says_who_wrote_and_how_it_wakes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The replica that wrote wakes as the writer; the one that found the token fresh says
    who wrote it, stands by, reports no write of its own, and its metrics count a success
    (a skip, a fresh last-success time, the expiry it found) so no alert blames it."""
    MemoryStore.reset_all()
    registry = Registry(extra={"memory": MemoryProvider})
    source = BarrierSource()
    source.barrier = threading.Barrier(1)  # no race here: one replica after the other
    cycles = {}
    snapshots = {}
    with caplog.at_level(logging.INFO, logger="harbor_secrets"):
        for name in ("replica-a", "replica-b"):
            environ = {"SECRET": "s", WRITER_ENV_VAR: name}
            config = load_config(text=RACE_CONFIG, environ=environ)
            with Runtime(config, registry=registry, environ=environ) as runtime:
                watcher = Watcher(runtime, client_factory=source.factory, now=lambda: NOW)
                cycles[name] = watcher.run_cycle()
                assert watcher.health().ok
                snapshots[name] = watcher.metrics.snapshot()
    assert (cycles["replica-a"].role, cycles["replica-b"].role) == ("writer", "standby")
    assert cycles["replica-b"].report is not None
    assert cycles["replica-b"].report.count(WRITTEN) == 0
    assert source.requests == 1
    lines = [r for r in caplog.records if getattr(r, "event", "") == "watch.cycle"]
    assert [getattr(r, "role", None) for r in lines] == ["writer", "standby"]
    assert getattr(lines[1], "written_by", None) == ["replica-a"]
    assert "1 fresh (written by replica-a)" in lines[1].getMessage()
    assert lines[1].getMessage().endswith("as standby")
    (key,) = snapshots["replica-b"].expiry
    for name, writes, skips in (("replica-a", 1, 0), ("replica-b", 0, 1)):
        snapshot = snapshots[name]
        assert (snapshot.writes.get(key, 0), snapshot.skips.get(key, 0)) == (writes, skips), name
        assert snapshot.last_success[key] == NOW.timestamp(), name
        assert snapshot.expiry[key] == (NOW + timedelta(seconds=301)).timestamp(), name
