"""Writes per token over a simulated day: one-shot runs every 60 s, and watch mode.

Nothing waits a day: the real engine (``Runtime`` + ``SyncEngine``) and the real watch loop
(``Watcher.run_cycle``, whose sleep it returns instead of taking) run against the in-memory
store with a fake clock and a fake token source that issues 300 s tokens at the simulated
time. Figures per token and day: store writes and token requests against the floor of one
write per token lifetime (86,400 / 300 = 288), and the least lifetime any reader could find
left in the store (the store's record just before each pass replaces it).

The model, stated so it can be argued with:

* one-shot: the scheduler fires every 60 s; each run starts 0.3-2.0 s after its tick (process
  start, imports; uniform, seeded) and reads, fetches and writes at that instant;
* watch: one long-lived process; each cycle happens at the time the previous cycle's
  ``delay`` says (the policy's own jitter, margin, 60 s cap), plus a run time of 0.05-0.3 s;
* the issuer always answers; stored times are whole seconds, as TokenRecord keeps them.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime

from harbor_secrets.config import Config, CredentialsConfig, load_config
from harbor_secrets.environments import Environment
from harbor_secrets.freshness import seconds_left
from harbor_secrets.registry import Registry
from harbor_secrets.runtime import Runtime
from harbor_secrets.secrets import Secret
from harbor_secrets.sync import SyncEngine, TokenSource
from harbor_secrets.testing.memory import MemoryProvider, MemoryStore, reset_memory_stores
from harbor_secrets.token_client import IssuedToken
from harbor_secrets.watch import Watcher
from harbor_testkit.clock import FakeClock

DAY = 86_400.0
LIFETIME = 300
PERIOD = 60.0
FLOOR = DAY / LIFETIME  # 288 writes per token and day
EPOCH = datetime(2030, 1, 1, tzinfo=UTC)
ENVIRONMENTS = ("sandbox", "production")
SCOPES = ("service_provider", "tower_access")
#: Aims from issue 6.
ONE_SHOT_AIM = 1.7
#: Model: a one-shot run reaches the stores this long after its tick; a watch cycle this long
#: after its wake-up.
ONE_SHOT_START = (0.3, 2.0)
MAX_WATCH_RUN = 0.3
WATCH_AIM = 1.3


class FakeIssuer:
    """Issues a token that lives LIFETIME seconds from the simulated moment it is asked."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.requests = 0

    def factory(
        self, config: Config, environment: Environment, credentials: CredentialsConfig, _: Secret
    ) -> TokenSource:
        return _Source(self)


class _Source:
    def __init__(self, issuer: FakeIssuer) -> None:
        self.issuer = issuer

    def fetch(self, scope: str) -> IssuedToken:
        self.issuer.requests += 1
        return IssuedToken(
            access_token=Secret(f"simulated-token-{self.issuer.requests:08d}"),
            token_type="Bearer",
            expires_in=LIFETIME,
            granted_scope=scope,
            refresh_token=None,
            issued_at=self.issuer.clock.now(),
            attempts=1,
        )

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class DayResult:
    mode: str
    refresh_before: float
    tokens: int
    passes: int
    writes_per_token: float
    requests_per_token: float
    reads_per_token: float
    min_left: float  # seconds: the least lifetime a reader could find in the store
    #: What the freshness policy promises a reader (RefreshPolicy.reader_floor): refresh_before
    #: - schedule period (one-shot); for one watcher, refresh_before - (W/2 + margin + 1 s).
    bound: float

    @property
    def ratio(self) -> float:
        return self.writes_per_token / FLOOR

    @property
    def invariant_kept(self) -> bool:
        return self.min_left >= self.bound

    def aim(self) -> float:
        return ONE_SHOT_AIM if self.mode == "one-shot" else WATCH_AIM


def _config(refresh_before: float, schedule_period: float) -> Config:
    text = f"""
[refresh]
refresh_before = {refresh_before}
schedule_period = {schedule_period}
token_lifetime = {LIFETIME}
max_workers = 1

[credentials.main]
client_id = "simulated"
client_secret = "env:HARBOR_SIMULATED_SECRET"

[sinks.store]
provider = "memory"
name = "day"

[[targets]]
credentials = "main"
environments = {list(ENVIRONMENTS)!r}
scopes = {list(SCOPES)!r}
sinks = ["store"]
"""
    environ = {"HARBOR_SIMULATED_SECRET": "simulated-secret-value"}
    return load_config(text=text.replace("'", '"'), environ=environ)


def _least_left(store: MemoryStore, now: datetime) -> float | None:
    records = store.records()
    if len(records) < len(ENVIRONMENTS) * len(SCOPES):
        return None  # the very first pass fills the store; nothing was there to read
    return min(seconds_left(record.expires_at, now) for record in records.values())


def simulate(
    mode: str, refresh_before: float, *, seed: int = 6, schedule_period: float = PERIOD
) -> DayResult:
    """One simulated day of ``mode`` ("one-shot" or "watch") at this ``refresh_before``."""
    reset_memory_stores()
    store = MemoryStore.get("day")
    clock = FakeClock(EPOCH)
    issuer = FakeIssuer(clock)
    rng = random.Random(seed)  # noqa: S311 (a reproducible simulation, not a secret)
    config = _config(refresh_before, schedule_period)
    environ = {"HARBOR_SIMULATED_SECRET": "simulated-secret-value"}
    registry = Registry(extra={"memory": MemoryProvider})
    least = float("inf")
    passes = 0
    with Runtime(config, registry=registry, environ=environ) as runtime:
        if mode == "one-shot":
            engine = SyncEngine(runtime, client_factory=issuer.factory, now=clock.now)

            def one_pass() -> float:
                engine.run(log_warnings=False)
                # The next tick of the schedule, plus that run's own start-up delay.
                tick = int(clock.seconds // schedule_period) + 1
                return tick * schedule_period + rng.uniform(*ONE_SHOT_START)

            first = rng.uniform(*ONE_SHOT_START)
        elif mode == "watch":
            watcher = Watcher(
                runtime, client_factory=issuer.factory, now=clock.now, uniform=rng.uniform
            )

            def one_pass() -> float:
                delay = watcher.run_cycle().delay
                return clock.seconds + delay + rng.uniform(0.05, MAX_WATCH_RUN)

            first = 0.0
        else:
            raise ValueError(f"unknown mode {mode!r}")
        at = first
        while at < DAY:
            clock.seconds = at
            if passes:
                left = _least_left(store, clock.now())
                least = min(least, left if left is not None else least)
            at = one_pass()
            passes += 1
    tokens = len(ENVIRONMENTS) * len(SCOPES)
    # The freshness policy's promise (one watcher is always the writer of its tokens).
    bound = config.refresh.reader_floor(watching=mode == "watch", wrote_last=True)
    return DayResult(
        mode=mode,
        refresh_before=refresh_before,
        tokens=tokens,
        passes=passes,
        writes_per_token=store.writes / tokens,
        requests_per_token=issuer.requests / tokens,
        reads_per_token=store.reads / tokens,
        min_left=least,
        bound=bound,
    )


def run(
    refresh_befores: tuple[float, ...] = (60, 90, 120, 150, 180),
    watch_refresh_befores: tuple[float, ...] = (30, 45, 60, 90, 150),
) -> list[DayResult]:
    logging.getLogger("harbor_secrets").setLevel(logging.CRITICAL)
    results = [simulate("one-shot", rb) for rb in refresh_befores]
    results += [simulate("watch", rb) for rb in watch_refresh_befores]
    return results


def report(results: list[DayResult]) -> list[str]:
    lines = [f"writes per token per day (floor {FLOOR:.0f}: one per {LIFETIME} s lifetime):"]
    for r in results:
        aim = "ok" if r.ratio <= r.aim() else "over"
        kept = "kept" if r.invariant_kept else "BROKEN"
        lines.append(
            f"  {r.mode:<8} refresh_before {r.refresh_before:>4g} s: "
            f"{r.writes_per_token:5.0f} ({r.ratio:4.2f}x, aim {r.aim():g}x {aim}); "
            f"least left {r.min_left:6.1f} s, promise {r.bound:6.1f} s {kept}"
        )
    return lines


def main() -> None:
    print("\n".join(report(run())))


if __name__ == "__main__":
    main()
