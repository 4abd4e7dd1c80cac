"""When is a stored token due? The one module that compares an expiry with the clock.

``sync`` (write or not), ``status`` (what to call a token), watch mode (when to wake up),
``/healthz`` (is a token past due), the metrics and the readers (``get``, ``exec``: is a
token still good for long enough) all ask :class:`RefreshPolicy`, so they cannot disagree.
A change to the rule is made here, once.

The rule: a token must be rewritten by its *deadline*, ``expires_at − refresh_before``, and
is *due* from :data:`DUE_SLACK` before that. Stored times have whole seconds, so a token can
look up to a second fresher than it is; counting it due a second early keeps the promise
that, while the issuer answers, a reader of a scheduled run's store finds at least
``refresh_before − schedule_period`` seconds left (docs/BENCHMARKS.md measured the
one-second shortfall without the slack). Watch mode needs no slack: it wakes at the
deadline itself, when the token has been due for a second, so its cycle rewrites it.

Times only mean something if the clock that wrote them was right. A record issued in the
future, or whose expiry lies further ahead than the lifetime it was granted (the
``token_lifetime`` where a store keeps no issue time), plus :data:`CLOCK_ALLOWANCE`, was
written under a clock that was wrong (a run 10 minutes fast stores an expiry 10 minutes too
late; a clock stepped back makes every stored expiry look far away). Such a record is
*implausible*: ``status`` says so, ``sync`` treats it as due, readers do not use it, the
never-go-backwards rule does not protect it, and ``/healthz`` does not count it as live.

Which clock times a new record is this module's rule too (:meth:`RefreshPolicy.time_issue`):
the issuer is the arbiter. When the token response's ``Date`` header disagrees with this
host's clock by more than :data:`CLOCK_ALLOWANCE`, the record is timed by the issuer's
clock, so a host whose clock is wrong never stores a wrong expiry, and lifting the
never-go-backwards rule for an implausible record cannot send a store backwards: the record
that replaces it is truly newer. The engine then judges stored records by the issuer's time
too (:class:`harbor_secrets.issuer_clock.IssuerClock`), so such a host does not find every
correct record implausible and fetch on every cycle.

The availability budget (:meth:`RefreshPolicy.availability`, what ``config check`` prints
and docs/AVAILABILITY.md explains) is worked out here too, from the same numbers: how late
after a deadline a refresher may come, hence the least lifetime a reader finds, and how long
readers survive an outage of Harbor, of the store or of every refresher.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from harbor_secrets.record import TokenRecord

DUE_SLACK = timedelta(seconds=1)
#: What the floors below call answering "promptly": the token request and the write of a
#: run complete within this many seconds of its start. The scheduled floor
#: (``refresh_before − schedule_period``) has always rested on it, through DUE_SLACK.
PROMPT_ANSWER = DUE_SLACK.total_seconds()
#: Added to every watch-mode wait so the engine, reading the clock after the wake, finds the
#: token due.
DUE_MARGIN = 0.05
#: Watch mode spreads replicas' wake-ups over at most this many seconds per step (W below).
MAX_WAKE_SPREAD = 5.0
#: The least lifetime a reader should accept by default: a request in flight needs the
#: token to stay valid. ``get``/``exec`` default to it; the Kubernetes store warns when a
#: volume reader could find less.
DEFAULT_MIN_REMAINING = 30.0
#: How far a stored record's times may run ahead of this host's clock and still be believed:
#: the clocks of hosts writing one store disagree by a little. Small next to
#: ``refresh_before``, so a token believed this much too fresh is still rewritten in time.
CLOCK_ALLOWANCE = 30.0
#: An issuer ``Date`` outside these years is no clock anyone runs (a device without a
#: real-time clock says 1970; a broken proxy anything): it times nothing and measures no skew.
#: A host clock outside them, against a ``Date`` inside, is corrected as any other.
USABLE_DATES = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


class TokenState(enum.StrEnum):
    """What a sink holds for one token, as ``status`` shows it and ``sync`` acts on it."""

    MISSING = "missing"  # nothing stored (or nothing this tool can use)
    UNREADABLE = "unreadable"  # the store could not be read
    IMPLAUSIBLE = "implausible"  # stored with times a right clock cannot give (see above)
    EXPIRED = "expired"  # stored, but past its expiry
    DUE = "due"  # stored and valid, but with less than refresh_before left
    FRESH = "fresh"  # stored with more than refresh_before left

    @property
    def needs_refresh(self) -> bool:
        """True exactly when ``sync`` writes a new token (unreadable stores are not written)."""
        return self in (
            TokenState.MISSING,
            TokenState.IMPLAUSIBLE,
            TokenState.EXPIRED,
            TokenState.DUE,
        )


class ReaderState(enum.StrEnum):
    """Whether a reader (``get``, ``exec``) may use a stored token right now."""

    MISSING = "missing"
    UNREADABLE = "unreadable"
    IMPLAUSIBLE = "implausible"  # written under a wrong clock: its expiry cannot be believed
    EXPIRED = "expired"
    SHORT = "short-lived"  # valid, but with less than the reader's minimum left
    USABLE = "usable"


@dataclass(frozen=True)
class Freshness:
    """The verdict on one stored token at one moment."""

    state: TokenState
    expires_at: datetime | None = None
    due_at: datetime | None = None  # when sync starts rewriting it
    seconds_left: float | None = None  # until expiry; negative once expired
    seconds_to_due: float | None = None


@dataclass(frozen=True)
class ReaderVerdict:
    """Whether a reader may use a stored token, and how long it has left."""

    state: ReaderState
    seconds_left: float | None = None

    @property
    def usable(self) -> bool:
        return self.state is ReaderState.USABLE


@dataclass(frozen=True)
class Observation:
    """A sink's token expiry as one run saw it; ``refreshed`` when that run fetched it (and
    wrote it, or found the store already holding one no older). ``lifetime`` is what the
    token was granted, when its store keeps the issue time (None: ``token_lifetime``)."""

    expires_at: datetime
    refreshed: bool
    lifetime: float | None = None


class WakeRole(enum.StrEnum):
    """A watch-mode replica's turn: the one that wrote every token it saw wakes first."""

    WRITER = "writer"
    STANDBY = "standby"


@dataclass(frozen=True)
class WakeUp:
    """When watch mode should run its next cycle, as the policy reads the last one's tokens."""

    #: The earliest refresh point: a token's deadline, or, for one that was due on arrival,
    #: halfway through what was left of it. None: nothing to wait for (an implausible
    #: expiry, or nothing seen), so the loop looks again within ``schedule_period``.
    refresh_at: datetime | None = None
    #: From when a cycle finds one of those tokens due (:data:`DUE_SLACK` before its
    #: deadline): a wake-up cut short of ``refresh_at`` but later than this asks out of turn.
    due_from: datetime | None = None
    #: A token just written was due on arrival (the issuer grants less than refresh_before).
    short: bool = False


class SinkHealth(enum.StrEnum):
    """What ``/healthz`` makes of one sink's token (:meth:`RefreshPolicy.sink_health`)."""

    IMPLAUSIBLE = "implausible"  # written under a wrong clock: readers cannot trust it
    EXPIRED = "expired"  # readers find no live token
    OVERDUE = "overdue"  # past its refresh point by more than the grace
    OK = "ok"


@dataclass(frozen=True)
class IssueTiming:
    """Which clock times a token just issued (:meth:`RefreshPolicy.time_issue`)."""

    #: When the token counts as issued: this host's send time (corrected by a skew measured
    #: before, when this answer has no ``Date``), or the issuer's ``Date``.
    issued_at: datetime
    #: How far the issuer's clock runs ahead of this host's, in seconds (negative: behind),
    #: when they disagree by more than :data:`CLOCK_ALLOWANCE`; 0 when they agree (this
    #: host's clock is believed); None when the answer had no usable ``Date`` to tell.
    skew: float | None = 0.0


def seconds_between(earlier: datetime, later: datetime) -> float:
    """``later − earlier`` in seconds (negative when ``later`` comes first)."""
    return (later - earlier).total_seconds()


def seconds_left(expires_at: datetime, now: datetime) -> float:
    """How long a token expiring at ``expires_at`` still lives at ``now`` (negative: expired)."""
    return seconds_between(now, expires_at)


@dataclass(frozen=True)
class Availability:
    """The availability budget of one ``[refresh]`` table, for one way of running it.

    Every figure is in seconds and derived by :meth:`RefreshPolicy.availability`; ``config
    check`` prints it and docs/AVAILABILITY.md explains it.
    """

    watching: bool
    #: The least lifetime a reader finds while Harbor and the store answer promptly, with any
    #: one refresher lost (watch mode: the replica that wrote last, the worst one to lose).
    reader_floor: float
    #: The same while the replica that wrote last is up (watch mode; scheduled: the same).
    reader_floor_writer_up: float
    #: The least lifetime if each token request takes the whole request budget.
    reader_floor_slow_issuer: float
    #: How long an outage of Harbor, of the store, or of every refresher, starting at the
    #: worst moment, is survived before the first token expires (at least).
    outage_survived: float
    #: ... and starting just after a write (at best): the token's lifetime.
    outage_survived_at_best: float
    #: How long, at worst, until readers needing ``min_remaining`` refuse the token.
    outage_before_readers_refuse: float
    min_remaining: float
    request_budget: float
    propagation: float
    #: How late after a token's deadline a refresher may start (schedule period, or watch
    #: mode's wake-up lateness).
    latest_start: float
    #: Watch mode's wake-up spread W (None when scheduled).
    wake_spread: float | None
    #: Roughly how often one record is rewritten.
    write_interval: float

    def to_dict(self) -> dict[str, float | bool | None]:
        return {
            "watching": self.watching,
            "reader_floor_seconds": round(self.reader_floor, 3),
            "reader_floor_writer_up_seconds": round(self.reader_floor_writer_up, 3),
            "reader_floor_slow_issuer_seconds": round(self.reader_floor_slow_issuer, 3),
            "outage_survived_seconds": round(self.outage_survived, 3),
            "outage_survived_at_best_seconds": round(self.outage_survived_at_best, 3),
            "outage_before_readers_refuse_seconds": round(self.outage_before_readers_refuse, 3),
            "min_remaining_seconds": self.min_remaining,
            "request_budget_seconds": self.request_budget,
            "propagation_seconds": self.propagation,
            "latest_start_seconds": round(self.latest_start, 3),
            "wake_spread_seconds": self.wake_spread,
            "write_interval_seconds": round(self.write_interval, 3),
        }


@dataclass(frozen=True)
class RefreshPolicy:
    """The ``[refresh]`` table: when to rewrite a token, and how a run is paced.

    The one configuration type for refresh settings; providers get it too, to warn about
    policies their store cannot serve (e.g. writing AWS Secrets Manager too often).
    """

    refresh_before: float = 150.0
    schedule_period: float = 60.0
    token_lifetime: float = 300.0
    max_workers: int = 8

    def deadline(self, expires_at: datetime) -> datetime:
        """The latest moment to rewrite a token and still keep ``refresh_before`` left."""
        return expires_at - timedelta(seconds=self.refresh_before)

    def due_at(self, expires_at: datetime) -> datetime:
        """The moment a token expiring at ``expires_at`` becomes due (sync rewrites it)."""
        return self.deadline(expires_at) - DUE_SLACK

    # -- plausibility -------------------------------------------------------------------

    def lifetime_of(self, record: TokenRecord) -> float:
        """The lifetime ``record`` was granted: its own, or ``token_lifetime`` for a store
        that keeps no issue time."""
        return self.granted(record.granted_lifetime)

    def granted(self, lifetime: float | None) -> float:
        """A granted lifetime as stored (None: the store keeps no issue time), or
        ``token_lifetime`` in its place."""
        return self.token_lifetime if lifetime is None else lifetime

    def plausible_expiry(
        self, expires_at: datetime, now: datetime, *, lifetime: float | None = None
    ) -> bool:
        """Could a right clock have written a token expiring at ``expires_at``, granted
        ``lifetime`` (default ``token_lifetime``), by ``now``?"""
        return seconds_left(expires_at, now) <= self.granted(lifetime) + CLOCK_ALLOWANCE

    def plausible(self, record: TokenRecord, now: datetime) -> bool:
        """False for a record issued in the future, or whose expiry lies further ahead than
        the lifetime it was granted (beyond :data:`CLOCK_ALLOWANCE`)."""
        return self.plausible_expiry(record.expires_at, now, lifetime=self.lifetime_of(record))

    def granted_too_long(self, expires_in: float, *, bare_sinks: Sequence[str] = ()) -> str | None:
        """Advice when the issuer grants tokens longer than ``token_lifetime`` (plus the
        allowance). ``bare_sinks`` names the sinks whose store keeps no issue time: they can
        only bound an expiry by ``token_lifetime``, so they would call every such token
        implausible; every other figure drawn from ``token_lifetime`` (``config check``'s
        availability budget, the write interval) is wrong too."""
        if expires_in <= self.token_lifetime + CLOCK_ALLOWANCE:
            return None
        effect = ""
        if bare_sinks:
            names = " and ".join(f"sinks.{name}" for name in bare_sinks)
            keeps = "keeps" if len(bare_sinks) == 1 else "keep"
            effect = (
                f"{names} {keeps} no issue time (only the expiry), so each such token there "
                "looks implausible and is rewritten every run, and "
            )
        return (
            f"the issuer grants tokens of {expires_in:g}s, longer than refresh.token_lifetime "
            f"({self.token_lifetime:g}s): {effect}the availability figures `config check` "
            f'prints assume token_lifetime; set token_lifetime = "{expires_in:g}s"'
        )

    @staticmethod
    def time_issue(
        sent_at: datetime,
        received_at: datetime | None,
        issuer_date: datetime | None,
        *,
        known_skew: float = 0.0,
    ) -> IssueTiming:
        """Which clock times a token whose request this host sent at ``sent_at`` and whose
        answer arrived at ``received_at`` (this host's clock), with the issuer's ``Date``.

        RFC 9110 has an origin server with a clock send ``Date``, truncated to the second,
        for when it made the answer: in this host's time that lies in ``[sent_at − 1 s,
        received_at]`` if the clocks agree. Outside that window by more than
        :data:`CLOCK_ALLOWANCE`, this host's clock is wrong (the issuer is the arbiter: its
        clock is the one its tokens expire by), and the token counts as issued at the
        ``Date``, which can only err early. Within it, this host's send time is used, as
        always. ``skew`` is then an upper bound of how far the issuer's clock runs ahead (by
        at most the request's duration and a second): time corrected by it may run a little
        late, never early, so tokens fall due early. Without a ``Date`` nothing is measured:
        the send time is corrected by ``known_skew`` (what an earlier answer measured, 0 if
        none), so every record a process writes is timed by the same clock. Once a skew is
        known, the clocks count as agreeing again only within half the allowance.
        """
        if issuer_date is None or not USABLE_DATES[0] <= issuer_date < USABLE_DATES[1]:
            return IssueTiming(sent_at + timedelta(seconds=known_skew), None)
        arrived = sent_at if received_at is None or received_at < sent_at else received_at
        earliest = sent_at - DUE_SLACK  # Date is truncated to the second
        if issuer_date > arrived:
            disagreement = seconds_between(arrived, issuer_date)
        elif issuer_date < earliest:
            disagreement = seconds_between(issuer_date, earliest)
        else:
            disagreement = 0.0
        # Hysteresis: once a skew is known, the clocks agree again only within half the
        # allowance, so a host off by about the allowance does not flip with every answer.
        agree_within = CLOCK_ALLOWANCE / 2 if known_skew else CLOCK_ALLOWANCE
        if disagreement <= agree_within:
            return IssueTiming(sent_at)
        return IssueTiming(issuer_date, seconds_between(earliest, issuer_date))

    def judged(
        self,
        record: TokenRecord,
        now: Callable[[], datetime],
        local: Callable[[], datetime] | None = None,
    ) -> TokenRecord:
        """``record``, carrying this policy's judgement for the store that writes it: a
        stored record that is implausible when the write compares does not stop it
        (:meth:`TokenRecord.is_newer_than`). The sync engine writes only these.

        Implausible by *both* clocks: the issuer-corrected ``now`` and this host's own
        ``local`` (None: the same clock). A ``Date`` can be wrong too (an issuer, or a proxy
        with a bad clock): a record that is plausible by this host's clock keeps the
        never-go-backwards rule, so a wrong ``Date`` alone cannot send a store backwards.
        A host whose clock is wrong still replaces what its wrong clock doubts: its own
        record, timed by the issuer, is truly newer and passes the plain comparison.
        """

        clocks = (now,) if local is None else (now, local)

        def trusts(stored: TokenRecord) -> bool:
            return any(self.plausible(stored, clock()) for clock in clocks)

        return dataclasses.replace(record, trusts=trusts)

    # -- verdicts -----------------------------------------------------------------------

    def assess(self, record: TokenRecord | None, now: datetime) -> Freshness:
        """The state of a stored record (``None``: nothing stored) at ``now``."""
        if record is None:
            return Freshness(TokenState.MISSING)
        expires_at = record.expires_at
        due_at = self.due_at(expires_at)
        left = seconds_left(expires_at, now)
        if not self.plausible(record, now):
            state = TokenState.IMPLAUSIBLE
        elif left <= 0:
            state = TokenState.EXPIRED
        elif due_at <= now:
            state = TokenState.DUE
        else:
            state = TokenState.FRESH
        return Freshness(state, expires_at, due_at, left, seconds_between(now, due_at))

    @staticmethod
    def unreadable() -> Freshness:
        """The verdict for a store that could not be read."""
        return Freshness(TokenState.UNREADABLE)

    def refresh_point(self, expires_at: datetime, seen_at: datetime | None) -> datetime:
        """When a loop that last wrote (or found fresh) a token at ``seen_at`` rewrites it:
        at its deadline, or, for a token that was due on arrival (the issuer grants less
        than ``refresh_before``), halfway through what was left of it then."""
        deadline = self.deadline(expires_at)
        if seen_at is None or deadline > seen_at:
            return deadline
        return seen_at + max((expires_at - seen_at) / 2, timedelta(0))

    def overdue(
        self,
        expires_at: datetime,
        now: datetime,
        grace: float,
        *,
        seen_at: datetime | None = None,
    ) -> bool:
        """Past its refresh point by more than ``grace`` seconds: a healthy loop would have
        rewritten it by now (``seen_at``: see :meth:`refresh_point`)."""
        return self.refresh_point(expires_at, seen_at) + timedelta(seconds=grace) < now

    def sink_health(
        self,
        expires_at: datetime,
        now: datetime,
        *,
        lifetime: float | None,
        seen_at: datetime | None,
        grace: float,
    ) -> SinkHealth:
        """``/healthz``'s verdict on one sink's token: implausible (by the ``lifetime`` it
        was granted, None where its store keeps no issue time), expired, overdue (see
        :meth:`overdue`), or ok. The same rules as :meth:`assess`, from what a watch loop
        keeps of a token: its expiry and granted lifetime, not the record."""
        if not self.plausible_expiry(expires_at, now, lifetime=lifetime):
            return SinkHealth.IMPLAUSIBLE
        if seconds_left(expires_at, now) <= 0:
            return SinkHealth.EXPIRED
        if self.overdue(expires_at, now, grace, seen_at=seen_at):
            return SinkHealth.OVERDUE
        return SinkHealth.OK

    @property
    def write_interval(self) -> float:
        """Roughly how often one record is rewritten under this policy, in seconds."""
        useful = max(self.token_lifetime - self.refresh_before, 0.0)
        periods = max(1, -(-int(useful) // max(int(self.schedule_period), 1)))
        return periods * self.schedule_period

    @property
    def wake_spread(self) -> float:
        """W, watch mode's step of wake-up spread after a token's deadline, in seconds.

        Replicas that read the same expiry would otherwise wake within a few hundred
        milliseconds of each other, all find the token due and all ask Harbor (a jitter of a
        few percent of the sleep is far less than one cycle apart). So the replica that wrote
        the stored token wakes within W/2 of the deadline and every other replica between W
        and 2W: by then the writer's new token is stored and they find it fresh. W is a tenth
        of ``refresh_before`` (at most :data:`MAX_WAKE_SPREAD`): with the default 150 s,
        5 s, and the writer has at least 2.5 s for its cycle before the first other replica
        looks, so with every replica up Harbor sees one request per refresh.
        """
        return min(MAX_WAKE_SPREAD, self.refresh_before / 10)

    def wake_window(self, role: WakeRole) -> tuple[float, float]:
        """When a watch-mode replica in ``role`` wakes, in seconds after a refresh point:
        the writer within W/2, every standby between W and 2W (see :attr:`wake_spread`).

        Watch mode's pacing draws from it and :meth:`watch_lateness` is its upper bound, so
        the turns and the reader floors cannot disagree.
        """
        spread = self.wake_spread
        if role == WakeRole.WRITER:
            return 0.0, spread / 2
        return spread, 2 * spread

    def watch_lateness(self, *, wrote_last: bool = False) -> float:
        """The latest a watch-mode cycle starts after a token's deadline, in seconds.

        ``wrote_last``: the replica that wrote the stored token is up (it wakes as the
        writer); otherwise another replica (or a lone one that restarted) comes, as a
        standby. Either way the end of its :meth:`wake_window`, plus :data:`DUE_MARGIN`.
        """
        role = WakeRole.WRITER if wrote_last else WakeRole.STANDBY
        return DUE_MARGIN + self.wake_window(role)[1]

    def reader_floor(
        self, *, watching: bool = False, propagation: float = 0.0, wrote_last: bool = False
    ) -> float:
        """The least lifetime a reader can find left while the issuer and the store answer
        promptly (within :data:`PROMPT_ANSWER`), in seconds.

        A scheduled run starts up to one ``schedule_period`` after a token fell due, which is
        DUE_SLACK before its deadline: ``refresh_before − schedule_period``. Watch mode
        starts up to :meth:`watch_lateness` after the deadline and its write lands up to
        PROMPT_ANSWER later. ``propagation`` is how much later than the write the reader sees
        it (e.g. the kubelet's refresh of a mounted Secret).
        """
        if watching:
            late = self.watch_lateness(wrote_last=wrote_last) + PROMPT_ANSWER
        else:
            late = self.schedule_period
        return self.refresh_before - late - propagation

    def availability(
        self,
        *,
        watching: bool,
        request_budget: float,
        min_remaining: float = DEFAULT_MIN_REMAINING,
        propagation: float = 0.0,
    ) -> Availability:
        """What readers can count on under this policy: the availability budget.

        ``request_budget`` is the longest one token request may take (``[http]
        total_budget``): a run whose request uses all of it comes that much later than a
        prompt one. An outage of Harbor, of the store or of every refresher that starts at
        the worst moment (just as the stored token falls due) leaves readers the floor; one
        that starts just after a write leaves them the token's whole lifetime.
        """
        floor = self.reader_floor(watching=watching, propagation=propagation)
        slow = max(request_budget - PROMPT_ANSWER, 0.0)
        return Availability(
            watching=watching,
            reader_floor=floor,
            reader_floor_writer_up=self.reader_floor(
                watching=watching, propagation=propagation, wrote_last=True
            )
            if watching
            else floor,
            reader_floor_slow_issuer=floor - slow,
            outage_survived=floor,
            outage_survived_at_best=self.token_lifetime - propagation,
            outage_before_readers_refuse=floor - min_remaining,
            min_remaining=min_remaining,
            request_budget=request_budget,
            propagation=propagation,
            latest_start=self.watch_lateness() if watching else self.schedule_period,
            wake_spread=self.wake_spread if watching else None,
            write_interval=self.write_interval if not watching else self.watch_write_interval,
        )

    @property
    def watch_write_interval(self) -> float:
        """Roughly how often watch mode rewrites one record: at each deadline (plus W/4, the
        writer's mean jitter), not on a schedule."""
        return max(self.token_lifetime - self.refresh_before, 0.0) + self.wake_spread / 4

    def warnings(self, *, watching: bool = False) -> list[str]:
        """Settings under which this policy cannot keep its promise."""
        notes = []
        if self.refresh_before >= self.token_lifetime:
            notes.append(
                f"refresh.refresh_before ({self.refresh_before:g}s) is not less than the "
                f"token lifetime ({self.token_lifetime:g}s): every run rewrites every token"
            )
        if not watching and self.reader_floor() <= 0:
            notes.append(
                f"refresh.refresh_before ({self.refresh_before:g}s) is not more than the "
                f"schedule period ({self.schedule_period:g}s): readers can find an expired "
                "token between runs; raise refresh_before or run more often"
            )
        return notes

    def next_wake(self, observations: Iterable[Observation], now: datetime) -> WakeUp:
        """When watch mode should next run: the earliest deadline of the tokens seen.

        A token just written that was due on arrival (the issuer grants less than
        ``refresh_before``) is refreshed at half its remaining lifetime instead, so a
        short-lived issuer is not asked again in a loop; :attr:`WakeUp.short` says so.
        Implausible expiries are no time to wait for (the store is looked at again soon).
        """
        refresh_at: datetime | None = None
        due_from: datetime | None = None
        short = False
        for seen in observations:
            if not self.plausible_expiry(seen.expires_at, now, lifetime=seen.lifetime):
                continue
            point = self.deadline(seen.expires_at)
            if point <= now and seen.refreshed:
                short = True
                point = self.refresh_point(seen.expires_at, now)
            due = self.due_at(seen.expires_at)
            refresh_at = point if refresh_at is None else min(refresh_at, point)
            due_from = due if due_from is None else min(due_from, due)
        return WakeUp(refresh_at, due_from, short)

    def for_reader(
        self, record: TokenRecord | None, now: datetime, *, min_remaining: float
    ) -> ReaderVerdict:
        """May a reader use ``record`` now, needing ``min_remaining`` seconds of it?"""
        if record is None:
            return ReaderVerdict(ReaderState.MISSING)
        left = seconds_left(record.expires_at, now)
        if not self.plausible(record, now):
            return ReaderVerdict(ReaderState.IMPLAUSIBLE, left)
        if left <= 0:
            return ReaderVerdict(ReaderState.EXPIRED, left)
        if left < min_remaining:
            return ReaderVerdict(ReaderState.SHORT, left)
        return ReaderVerdict(ReaderState.USABLE, left)
