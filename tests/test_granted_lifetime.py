"""Watch mode judges a token by the lifetime it was granted, as ``status`` and readers do.

The review found (fix package B, item 2): ``/healthz`` and watch mode's wake-up asked the
freshness policy about an expiry without its granted lifetime, so against ``token_lifetime``
instead, while ``status`` and the readers used the record's own. With 600 s or 3600 s tokens
and ``token_lifetime`` 300, ``/healthz`` answered 503 "written under a clock that was wrong"
for a token ``status`` called fresh (a liveness probe restarts a working pod), and the loop
polled every ``schedule_period`` instead of sleeping to the deadline. The granted lifetime
now travels with every observed expiry, and one policy method judges a sink's health.

Also here (item 3): a token due on arrival is refreshed halfway through what is left of it;
the pacing now takes "where the engine finds it due" from the policy, so a wake-up capped by
``schedule_period`` no longer lands early and asks again before that point.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from harbor_secrets.config import load_config
from harbor_secrets.freshness import RefreshPolicy, SinkHealth, TokenState
from harbor_secrets.health import StatusServer
from harbor_secrets.registry import Registry
from harbor_secrets.runtime import Runtime
from harbor_secrets.sync import WRITTEN
from harbor_secrets.testing.memory import MemoryProvider, MemoryStore
from harbor_secrets.watch import Watcher, WatchPacing
from harbor_testkit.clock import ClockedSource, FakeClock

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
KEY = "harbor/sandbox/service_provider"
CONFIG = """
[refresh]
refresh_before = "150s"
token_lifetime = "300s"
schedule_period = "{period}"

[credentials.main]
client_id = "id"
client_secret = "env:SECRET"

[sinks.a]
provider = "memory"
name = "granted"

[[targets]]
environments = ["sandbox"]
scopes = ["service_provider"]
"""


@contextmanager
def watching(
    lifetime: int, period: str = "60s"
) -> Iterator[tuple[Watcher, FakeClock, ClockedSource]]:
    clock = FakeClock(NOW)
    issuer = ClockedSource(clock, lifetime, prefix="tok-granted")
    config = load_config(text=CONFIG.format(period=period), environ={})
    registry = Registry(extra={"memory": MemoryProvider})
    with Runtime(config, registry=registry, environ={"SECRET": "s3cret-value"}) as runtime:
        loop = Watcher(
            runtime,
            pacing=WatchPacing.for_config(config),
            client_factory=issuer.factory,
            now=clock.now,
            uniform=lambda low, high: low,
        )
        yield loop, clock, issuer
        loop.engine.close()


@pytest.mark.parametrize("lifetime", [600, 3600])
def test_healthz_judges_a_token_by_the_lifetime_it_was_granted(lifetime: int) -> None:
    with watching(lifetime) as (loop, clock, _):
        cycle = loop.run_cycle()
        assert cycle.report is not None
        assert cycle.report.count(WRITTEN) == 1
        stored = MemoryStore.get("granted").records()[KEY]
        policy = loop.pacing.refresh
        assert policy.assess(stored, clock.now()).state is TokenState.FRESH  # as status says
        verdict = loop.health()
        assert verdict.ok, verdict.reason  # was: 503 "written under a clock that was wrong"
        server = StatusServer("127.0.0.1", 0, health=loop.health)
        with server, urllib.request.urlopen(server.url + "/healthz", timeout=5) as answer:  # noqa: S310 - loopback
            assert answer.status == 200
        assert cycle.refresh_at == policy.deadline(stored.expires_at)


@pytest.mark.parametrize("lifetime", [600, 3600])
def test_the_loop_wakes_for_the_deadline_of_a_token_granted_longer(lifetime: int) -> None:
    """With schedule_period 600 s, the loop used to have no time to wait for (the expiry
    lay further ahead than token_lifetime allows) and slept 600 s, past the deadline."""
    with watching(lifetime, period="600s") as (loop, clock, issuer):
        cycle = loop.run_cycle()
        stored = MemoryStore.get("granted").records()[KEY]
        policy = loop.pacing.refresh
        deadline = policy.deadline(stored.expires_at)
        while issuer.fetches == 1:
            assert cycle.refresh_at == deadline
            clock.advance(cycle.delay)
            assert loop.health().ok, loop.health().reason
            cycle = loop.run_cycle()
        # The cycle that rewrites it starts within the writer's wake-up window.
        late = (clock.now() - deadline).total_seconds()
        assert 0 < late <= policy.watch_lateness(wrote_last=True), late
        assert cycle.report is not None
        assert cycle.report.count(WRITTEN) == 1


def test_a_store_without_issue_times_still_bounds_the_expiry_by_token_lifetime() -> None:
    """Where only the expiry is kept (an env file), nothing but token_lifetime can say what
    is too far ahead: such an expiry is judged by it, in /healthz as in status."""
    policy = RefreshPolicy(token_lifetime=300)
    far = NOW + timedelta(seconds=600)

    def health(expires_at: datetime, lifetime: float | None) -> SinkHealth:
        return policy.sink_health(expires_at, NOW, lifetime=lifetime, seen_at=NOW, grace=40)

    assert health(far, None) is SinkHealth.IMPLAUSIBLE
    assert health(far, 600) is SinkHealth.OK
    assert health(NOW, 600) is SinkHealth.EXPIRED
    expires = NOW + timedelta(seconds=300)  # deadline at 150 s, then 40 s of grace
    for moment, state in ((189.5, SinkHealth.OK), (190.5, SinkHealth.OVERDUE)):
        now = NOW + timedelta(seconds=moment)
        assert policy.sink_health(expires, now, lifetime=300, seen_at=None, grace=40) is state


def test_a_token_due_on_arrival_waits_for_its_halfway_point_past_the_schedule_period() -> None:
    """120 s tokens with refresh_before 150 s are due on arrival; the loop refreshes them
    60 s later (half of what is left). A 30 s schedule_period used to cut that sleep short
    and wake the loop in the due window, which asked Harbor again after 30 s."""
    with watching(120, period="30s") as (loop, clock, issuer):
        while clock.now() < NOW + timedelta(seconds=240):
            cycle = loop.run_cycle()
            assert cycle.report is not None
            assert cycle.report.count(WRITTEN) == 1
            assert cycle.refresh_at is not None
            halfway = (cycle.refresh_at - clock.now()).total_seconds()
            assert 59 <= halfway <= 60  # issue times are whole seconds
            assert cycle.delay >= halfway, cycle.delay
            clock.advance(cycle.delay)
        assert issuer.fetches == 4  # one per 60 s, not one per 30 s
