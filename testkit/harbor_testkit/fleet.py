"""Watch-mode replicas sharing one store, in simulated time: what pacing costs and keeps.

Each replica is the real watch loop (:class:`~harbor_secrets.watch.Watcher`, its
``run_cycle``, the real sync engine and freshness policy) with its own runtime and writer
name; all share one in-process store and one token source, on a fake clock, so a simulated
day takes seconds. What the simulation adds is *time inside a cycle*: a cycle reads the store
when it starts and its write lands ``cycle_time`` later, so another replica that looks in
between does not see it and asks the issuer too. That is the collision identical replicas
suffer when they wake together.

Replicas can be killed (gone until started again, with a fresh process's memory), stopped
like SIGSTOP (frozen, then carrying on), and the store or the issuer can be taken away for a
while. A replica's clock can be wrong (``skews``): its engine, its pacing and its token
client's send and receive stamps then read the time that many seconds off, while the
issuer's ``Date`` (whole seconds) and every figure below stay in true time.
:class:`FleetResult` holds the figures: token requests, the least lifetime any reader
could have found in the store, store operations per replica, the writes' order.

Written for the availability tests and ``bench/availability.py``; the model, stated so it
can be argued with: the issuer answers at once (or not at all while down); a write lands
``cycle_time`` (drawn per cycle) after its cycle starts, in the order the writes were sent;
a killed replica's last write has landed; stored times are whole seconds, as
:class:`~harbor_secrets.TokenRecord` keeps them.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import ClassVar

from harbor_secrets import (
    Options,
    Provider,
    ProviderContext,
    Secret,
    StoreError,
    TokenRecord,
    WriteOutcome,
)
from harbor_secrets.config import Config, CredentialsConfig, load_config
from harbor_secrets.environments import Environment
from harbor_secrets.errors import IssuerUnavailableError
from harbor_secrets.freshness import WakeRole, WakeUp
from harbor_secrets.registry import Registry
from harbor_secrets.runtime import Runtime
from harbor_secrets.sync import TokenSource
from harbor_secrets.token_client import IssuedToken
from harbor_secrets.watch import Cycle, Uniform, Watcher, WatchPacing
from harbor_secrets.writer import WRITER_ENV_VAR
from harbor_testkit.clock import FakeClock

__all__ = ["Event", "Fleet", "FleetResult", "fleet_config"]

SECRET_VARIABLE = "HARBOR_FLEET_SECRET"
ENVIRONMENTS = ("sandbox",)
SCOPES = ("service_provider", "tower_access")


@dataclass(frozen=True)
class Event:
    """Something done to the fleet at ``at`` seconds: ``kill``/``start``/``stop`` a replica
    (``stop`` freezes it for ``seconds``), or take the ``store`` or the ``issuer`` away for
    ``seconds``."""

    at: float
    kind: str
    replica: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("kill", "start", "stop", "store", "issuer"):
            raise ValueError(f"unknown event kind {self.kind!r}")


class FleetStore:
    """One shared store: writes land ``latency`` after they are sent, in the order sent.

    Compare-and-set is decided when a write is sent, against every write sent before it
    (they land first), so the monotonic rule holds exactly as a real store's does.
    """

    _stores: ClassVar[dict[str, FleetStore]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str, clock: FakeClock) -> None:
        self.name = name
        self.clock = clock
        self.latency = 0.0
        self.down_until = -1.0
        self.committed: dict[str, TokenRecord] = {}
        #: Per key: (when it landed, the record), in landing order.
        self.landings: dict[str, list[tuple[float, TokenRecord]]] = {}
        self.reads: dict[str, int] = {}
        self.writes: dict[str, int] = {}

    @classmethod
    def create(cls, name: str, clock: FakeClock) -> FleetStore:
        with cls._lock:
            store = cls._stores[name] = cls(name, clock)
            return store

    @classmethod
    def named(cls, name: str) -> FleetStore:
        with cls._lock:
            return cls._stores[name]

    @classmethod
    def forget(cls, name: str) -> None:
        with cls._lock:
            cls._stores.pop(name, None)

    def _check_up(self) -> None:
        if self.clock.seconds < self.down_until:
            raise StoreError(f"simulated store {self.name!r} is down")

    def read(self, key: str, writer: str) -> TokenRecord | None:
        self.reads[writer] = self.reads.get(writer, 0) + 1
        self._check_up()
        visible = None
        for landed, record in self.landings.get(key, []):
            if landed > self.clock.seconds:
                break
            visible = record
        return visible

    def write(self, key: str, record: TokenRecord, writer: str) -> WriteOutcome:
        self.writes[writer] = self.writes.get(writer, 0) + 1
        self._check_up()
        current = self.committed.get(key)
        if not record.is_newer_than(current):
            return WriteOutcome.KEPT_NEWER
        self.committed[key] = record
        history = self.landings.setdefault(key, [])
        landed = self.clock.seconds + self.latency
        if history:
            landed = max(landed, history[-1][0])
        history.append((landed, record))
        return WriteOutcome.WRITTEN


class FleetProvider(Provider):
    """Sink options: ``store`` (the :class:`FleetStore`'s name) and ``writer``."""

    name = "fleet"
    summary = "Simulated shared store for harbor_testkit.fleet."

    def __init__(self, store: FleetStore, writer: str) -> None:
        self.store = store
        self.writer = writer

    @classmethod
    def from_options(cls, options: Options, context: ProviderContext) -> FleetProvider:
        store = options.string("store", "")
        options.finish()
        assert store
        return cls(FleetStore.named(store), context.environ.get(WRITER_ENV_VAR, "?"))

    def read(self, key: str) -> TokenRecord | None:
        return self.store.read(key, self.writer)

    def write(self, key: str, record: TokenRecord) -> WriteOutcome:
        return self.store.write(key, record, self.writer)


class _Issuer:
    """Issues tokens living ``lifetime`` seconds from the simulated moment of the request,
    answering with its ``Date`` (true time, whole seconds)."""

    def __init__(self, clock: FakeClock, lifetime: int) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.requests = 0
        self.down_until = -1.0
        #: (simulated time, writer) per request.
        self.log: list[tuple[float, str]] = []

    def source(self, writer: str, skew: float = 0.0) -> TokenSource:
        return _Source(self, writer, skew)


class _Source:
    """One replica's token client: it stamps requests with its own clock (``skew`` off)."""

    def __init__(self, issuer: _Issuer, writer: str, skew: float) -> None:
        self.issuer = issuer
        self.writer = writer
        self.skew = timedelta(seconds=skew)

    def fetch(self, scope: str) -> IssuedToken:
        issuer = self.issuer
        issuer.requests += 1
        issuer.log.append((issuer.clock.seconds, self.writer))
        if issuer.clock.seconds < issuer.down_until:
            raise IssuerUnavailableError("simulated issuer is down")
        now = issuer.clock.now()
        return IssuedToken(
            access_token=Secret(f"simulated-{issuer.requests:08d}"),
            token_type="Bearer",
            expires_in=issuer.lifetime,
            granted_scope=scope,
            refresh_token=None,
            issued_at=now + self.skew,
            attempts=1,
            received_at=now + self.skew,
            issuer_date=now.replace(microsecond=0),
        )

    def close(self) -> None:
        pass


def fleet_config(
    store: str,
    *,
    refresh_before: float,
    token_lifetime: float,
    schedule_period: float,
    scopes: Sequence[str] = SCOPES,
) -> str:
    """The configuration every replica runs: one sink on the fleet's store."""
    return f"""
[refresh]
refresh_before = {refresh_before}
schedule_period = {schedule_period}
token_lifetime = {token_lifetime}
max_workers = 1

[credentials.main]
client_id = "fleet"
client_secret = "env:{SECRET_VARIABLE}"

[sinks.shared]
provider = "fleet"
store = "{store}"

[[targets]]
credentials = "main"
environments = {list(ENVIRONMENTS)!r}
scopes = {list(scopes)!r}
sinks = ["shared"]
""".replace("'", '"')


@dataclass
class _Replica:
    name: str
    runtime: Runtime
    watcher: Watcher
    generation: int
    next_at: float = 0.0
    cycles: int = 0
    roles: list[str] = field(default_factory=list)


@dataclass
class FleetResult:
    """What one simulation did; times in simulated seconds."""

    seconds: float
    replicas: int
    requests: int
    #: The least lifetime left of the token a reader would have read at any moment once
    #: the store first held one (the landed record just before each replacement).
    least_left: float
    #: Store reads and writes, by replica name.
    reads: dict[str, int]
    writes: dict[str, int]
    cycles: dict[str, int]
    #: Each landed write per key: (when, expires_at, written_by), in landing order.
    landings: dict[str, list[tuple[float, datetime, str]]]
    request_log: list[tuple[float, str]]
    events: list[Event]

    @property
    def went_backwards(self) -> bool:
        return any(
            later[1] < earlier[1]
            for history in self.landings.values()
            for earlier, later in itertools.pairwise(history)
        )

    def requests_between(self, start: float, end: float) -> int:
        return sum(1 for at, _ in self.request_log if start <= at < end)


class Fleet:
    """``replicas`` watch-mode replicas on one store; :meth:`run` simulates ``seconds``."""

    _names = itertools.count()

    def __init__(
        self,
        replicas: int,
        *,
        refresh_before: float = 150.0,
        token_lifetime: int = 300,
        schedule_period: float = 60.0,
        cycle_time: tuple[float, float] = (0.05, 0.3),
        seed: int = 15,
        scopes: Sequence[str] = SCOPES,
        standby: bool = True,
        skews: Sequence[float] = (),
    ) -> None:
        """``standby=False`` paces every replica as a writer (the pacing before replicas
        took turns), to compare against. ``skews[n]`` is how many seconds replica n's clock
        runs ahead of true time (negative: behind); replicas beyond it have a right clock."""
        self.size = replicas
        self.skews = tuple(skews)
        self.cycle_time = cycle_time
        self.rng = random.Random(seed)  # noqa: S311 - a reproducible simulation
        self.clock = FakeClock()
        self.store_name = f"fleet-{next(self._names)}"
        self.store = FleetStore.create(self.store_name, self.clock)
        self.issuer = _Issuer(self.clock, token_lifetime)
        self.text = fleet_config(
            self.store_name,
            refresh_before=refresh_before,
            token_lifetime=token_lifetime,
            schedule_period=schedule_period,
            scopes=scopes,
        )
        self.standby = standby
        self.registry = Registry(extra={"fleet": FleetProvider})
        self._replicas: dict[int, _Replica] = {}
        self._generations = itertools.count(1)
        self._queue: list[tuple[float, int, str, int, int]] = []  # at, order, kind, index, gen
        self._order = itertools.count()
        self._cycle_start = 0.0
        self._cycle_end = 0.0

    @property
    def config(self) -> Config:
        return load_config(text=self.text, environ={SECRET_VARIABLE: "fleet-secret"})

    def _start(self, index: int, at: float) -> None:
        name = f"replica-{index}"
        environ = {SECRET_VARIABLE: "fleet-secret", WRITER_ENV_VAR: name}
        runtime = Runtime(self.config, registry=self.registry, environ=environ)
        skew = self.skews[index] if index < len(self.skews) else 0.0
        source = self.issuer.source(name, skew)

        def factory(
            config: Config, environment: Environment, credentials: CredentialsConfig, _: Secret
        ) -> TokenSource:
            return source

        off = timedelta(seconds=skew)
        watcher = Watcher(
            runtime,
            client_factory=factory,
            now=lambda: self._pacing_now() + off,
            uniform=self.rng.uniform,
        )
        # Reads and the token request happen at the cycle's start.
        watcher.engine.clock.local = lambda: self._engine_now() + off
        if not self.standby:
            watcher.pacing = _everyone_writes(watcher.pacing)
        replica = _Replica(name, runtime, watcher, next(self._generations), next_at=at)
        self._replicas[index] = replica
        self._push(at, "cycle", index, replica.generation)

    def _engine_now(self) -> datetime:
        return self.clock.at(self._cycle_start)

    def _pacing_now(self) -> datetime:
        return self.clock.at(self._cycle_end)

    def _push(self, at: float, kind: str, index: int, generation: int = 0) -> None:
        heapq.heappush(self._queue, (at, next(self._order), kind, index, generation))

    def _kill(self, index: int) -> None:
        replica = self._replicas.pop(index, None)
        if replica is not None:
            replica.watcher.engine.close()
            replica.runtime.close()

    def run(self, seconds: float, events: Iterable[Event] = ()) -> FleetResult:
        """Start every replica at 0 (spread over the first second) and simulate."""
        events = sorted(events, key=lambda event: event.at)
        cycles: dict[str, int] = {}
        quiet = logging.getLogger("harbor_secrets")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)  # a simulated day logs a million lines otherwise
        try:
            for index in range(self.size):
                self._start(index, self.rng.uniform(0.0, 1.0))
            for number, event in enumerate(events):
                self._push(event.at, "event", number)
            while self._queue and self._queue[0][0] < seconds:
                at, _, kind, index, generation = heapq.heappop(self._queue)
                self.clock.seconds = at
                if kind == "event":
                    self._apply(events[index], at)
                    continue
                replica = self._replicas.get(index)
                if replica is None or replica.generation != generation:
                    continue  # killed (or restarted) since this wake-up was planned
                cycle = self._cycle(replica, at)
                cycles[replica.name] = cycles.get(replica.name, 0) + 1
                replica.next_at = self._cycle_end + cycle.delay
                self._push(replica.next_at, "cycle", index, generation)
        finally:
            for index in list(self._replicas):
                self._kill(index)
            FleetStore.forget(self.store_name)
            quiet.setLevel(level)
        return self._result(seconds, cycles, events)

    def _cycle(self, replica: _Replica, at: float) -> Cycle:
        took = self.rng.uniform(*self.cycle_time)
        self._cycle_start, self._cycle_end = at, at + took
        self.store.latency = took
        cycle = replica.watcher.run_cycle()
        replica.roles.append(cycle.role)
        return cycle

    def _apply(self, event: Event, at: float) -> None:
        if event.kind == "kill":
            self._kill(event.replica)
        elif event.kind == "start":
            self._kill(event.replica)
            self._start(event.replica, at)
        elif event.kind == "stop":
            replica = self._replicas.get(event.replica)
            if replica is not None:
                # Frozen: a wake-up planned meanwhile waits until it is thawed; one planned
                # for later comes as planned (its sleep runs on the monotonic clock).
                replica.generation = next(self._generations)
                replica.next_at = max(replica.next_at, at + event.seconds)
                self._push(replica.next_at, "cycle", event.replica, replica.generation)
        elif event.kind == "store":
            self.store.down_until = at + event.seconds
        elif event.kind == "issuer":
            self.issuer.down_until = at + event.seconds

    def _result(self, seconds: float, cycles: dict[str, int], events: list[Event]) -> FleetResult:
        least = float("inf")
        landings: dict[str, list[tuple[float, datetime, str]]] = {}
        for key, history in self.store.landings.items():
            landings[key] = [(at, r.expires_at, r.written_by) for at, r in history]
            for (_, before), (landed, _) in itertools.pairwise(history):
                least = min(least, (before.expires_at - self.clock.start).total_seconds() - landed)
            if history:
                last = history[-1][1]
                least = min(least, (last.expires_at - self.clock.start).total_seconds() - seconds)
        return FleetResult(
            seconds=seconds,
            replicas=self.size,
            requests=self.issuer.requests,
            least_left=least,
            reads=dict(self.store.reads),
            writes=dict(self.store.writes),
            cycles=cycles,
            landings=landings,
            request_log=list(self.issuer.log),
            events=events,
        )


@dataclass(frozen=True)
class _EveryoneWrites(WatchPacing):
    """The pacing before replicas took turns: every replica wakes as a writer does."""

    def wake_delay(
        self,
        wake: WakeUp,
        now: datetime,
        failures: int,
        uniform: Uniform,
        *,
        role: WakeRole = WakeRole.WRITER,
    ) -> float:
        return super().wake_delay(wake, now, failures, uniform, role=WakeRole.WRITER)


def _everyone_writes(pacing: WatchPacing) -> WatchPacing:
    return _EveryoneWrites(**{f.name: getattr(pacing, f.name) for f in fields(pacing)})
