"""Watch mode's arithmetic without any clock: when to wake, how to back off, what is healthy.

Randomness is injected (``uniform`` returning the low or the high end of its range), so
every bound is checked at both of its extremes.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import click
import pytest

from harbor_secrets.cli_params import ListenAddress
from harbor_secrets.config import Job, load_config
from harbor_secrets.errors import IssuerUnavailableError, StoreError
from harbor_secrets.freshness import DUE_MARGIN, RefreshPolicy, WakeRole, WakeUp
from harbor_secrets.health import StatusServer, Verdict, judge
from harbor_secrets.metrics import SyncMetrics, error_reason
from harbor_secrets.registry import Registry
from harbor_secrets.runtime import Runtime
from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_secrets.sync import (
    FAILED,
    FRESH,
    KEPT_NEWER,
    WRITTEN,
    JobResult,
    SinkResult,
    SyncReport,
)
from harbor_secrets.testing.memory import MemoryProvider
from harbor_secrets.watch import Watcher, WatchPacing, failed_entirely, observations

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
JOB = Job("main", "sandbox", "service_provider", ("a", "b"))
OTHER = Job("main", "sandbox", "tower_access", ("a",))
BASE_CONFIG = """
[credentials.main]
client_id = "id"
client_secret = "env:SECRET"

[sinks.a]
provider = "memory"

[[targets]]
environments = ["sandbox"]
"""
REGISTRY = Registry(extra={"memory": MemoryProvider})


def low(a: float, b: float) -> float:
    return a


def high(a: float, b: float) -> float:
    return b


WRITER, STANDBY = WakeRole.WRITER, WakeRole.STANDBY


def policy(refresh_before: float = 150.0, **changes: float) -> WatchPacing:
    """Pacing around ``RefreshPolicy(refresh_before)``: its wake-up windows are the
    writer's (0, W/2) and a standby's (W, 2W), W a tenth of refresh_before (at most 5 s)."""
    values = {
        "max_sleep": 600.0,
        "min_sleep": 1.0,
        "backoff_base": 1.0,
        "backoff_cap": 30.0,
        "grace": 40.0,
    }
    values.update(changes)
    return WatchPacing(refresh=RefreshPolicy(refresh_before=refresh_before), **values)


def next_wake(done: SyncReport, refresh_before: float, now: datetime) -> WakeUp:
    return RefreshPolicy(refresh_before=refresh_before).next_wake(observations(done), now)


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def wake(seconds: float) -> WakeUp:
    """What the policy says for a token whose deadline is ``seconds`` from NOW."""
    refresh = RefreshPolicy()
    expires_at = at(seconds) + timedelta(seconds=refresh.refresh_before)
    return WakeUp(refresh.deadline(expires_at), refresh.due_at(expires_at))


def report(*jobs: JobResult) -> SyncReport:
    return SyncReport(results=list(jobs), started_at=NOW, finished_at=NOW)


# -- the policy drawn from [refresh] -----------------------------------------------------------


def test_default_policy_wakes_within_the_schedule_period_and_backs_off_inside_the_window() -> None:
    chosen = WatchPacing.for_config(load_config(text=BASE_CONFIG, environ={}))
    assert chosen.refresh.refresh_before == 150
    assert chosen.max_sleep == 60  # schedule_period: a changed store is seen within a minute
    assert chosen.min_sleep == 1
    # W = a tenth of refresh_before, at most 5 s: the writer within W/2, a standby W to 2W.
    assert chosen.refresh.wake_spread == 5
    assert chosen.refresh.wake_window(WRITER) == (0, 2.5)
    assert chosen.refresh.wake_window(STANDBY) == (5, 10)
    # Well below lifetime − refresh_before (150 s): a recovering issuer is retried in time.
    assert chosen.backoff_cap == 30
    # A standby's lateness (2W + margin) + one token request with its retries (30 s) + 5 s.
    assert chosen.grace == pytest.approx(45.05)


def test_short_lived_policy_scales_every_bound_to_the_window() -> None:
    text = BASE_CONFIG + '[refresh]\nrefresh_before = "2s"\ntoken_lifetime = "4s"\n'
    chosen = WatchPacing.for_config(load_config(text=text, environ={}))
    assert chosen.min_sleep == pytest.approx(0.2)
    assert chosen.refresh.wake_window(WRITER) == pytest.approx((0, 0.1))
    assert chosen.refresh.wake_window(STANDBY) == pytest.approx((0.2, 0.4))
    assert chosen.backoff_cap == pytest.approx(0.4)
    assert chosen.grace == pytest.approx(1.0)  # half the window at most


# -- sleeping until due ------------------------------------------------------------------------


def test_sleeps_until_due_plus_at_most_5_percent_jitter() -> None:
    # 5 % of a 40 s sleep (2 s) is inside the writer's window (W/2 = 2.5 s): it rules.
    wait = 40 + DUE_MARGIN
    assert policy().wake_delay(wake(40), NOW, 0, low) == pytest.approx(wait)
    assert policy().wake_delay(wake(40), NOW, 0, high) == pytest.approx(wait * 1.05)


def test_a_standby_wakes_one_to_two_spreads_after_the_writer_would() -> None:
    chosen = policy(max_sleep=600.0)
    wait = 60 + DUE_MARGIN
    assert chosen.wake_delay(wake(60), NOW, 0, low, role=STANDBY) == pytest.approx(wait + 5)
    assert chosen.wake_delay(wake(60), NOW, 0, high, role=STANDBY) == pytest.approx(wait + 10)
    # ... which is after the writer's latest wake-up by half a spread at least.
    writer_latest = chosen.wake_delay(wake(60), NOW, 0, high)
    assert chosen.wake_delay(wake(60), NOW, 0, low, role=STANDBY) - writer_latest >= 2.5


def test_a_capped_wake_up_never_lands_in_the_due_window_before_the_turn() -> None:
    """The engine rewrites a token from 1 s before its deadline; a replica woken there by
    max_sleep would ask out of turn (the collision the failover test caught after a
    restart), so the sleep then runs on to its turn."""
    chosen = policy(refresh_before=20.0, max_sleep=5.0)  # W = 2 s
    # Deadline in 5.5 s: a 5 s cap would wake it 0.5 s before the deadline, due already.
    assert chosen.wake_delay(wake(5.5), NOW, 0, low, role=STANDBY) == pytest.approx(7.55)
    assert chosen.wake_delay(wake(5.5), NOW, 0, high, role=STANDBY) == pytest.approx(9.55)
    assert chosen.wake_delay(wake(4.5), NOW, 0, low) == pytest.approx(4.55)
    # Deadline in 6.5 s: the cap wakes it before the due window: the cap holds.
    assert chosen.wake_delay(wake(6.5), NOW, 0, low, role=STANDBY) == 5.0
    # Failing: the backoff still rules.
    assert chosen.wake_delay(wake(5.5), NOW, 3, high, role=STANDBY) == 4.0


def test_a_standby_backs_off_and_is_capped_like_the_writer() -> None:
    chosen = policy(max_sleep=60.0, backoff_cap=30.0)
    assert chosen.wake_delay(wake(100), NOW, 3, high, role=STANDBY) == 4.0
    assert chosen.wake_delay(wake(1000), NOW, 0, high, role=STANDBY) == 60.0


def test_the_policy_floor_counts_the_latest_standby() -> None:
    refresh = RefreshPolicy(refresh_before=150.0)
    chosen = WatchPacing.for_config(load_config(text=BASE_CONFIG, environ={}))
    latest = chosen.wake_delay(wake(0), NOW, 0, high, role=STANDBY)
    assert refresh.watch_lateness() == pytest.approx(latest)
    writer_latest = chosen.wake_delay(wake(0), NOW, 0, high, role=WRITER)
    # The writer's 5 %-of-the-sleep jitter is less than its window on a short sleep.
    assert refresh.watch_lateness(wrote_last=True) == pytest.approx(DUE_MARGIN + 2.5)
    assert writer_latest <= refresh.watch_lateness(wrote_last=True)


@pytest.mark.parametrize("refresh_before", [2.0, 20.0, 150.0, 600.0])
def test_the_pacing_draws_each_role_from_the_policys_wake_window(refresh_before: float) -> None:
    """One home for the turns: the pacing's earliest and latest wake-up of each role are the
    ends of RefreshPolicy.wake_window, and watch_lateness (the reader floors) is its end."""
    chosen = policy(refresh_before=refresh_before, max_sleep=10_000.0)
    refresh = chosen.refresh
    base = 1000 + DUE_MARGIN  # a long sleep: 5 % of it is more than any window
    for role in (WRITER, STANDBY):
        earliest, latest = refresh.wake_window(role)
        assert chosen.wake_delay(wake(1000), NOW, 0, low, role=role) == pytest.approx(
            base + earliest
        )
        assert chosen.wake_delay(wake(1000), NOW, 0, high, role=role) == pytest.approx(
            base + latest
        )
    assert refresh.watch_lateness(wrote_last=True) == DUE_MARGIN + refresh.wake_window(WRITER)[1]
    assert refresh.watch_lateness() == DUE_MARGIN + refresh.wake_window(STANDBY)[1]
    # A standby never looks before the writer's latest wake-up.
    assert refresh.wake_window(STANDBY)[0] > refresh.wake_window(WRITER)[1]


def test_jitter_is_capped_in_seconds_so_it_never_eats_the_window() -> None:
    delay = policy().wake_delay(wake(500), NOW, 0, high)
    assert delay == pytest.approx(500 + DUE_MARGIN + 2.5)  # W/2, not 5 % of 500 s


def test_never_sleeps_past_the_cap_nor_below_the_floor() -> None:
    chosen = policy(max_sleep=60.0, min_sleep=1.0)
    assert chosen.wake_delay(wake(1000), NOW, 0, high) == 60.0
    assert chosen.wake_delay(WakeUp(), NOW, 0, high) == 60.0
    assert chosen.wake_delay(wake(-30), NOW, 0, high) == 1.0  # already due: no busy loop


def test_backoff_doubles_to_its_cap_and_keeps_growing_through_jitter() -> None:
    chosen = policy(backoff_base=1.0, backoff_cap=30.0)
    highs = [chosen.backoff(n, high) for n in range(1, 8)]
    lows = [chosen.backoff(n, low) for n in range(1, 8)]
    assert highs == [1, 2, 4, 8, 16, 30, 30]
    assert lows == [0.5, 1, 2, 4, 8, 15, 15]
    # "Equal jitter": the shortest next delay is never shorter than the longest one before it.
    assert all(lows[n + 1] >= highs[n] for n in range(4))


def test_failures_wake_on_the_backoff_but_never_after_a_healthy_token_falls_due() -> None:
    chosen = policy(backoff_cap=30.0)
    assert chosen.wake_delay(wake(100), NOW, 3, high) == 4.0
    assert chosen.wake_delay(wake(2), NOW, 6, low) == pytest.approx(2 + DUE_MARGIN)


# -- what falls due next -----------------------------------------------------------------------


def test_next_wake_is_the_earliest_healthy_sink_and_ignores_failed_ones() -> None:
    job = JobResult(JOB, token_expires_at=at(300))
    job.sinks = [
        SinkResult("a", "memory", "k", WRITTEN, expires_at=at(300)),
        SinkResult("b", "memory", "k", FAILED, reason="write-failed", expires_at=at(10)),
    ]
    other = JobResult(OTHER, sinks=[SinkResult("a", "memory", "k2", FRESH, expires_at=at(200))])
    woken = next_wake(report(job, other), 150, NOW)
    assert woken.refresh_at == at(50)
    assert not woken.short


def test_a_sink_that_kept_a_newer_token_is_due_no_earlier_than_the_fetched_one() -> None:
    job = JobResult(JOB, token_expires_at=at(300))
    job.sinks = [SinkResult("a", "memory", "k", KEPT_NEWER, expires_at=at(100))]
    woken = next_wake(report(job), 150, NOW)
    assert (woken.refresh_at, woken.short) == (at(150), False)


def test_a_token_due_on_arrival_is_refreshed_at_half_its_remaining_life() -> None:
    job = JobResult(JOB, token_expires_at=at(60))
    job.sinks = [SinkResult("a", "memory", "k", WRITTEN, expires_at=at(60))]
    woken = next_wake(report(job), 150, NOW)
    assert (woken.refresh_at, woken.short) == (at(30), True)


def test_failed_entirely_only_when_nothing_succeeded() -> None:
    failed = JobResult(JOB, error="down", sinks=[SinkResult("a", "m", "k", FAILED)])
    fresh = JobResult(OTHER, sinks=[SinkResult("a", "m", "k", FRESH, expires_at=at(200))])
    assert failed_entirely(report(failed))
    assert not failed_entirely(report(failed, fresh))
    assert not failed_entirely(report(fresh))


# -- /healthz ----------------------------------------------------------------------------------

KEY = ("main", "sandbox", "service_provider", "a")


def verdict(
    expiry: dict[tuple[str, str, str, str], float],
    *,
    cycles: int = 3,
    last_cycle_error: str | None = None,
) -> Verdict:
    return judge(
        now=datetime.fromtimestamp(1000.0, UTC),
        expected=[KEY],
        expiry={key: datetime.fromtimestamp(when, UTC) for key, when in expiry.items()},
        policy=RefreshPolicy(refresh_before=150.0),
        grace=40.0,
        cycles=cycles,
        last_cycle_error=last_cycle_error,
    )


def test_healthy_until_past_due_by_more_than_the_grace() -> None:
    assert verdict({KEY: 1000 + 150 - 40}).ok
    late = verdict({KEY: 1000 + 150 - 41})
    assert not late.ok
    status, body, _ = late.response()
    assert status == 503
    assert b"past due" in body
    assert b"main/sandbox/service_provider -> a" in body


def test_unhealthy_before_the_first_cycle_after_a_total_failure_or_for_an_unknown_token() -> None:
    assert not verdict({KEY: 1300}, cycles=0).ok
    failed = verdict({KEY: 1300}, last_cycle_error="issuer down")
    assert "failed entirely: issuer down" in failed.reason
    assert not verdict({}).ok


def test_a_long_failure_reason_is_shortened_at_a_word_boundary() -> None:
    words = " ".join(f"word{index:03d}" for index in range(200))
    status, body, _ = verdict({KEY: 5000}, last_cycle_error=words).response()
    reason = json.loads(body)["reason"]
    assert status == 503
    assert reason.endswith(" …")
    assert len(reason) <= 300
    kept = reason.removesuffix(" …").split()
    assert all(re.fullmatch(r"word\d{3}", word) for word in kept[-3:])  # no word cut short


def test_a_cycle_that_failed_entirely_names_the_sinks_it_failed() -> None:
    other = ("main", "sandbox", "tower_access", "a")

    def sinks(error: str, failed: list[tuple[str, str, str, str]]) -> list[str]:
        verdict = judge(
            now=NOW,
            expected=[KEY, other],
            expiry={},
            policy=RefreshPolicy(refresh_before=150.0),
            grace=40.0,
            cycles=2,
            last_cycle_error=error,
            failed_sinks=failed,
        )
        names: list[str] = json.loads(verdict.response()[1])["sinks"]
        return names

    assert sinks("issuer down", [other]) == ["main/sandbox/tower_access -> a"]
    # a run that failed before it looked at any sink (a file: secret vanished): every one
    assert len(sinks("the configuration's file: secret vanished", [])) == 2


def test_the_server_header_has_no_trailing_space() -> None:
    server = StatusServer("127.0.0.1", 0, health=lambda: Verdict(True))
    issuer = StandInIssuer()
    with server, issuer:
        for url, name in ((server.url + "/healthz", "harbor-secrets"), (issuer.url, "stand-in")):
            try:
                with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
                    header = response.headers["Server"]
            except urllib.error.HTTPError as exc:
                header = exc.headers["Server"]
            assert header == header.strip(), repr(header)
            assert header.startswith(name)


def test_watch_announces_its_tokens_and_sinks_not_their_product(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = load_config(text=BASE_CONFIG, environ={})
    with Runtime(config, registry=REGISTRY, environ={}) as runtime:
        watcher = Watcher(runtime, stop=threading.Event())
        watcher.stop.set()
        with caplog.at_level(logging.INFO, logger="harbor_secrets.watch"):
            watcher.run()
    (started,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("watching")]
    tokens = len(config.jobs())
    sinks = len(config.sinks)
    assert started.startswith(f"watching {tokens} token(s) in {sinks} sink(s);"), started


def test_healthy_response_is_plain_ok() -> None:
    assert verdict({KEY: 1300}).response() == (200, b"ok\n", "text/plain; charset=utf-8")


# -- --listen ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("9464", ("127.0.0.1", 9464)),
        ("0", ("127.0.0.1", 0)),
        ("0.0.0.0:9464", ("0.0.0.0", 9464)),  # noqa: S104 - asked for explicitly
        ("localhost:9100", ("localhost", 9100)),
        ("[::1]:9464", ("::1", 9464)),
    ],
)
def test_listen_defaults_to_loopback(text: str, address: tuple[str, int]) -> None:
    assert ListenAddress().convert(text, None, None) == address


@pytest.mark.parametrize("text", [":9464", "::1:9464", "nine", "70000", "[::1]9464", "host:"])
def test_listen_rejects_ambiguous_or_invalid_addresses(text: str) -> None:
    with pytest.raises(click.BadParameter) as caught:
        ListenAddress().convert(text, None, None)
    assert caught.value.exit_code == 2
    assert "fix:" in caught.value.format_message()


# -- metric facts ------------------------------------------------------------------------------


class VaultDownError(IssuerUnavailableError):
    """A provider's own subclass still maps to the core's reason."""


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (IssuerUnavailableError, "issuer-unavailable"),
        (VaultDownError, "issuer-unavailable"),
        (StoreError, "store-error"),
        (KeyError, "unexpected"),
    ],
)
def test_failure_reasons_come_from_a_short_fixed_list(error: type[Exception], reason: str) -> None:
    assert error_reason(error) == reason


def test_one_run_becomes_counters_and_gauges() -> None:
    metrics = SyncMetrics([JOB])
    job = JobResult(JOB, fetch_seconds=0.2, token_expires_at=at(300))
    job.sinks = [
        SinkResult("a", "memory", "k", WRITTEN, expires_at=at(300)),
        SinkResult("b", "memory", "k", FAILED, reason="lock-timeout", expires_at=at(20)),
    ]
    metrics.record(SyncReport(results=[job], started_at=NOW, finished_at=at(1)))
    snap = metrics.snapshot()
    a, b = (
        ("main", "sandbox", "service_provider", "a"),
        ("main", "sandbox", "service_provider", "b"),
    )
    assert snap.writes == {a: 1, b: 0}
    assert snap.skips == {a: 0, b: 0}
    assert snap.failures == {(b, "lock-timeout"): 1}
    assert snap.expiry == {a: at(300).timestamp(), b: at(20).timestamp()}
    assert snap.last_success == {a: at(1).timestamp()}
    assert snap.token_requests["sandbox"].count == 1
    assert snap.token_requests["sandbox"].cumulative()[3] == ("0.25", 1)


def test_restoring_keeps_only_configured_sinks_and_sane_values() -> None:
    metrics = SyncMetrics([JOB])
    a = {"credentials": "main", "environment": "sandbox", "scope": "service_provider", "sink": "a"}
    gone = {**a, "sink": "removed"}
    restored = metrics.restore(
        [
            ("harbor_secrets_writes_total", a, 7.0),
            ("harbor_secrets_writes_total", gone, 9.0),  # a sink no longer configured
            ("harbor_secrets_skips_total", a, float("nan")),
            ("harbor_secrets_failures_total", {**a, "reason": "lock-timeout"}, 2.0),
            (
                "harbor_secrets_token_request_seconds_bucket",
                {"environment": "sandbox", "le": "1"},
                3,
            ),
        ]
    )
    snap = metrics.snapshot()
    key = ("main", "sandbox", "service_provider", "a")
    assert restored == 2
    assert snap.writes[key] == 7
    assert snap.skips[key] == 0
    assert snap.failures == {(key, "lock-timeout"): 2}
    assert ("main", "sandbox", "service_provider", "removed") not in snap.writes
    assert snap.token_requests == {}  # buckets that are not ours are dropped, not misread


def test_a_token_granted_less_than_refresh_before_is_healthy_while_the_loop_keeps_it() -> None:
    """The issuer grants 4 s; refresh_before is 150 s. The loop rewrites such a token at half
    its life, so it is healthy until that point (plus grace) and never once it expired."""
    written = datetime.fromtimestamp(1000.0, UTC)
    expiry = {KEY: written + timedelta(seconds=4)}

    def at_time(seconds: float, grace: float = 1.0) -> Verdict:
        return judge(
            now=written + timedelta(seconds=seconds),
            expected=[KEY],
            expiry=expiry,
            policy=RefreshPolicy(refresh_before=150.0),
            grace=grace,
            cycles=3,
            last_cycle_error=None,
            seen={KEY: written},
        )

    assert at_time(0).ok
    assert at_time(3).ok  # rewritten at 2 s; 1 s of grace
    assert not at_time(3.1).ok  # the loop should have rewritten it by now
    stuck = at_time(4, grace=40)
    assert not stuck.ok  # whatever the grace: readers would find a dead token
    assert "expired" in stuck.reason
