"""The freshness policy: one rule for sync, status, watch, /healthz and the readers.

The property test is the point of the module: for any stored record and any moment,
``status`` calls a token due (missing, expired, due) exactly when ``sync`` would write it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harbor_secrets.commands.status import collect_status
from harbor_secrets.config import load_config
from harbor_secrets.freshness import (
    DUE_SLACK,
    Observation,
    ReaderState,
    RefreshPolicy,
    TokenState,
    WakeUp,
)
from harbor_secrets.registry import Registry
from harbor_secrets.runtime import Runtime
from harbor_secrets.sync import FAILED, FRESH, WOULD_WRITE, SyncEngine
from harbor_secrets.testing.memory import MemoryProvider, MemoryStore
from harbor_testkit.clock import EPOCH
from harbor_testkit.records import make_record

POLICY = RefreshPolicy(refresh_before=150, schedule_period=60, token_lifetime=300)


# -- the states -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "state"),
    [
        (331, TokenState.IMPLAUSIBLE),  # issued 31 s from now: beyond the 30 s allowance
        (330, TokenState.FRESH),
        (300, TokenState.FRESH),
        (151.5, TokenState.FRESH),
        (151, TokenState.DUE),  # refresh_before plus the one-second slack
        (150, TokenState.DUE),
        (1, TokenState.DUE),
        (0, TokenState.EXPIRED),
        (-30, TokenState.EXPIRED),
    ],
)
def test_states_by_time_left(left: float, state: TokenState) -> None:
    expires_at = EPOCH + timedelta(seconds=300)
    now = expires_at - timedelta(seconds=left)
    verdict = POLICY.assess(make_record(issued_at=EPOCH), now)
    assert verdict.state is state
    assert verdict.seconds_left == pytest.approx(left)
    assert verdict.due_at == expires_at - timedelta(seconds=150) - DUE_SLACK


def test_nothing_stored_is_missing_and_a_failed_read_is_unreadable() -> None:
    assert POLICY.assess(None, EPOCH).state is TokenState.MISSING
    assert POLICY.unreadable().state is TokenState.UNREADABLE
    assert {state for state in TokenState if state.needs_refresh} == {
        TokenState.MISSING,
        TokenState.IMPLAUSIBLE,  # written under a wrong clock (tests/test_clock_steps.py)
        TokenState.EXPIRED,
        TokenState.DUE,
    }


def test_the_deadline_is_refresh_before_and_due_comes_a_slack_earlier() -> None:
    expires_at = EPOCH + timedelta(seconds=300)
    assert POLICY.deadline(expires_at) == EPOCH + timedelta(seconds=150)
    assert POLICY.due_at(expires_at) == EPOCH + timedelta(seconds=149)
    record = make_record(issued_at=EPOCH)
    assert POLICY.assess(record, EPOCH + timedelta(seconds=149)).state is TokenState.DUE
    assert POLICY.assess(record, EPOCH + timedelta(seconds=148.9)).state is TokenState.FRESH


def test_overdue_counts_from_the_deadline_plus_grace() -> None:
    expires_at = EPOCH + timedelta(seconds=300)
    assert not POLICY.overdue(expires_at, EPOCH + timedelta(seconds=190), grace=40)
    assert POLICY.overdue(expires_at, EPOCH + timedelta(seconds=190.5), grace=40)


def test_watch_wakes_at_the_earliest_deadline_and_halves_a_short_lived_token() -> None:
    seen = [
        Observation(EPOCH + timedelta(seconds=300), refreshed=True),
        Observation(EPOCH + timedelta(seconds=200), refreshed=False),
    ]
    wake = POLICY.next_wake(seen, EPOCH)
    assert (wake.refresh_at, wake.short) == (EPOCH + timedelta(seconds=50), False)
    assert wake.due_from == POLICY.due_at(EPOCH + timedelta(seconds=200))
    short = [Observation(EPOCH + timedelta(seconds=100), refreshed=True)]
    wake = POLICY.next_wake(short, EPOCH)
    assert (wake.refresh_at, wake.short) == (EPOCH + timedelta(seconds=50), True)
    assert POLICY.next_wake([], EPOCH) == WakeUp(None, None, False)


@pytest.mark.parametrize(
    ("left", "state"),
    [
        (None, ReaderState.MISSING),
        (-1, ReaderState.EXPIRED),
        (0, ReaderState.EXPIRED),
        (29.5, ReaderState.SHORT),
        (30, ReaderState.USABLE),
        (200, ReaderState.USABLE),
    ],
)
def test_readers_need_their_minimum_left(left: float | None, state: ReaderState) -> None:
    record = None if left is None else make_record(issued_at=EPOCH)
    now = EPOCH + timedelta(seconds=300 - (left or 0))
    verdict = POLICY.for_reader(record, now, min_remaining=30)
    assert verdict.state is state
    assert verdict.usable is (state is ReaderState.USABLE)


def test_policy_warnings_and_the_reader_floor() -> None:
    assert POLICY.warnings() == []
    assert POLICY.reader_floor() == 90
    # Watch mode: a standby may start 2W (10 s) + 0.05 s after the deadline, and its write
    # land a second later; the replica that wrote last, W/2 (2.5 s) after it.
    assert POLICY.reader_floor(watching=True) == pytest.approx(150 - 10.05 - 1)
    assert POLICY.reader_floor(watching=True, wrote_last=True) == pytest.approx(150 - 2.55 - 1)
    assert POLICY.reader_floor(propagation=70) == 20
    tight = RefreshPolicy(refresh_before=60, schedule_period=60)
    assert any("schedule period" in note for note in tight.warnings())
    assert tight.warnings(watching=True) == []
    wasteful = RefreshPolicy(refresh_before=300, token_lifetime=300)
    assert any("every run rewrites every token" in note for note in wasteful.warnings())


def test_availability_budget_from_the_defaults() -> None:
    scheduled = POLICY.availability(watching=False, request_budget=30)
    assert scheduled.reader_floor == 90
    assert scheduled.reader_floor_slow_issuer == 61  # a 30 s request, 1 s of it prompt
    assert scheduled.outage_survived == 90
    assert scheduled.outage_survived_at_best == 300
    assert scheduled.outage_before_readers_refuse == 60  # get/exec want 30 s
    assert scheduled.write_interval == 180
    watching = POLICY.availability(watching=True, request_budget=30)
    assert watching.reader_floor == pytest.approx(138.95)
    assert watching.reader_floor_writer_up == pytest.approx(146.45)
    assert watching.outage_survived == pytest.approx(138.95)
    assert watching.wake_spread == 5
    assert watching.to_dict()["reader_floor_seconds"] == 138.95


def test_a_volume_reader_loses_the_kubelets_delay_from_every_figure() -> None:
    policy = RefreshPolicy(refresh_before=210)
    budget = policy.availability(watching=False, request_budget=30, propagation=95)
    assert budget.reader_floor == 55
    assert budget.outage_survived_at_best == 205


# -- status and sync agree ------------------------------------------------------------------

REGISTRY = Registry(extra={"memory": MemoryProvider})
KEY = "harbor/sandbox/service_provider"


def config_text(refresh_before: int) -> str:
    return f"""
[refresh]
refresh_before = {refresh_before}

[credentials.main]
client_id = "id"
client_secret = "env:SECRET"

[sinks.a]
provider = "memory"
name = "property"

[[targets]]
environments = ["sandbox"]
scopes = ["service_provider"]
"""


@settings(max_examples=300, deadline=None)
@given(
    refresh_before=st.integers(min_value=1, max_value=299),
    stored=st.one_of(st.none(), st.integers(min_value=-400, max_value=700)),
    micros=st.integers(min_value=0, max_value=999_999),
    unreadable=st.booleans(),
)
def test_status_says_due_exactly_when_sync_would_write(
    refresh_before: int, stored: int | None, micros: int, unreadable: bool
) -> None:
    """``stored``: seconds from now to the stored token's expiry (None: nothing stored).

    ``now`` carries microseconds while stored times are whole seconds: the boundary where a
    rounding difference between two rules would show.
    """
    now = datetime(2026, 6, 1, 12, 0, 0, micros, tzinfo=UTC)
    store = MemoryStore.get("property")
    store.clear()
    store.fail_reads = unreadable
    if stored is not None:
        expires_at = now.replace(microsecond=0) + timedelta(seconds=stored)
        store.put(KEY, make_record(issued_at=expires_at - timedelta(seconds=300)))
    config = load_config(text=config_text(refresh_before), environ={})
    with Runtime(config, registry=REGISTRY, environ={"SECRET": "s"}) as runtime:
        (row,) = collect_status(runtime, now)
        engine = SyncEngine(runtime, now=lambda: now)
        report = engine.run(dry_run=True, log_warnings=False)
    (sink,) = report.results[0].sinks
    says_due = TokenState(row["state"]).needs_refresh
    assert says_due == (sink.action == WOULD_WRITE), (row, sink)
    if unreadable:
        assert (row["state"], sink.action) == ("unreadable", FAILED)
    elif not says_due:
        assert sink.action == FRESH
    assert store.writes == 0  # a dry run writes nothing
