"""Watch mode: stay up and refresh each token when it falls due, until told to stop.

One :class:`~harbor_secrets.runtime.Runtime` (providers built once) serves every cycle, and
each cycle is one ordinary engine pass, so due-ness, one token request per token and the
monotonic write rule are exactly those of a scheduled run. Between cycles the loop sleeps
until the earliest stored token falls due (the freshness policy says when) plus a little
jitter, no longer than ``schedule_period`` (so a store changed behind its back is noticed)
unless that would wake it in the token's due window before its turn, and after failures
on an exponential backoff capped well inside the refresh window. The stop flag is looked
at only between cycles: a write in flight always completes.

Several replicas may watch one store (no leader election: the store's compare-and-set is
the fence). Identical replicas read the same expiry, so with a jitter of a few percent they
would wake within a few hundred milliseconds of each other, all find the token due and all
ask Harbor. So the pacing depends on who wrote: the replica that wrote every token it saw
(its *writer* role) wakes within W/2 of the deadline, every other replica (*standby*)
between W and 2W, where W is the freshness policy's ``wake_spread`` (a tenth of
``refresh_before``, at most 5 s). A standby then finds the new token and sleeps again, so
with every replica up Harbor sees one request per refresh; if the writer is gone, the first
standby to wake refreshes and becomes the writer. Both windows are the freshness policy's
(``wake_window``), and its watch-mode reader floor counts their end (``watch_lateness``).

Every time this loop judges (when to wake, ``/healthz``) is read from the engine's clock,
which follows the issuer's once a token response shows this host's clock is wrong.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from harbor_secrets._serving import handle_signals
from harbor_secrets.config import Config, Job
from harbor_secrets.errors import EXIT_FAILURE, EXIT_OK, HarborSecretsError, describe_error
from harbor_secrets.freshness import (
    DUE_MARGIN,
    Observation,
    RefreshPolicy,
    WakeRole,
    WakeUp,
    seconds_between,
)
from harbor_secrets.health import Verdict, judge
from harbor_secrets.metrics import SinkKey, SyncMetrics, observed_expiry, sink_key
from harbor_secrets.record import format_time
from harbor_secrets.runtime import Runtime
from harbor_secrets.sync import (
    FAILED,
    FRESH,
    KEPT_NEWER,
    WRITTEN,
    ClientFactory,
    SyncEngine,
    SyncReport,
    default_client_factory,
)

log = logging.getLogger(__name__)

Uniform = Callable[[float, float], float]
#: A replica's role in the next wake-up (see the module docstring).
WRITER = WakeRole.WRITER
STANDBY = WakeRole.STANDBY


@dataclass(frozen=True)
class WatchPacing:
    """How long to sleep between cycles; :meth:`for_config` derives it from ``[refresh]``.

    When a token falls due is the freshness policy's answer (``refresh``), and so is each
    role's wake-up window after it (``wake_window``: the writer within W/2, a standby
    between W and 2W); this adds only the pacing around them: bounds on the sleep, the
    writer's jitter being at most 5 % of its sleep, backoff after failures, and the grace
    ``/healthz`` allows a healthy loop.
    """

    refresh: RefreshPolicy
    max_sleep: float  # ``schedule_period``: a store changed by someone else is seen this soon
    min_sleep: float  # never spin, whatever the store says
    backoff_base: float
    backoff_cap: float
    grace: float  # how far past due /healthz tolerates a token (the wake-up slack)
    jitter_fraction: float = 0.05

    @classmethod
    def for_config(cls, config: Config) -> WatchPacing:
        refresh = config.refresh
        window = refresh.refresh_before
        interval = max(refresh.token_lifetime - window, 1.0)  # between two writes of a token
        min_sleep = min(1.0, max(0.05, window / 10))
        # A recovering issuer is retried within a fifth of the refresh window, and never
        # later than a fifth of the normal interval between writes.
        backoff_cap = max(min_sleep, min(30.0, window / 5, interval / 5))
        # A healthy standby starts its cycle within watch_lateness of the deadline, and the
        # cycle's token request may take the whole budget.
        grace = min(window / 2, refresh.watch_lateness() + config.http.total_budget + 5.0)
        return cls(
            refresh=refresh,
            max_sleep=max(refresh.schedule_period, min_sleep),
            min_sleep=min_sleep,
            backoff_base=min_sleep,
            backoff_cap=backoff_cap,
            grace=grace,
        )

    def backoff(self, failures: int, uniform: Uniform) -> float:
        """Delay after ``failures`` failed cycles in a row: doubling, capped, "equal jitter".

        Drawn from the upper half of the window so the delay keeps growing while spread out.
        """
        window = min(self.backoff_cap, self.backoff_base * 2.0 ** min(failures - 1, 30))
        return uniform(window / 2, window)

    def wake_delay(
        self,
        wake: WakeUp,
        now: datetime,
        failures: int,
        uniform: Uniform,
        *,
        role: WakeRole = WRITER,
    ) -> float:
        """Seconds to sleep: until ``wake.refresh_at`` plus a draw from the role's wake-up
        window, backoff if failing, within bounds.

        The writer's draw is also at most 5 % of the sleep (a short sleep wakes nearly on
        time); a standby's lies between W and 2W, so it looks only after the writer's cycle
        has stored the new token.

        ``max_sleep`` bounds every sleep but one: a wake-up it would cut short into the
        token's due window (from ``wake.due_from``, where the engine finds it due) would
        make this replica ask before its turn, so then the sleep runs to its turn.
        """
        cap = self.max_sleep
        if wake.refresh_at is None:
            wait = self.max_sleep
        else:
            wait = max(seconds_between(now, wake.refresh_at), 0.0) + DUE_MARGIN
            low, high = self.refresh.wake_window(role)
            if role == WRITER:
                high = min(high, low + self.jitter_fraction * wait)
            wait += uniform(low, high)
            due_from = wake.due_from
            if due_from is not None and self.max_sleep >= seconds_between(now, due_from):
                cap = max(cap, wait)  # the cap would land in the due window: wait the turn
        if failures:
            wait = min(wait, self.backoff(failures, uniform))
        return min(max(wait, self.min_sleep), cap)


def _moment(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def observations(
    report: SyncReport, framed: Callable[[Job, datetime], datetime] | None = None
) -> list[Observation]:
    """What one run saw of each sink that did not fail (failed sinks are left to backoff);
    ``framed`` puts each job's expiry, by its issuer's clock, in the caller's frame."""
    seen = []
    for job in report.results:
        for sink in job.sinks:
            if sink.action not in (WRITTEN, FRESH, KEPT_NEWER):
                continue
            observed = observed_expiry(job, sink)
            if observed is not None:
                refreshed = sink.action != FRESH
                expires_at = observed.expires_at
                if framed is not None:
                    expires_at = framed(job.job, expires_at)
                seen.append(Observation(expires_at, refreshed, observed.lifetime))
    return seen


def wrote_every_token(report: SyncReport, written: Mapping[SinkKey, datetime]) -> bool:
    """Whether this replica wrote every token it saw this cycle, so it wakes first next.

    ``written`` is the expiry this replica last wrote per sink: a token found fresh with
    that expiry is still its own (it woke on ``schedule_period`` before the token was due);
    any other fresh token, or a write refused because the store held a newer one, was
    another refresher's. Sinks that failed say nothing either way.
    """
    seen = False
    for job in report.results:
        for sink in job.sinks:
            if sink.action == WRITTEN:
                seen = True
            elif sink.action == FRESH and sink.expires_at is not None:
                if written.get(sink_key(job.job, sink.sink)) != sink.expires_at:
                    return False
                seen = True
            elif sink.action == KEPT_NEWER:
                return False
    return seen


def writers(report: SyncReport) -> list[str]:
    """The refreshers that wrote the tokens this cycle found fresh (for the cycle log)."""
    return sorted(
        {
            sink.written_by
            for job in report.results
            for sink in job.sinks
            if sink.action == FRESH and sink.written_by
        }
    )


def failed_entirely(report: SyncReport) -> bool:
    """No sink was refreshed or found fresh, and something failed."""
    actions = [sink.action for job in report.results for sink in job.sinks]
    succeeded = any(action in (WRITTEN, FRESH, KEPT_NEWER) for action in actions)
    return not succeeded and (FAILED in actions or any(job.error for job in report.results))


def failed_sinks(report: SyncReport) -> tuple[SinkKey, ...]:
    """The (credentials, environment, scope, sink) of every sink that failed in ``report``."""
    return tuple(
        sink_key(job.job, sink.sink)
        for job in report.results
        for sink in job.sinks
        if sink.action == FAILED
    )


def _first_error(report: SyncReport) -> str:
    errors = [f"{job.job.label}: {job.error}" for job in report.results if job.error]
    errors += [
        f"{job.job.label} -> {sink.sink}: {sink.error or sink.reason}"
        for job in report.results
        for sink in job.sinks
        if sink.action == FAILED and not job.error
    ]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return (errors[0] if errors else "unknown failure") + more


@dataclass(frozen=True)
class Cycle:
    """One pass of the loop, as tests and the cycle log line see it."""

    number: int
    started: float  # time.monotonic()
    report: SyncReport | None  # None when the run failed before any sink was looked at
    error: str | None  # set when the cycle failed entirely
    consecutive_failures: int
    #: The refresh point this replica wakes for (the freshness policy's ``next_wake``);
    #: None when it only looks again within ``schedule_period``.
    refresh_at: datetime | None
    delay: float
    #: How this replica paces the next wake-up: WRITER (it wrote every token it saw) wakes
    #: first, STANDBY later.
    role: WakeRole = WRITER


class Watcher:
    """The watch loop; :meth:`run` returns 0 once ``stop`` is set (between cycles)."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        pacing: WatchPacing | None = None,
        metrics: SyncMetrics | None = None,
        stop: threading.Event | None = None,
        client_factory: ClientFactory = default_client_factory,
        on_cycle: Callable[[Cycle], None] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        uniform: Uniform | None = None,
    ) -> None:
        self.runtime = runtime
        self.pacing = pacing or WatchPacing.for_config(runtime.config)
        self.metrics = metrics or SyncMetrics(runtime.config.jobs())
        self.stop = stop or threading.Event()
        self.engine = SyncEngine(runtime, client_factory=client_factory, now=now)
        self.on_cycle = on_cycle
        self.now = now
        self.uniform = uniform or random.SystemRandom().uniform
        self._lock = threading.Lock()  # the HTTP thread reads the health state
        self._cycles = 0
        self._last_error: str | None = None
        self._last_failed: tuple[SinkKey, ...] = ()
        self._failures = 0
        self._warned: set[str] = set()
        self._warned_short = False
        #: The expiry this replica last wrote, per sink (which stored tokens are its own).
        self._written: dict[SinkKey, datetime] = {}
        self.stop_reason = "stop requested"

    def run(self) -> int:
        jobs = self.runtime.config.jobs()
        sinks = {sink for job in jobs for sink in job.sinks}
        log.info(
            "watching %d token(s) in %d sink(s); refresh_before %gs, checking at least every %gs",
            len(jobs),
            len(sinks),
            self.pacing.refresh.refresh_before,
            self.pacing.max_sleep,
            extra={"event": "watch.started"},
        )
        try:
            while not self.stop.is_set():
                cycle = self.run_cycle()
                if self.on_cycle is not None:
                    self.on_cycle(cycle)
                if self.stop.wait(cycle.delay):
                    break
        finally:
            self.engine.close()
        log.info(
            "stopped after %d cycle(s) (%s)",
            self._cycles,
            self.stop_reason,
            extra={"event": "watch.stopped", "reason": self.stop_reason},
        )
        return EXIT_OK

    def request_stop(self, reason: str = "stop requested") -> None:
        """Stop after the cycle in progress (safe from a signal handler: no logging here).

        The first reason given is the one reported.
        """
        if not self.stop.is_set():
            self.stop_reason = reason
        self.stop.set()

    def run_cycle(self) -> Cycle:
        """One engine pass, its metrics, and the sleep that follows it."""
        began = time.monotonic()
        report: SyncReport | None = None
        error: str | None = None
        try:
            report = self.engine.run(log_warnings=False)
        except Exception as exc:  # e.g. a file: secret vanished mid-rotation; keep going
            self.metrics.record_run_error(type(exc))
            error = describe_error(exc)
            log.error(
                "the run failed before any token was looked at: %s",
                error,
                extra={"event": "watch.run_failed", "error_type": type(exc).__name__},
                exc_info=log.isEnabledFor(logging.DEBUG)
                and not isinstance(exc, HarborSecretsError),
            )
        now = self._now()
        wake = WakeUp()
        role = STANDBY  # nothing seen (a failed run): wake as a standby would
        if report is not None:
            self._log_new_warnings(report.warnings)
            self.metrics.record(report)
            if failed_entirely(report):
                error = _first_error(report)
            wake = self.pacing.refresh.next_wake(observations(report, self._framed), now)
            role = WRITER if wrote_every_token(report, self._written) else STANDBY
            self._remember_writes(report)
            if wake.short and not self._warned_short:
                self._warned_short = True
                log.warning(
                    "the issuer grants tokens with less than refresh_before (%gs) to live; "
                    "refreshing them at half their remaining lifetime instead",
                    self.pacing.refresh.refresh_before,
                )
        failing = report is None or report.exit_code != EXIT_OK
        self._failures = self._failures + 1 if failing else 0
        delay = self.pacing.wake_delay(wake, now, self._failures, self.uniform, role=role)
        with self._lock:
            self._cycles += 1
            self._last_error = error
            self._last_failed = failed_sinks(report) if report is not None else ()
            number = self._cycles
        cycle = Cycle(number, began, report, error, self._failures, wake.refresh_at, delay, role)
        self._log_cycle(cycle, time.monotonic() - began)
        return cycle

    def health(self) -> Verdict:
        with self._lock:
            cycles, error, failed = self._cycles, self._last_error, self._last_failed
        snapshot = self.metrics.snapshot()
        return judge(
            now=self._now(),
            expected=self.metrics.expected,
            expiry={
                key: self._framed_in(key[1], _moment(when)) for key, when in snapshot.expiry.items()
            },
            policy=self.pacing.refresh,
            grace=self.pacing.grace,
            cycles=cycles,
            last_cycle_error=error,
            failed_sinks=failed,
            seen={key: _moment(when) for key, when in snapshot.last_success.items()},
            lifetimes=snapshot.lifetime,
        )

    def _now(self) -> datetime:
        """The time this loop judges by: this host's clock. Expiries, stored by their
        issuers' clocks, are put in it by :meth:`_framed`, so a host whose clock is wrong and
        issuers whose clocks disagree compare alike."""
        return self.now()

    def _framed(self, job: Job, expires_at: datetime) -> datetime:
        return self._framed_in(job.environment, expires_at)

    def _framed_in(self, environment: str, expires_at: datetime) -> datetime:
        """An expiry of ``environment``'s tokens (by its issuer's clock) in this host's."""
        issuer = self.engine.config.environments[environment].token_url
        return self.engine.clock.to_local(expires_at, issuer)

    def _remember_writes(self, report: SyncReport) -> None:
        for job in report.results:
            for sink in job.sinks:
                if sink.action == WRITTEN and sink.expires_at is not None:
                    self._written[sink_key(job.job, sink.sink)] = sink.expires_at

    def _log_new_warnings(self, warnings: Sequence[str]) -> None:
        for note in warnings:
            if note not in self._warned:
                self._warned.add(note)
                log.warning("%s", note)

    def _log_cycle(self, cycle: Cycle, duration: float) -> None:
        report = cycle.report
        counts = report.to_dict()["counts"] if report is not None else {}
        by = writers(report) if report is not None else []
        summary = (
            f"{counts[WRITTEN]} written, {counts[FRESH]} fresh"
            + (f" (written by {', '.join(by)})" if by else "")
            + f", {counts[KEPT_NEWER]} kept, {counts[FAILED]} failed"
            if report is not None
            else "run failed"
        )
        if cycle.consecutive_failures:
            summary += f" (failing {cycle.consecutive_failures} cycle(s) in a row)"
        log.info(
            "cycle %d: %s; next in %.1fs as %s",
            cycle.number,
            summary,
            cycle.delay,
            cycle.role,
            extra={
                "event": "watch.cycle",
                "cycle": cycle.number,
                "counts": counts,
                "role": cycle.role,
                "written_by": by,
                "token_requests": report.token_requests if report is not None else 0,
                "consecutive_failures": cycle.consecutive_failures,
                "refresh_at": format_time(cycle.refresh_at) if cycle.refresh_at else None,
                "sleep_seconds": round(cycle.delay, 3),
                "duration_seconds": round(duration, 3),
            },
        )


def run_until_signalled(
    watcher: Watcher,
    signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
    *,
    exiting: bool = False,
) -> int:
    """Run the loop in a worker thread until SIGTERM or SIGINT, then let it finish the cycle.

    The main thread, where Python runs signal handlers, only waits: a handler can then never
    interrupt code holding a lock the handler needs, and never interrupts a write. Further
    signals while stopping change nothing (a stuck write is bounded by its own timeouts).
    ``exiting=True`` (the CLI) ignores these signals afterwards instead of restoring the old
    handlers, so a second SIGTERM during shutdown cannot turn exit 0 into death by signal.
    """

    outcome: list[int | BaseException] = []

    def target() -> None:
        try:
            outcome.append(watcher.run())
        except BaseException as exc:  # handed to the main thread, which raises it
            outcome.append(exc)

    restore = handle_signals(watcher.request_stop, signals)
    thread = threading.Thread(target=target, name="harbor-secrets-watch")
    try:
        thread.start()
        noted = False
        while thread.is_alive():
            thread.join(0.2)
            if watcher.stop.is_set() and thread.is_alive() and not noted:
                noted = True
                log.info(
                    "%s received: finishing the cycle in progress, then exiting",
                    watcher.stop_reason,
                    extra={"event": "watch.stopping"},
                )
    finally:
        watcher.stop.set()
        thread.join()
        restore(ignore=exiting)
    result = outcome[0] if outcome else EXIT_FAILURE
    if isinstance(result, BaseException):
        raise result
    return result
