"""Fake time for code that takes its clock and its sleep as arguments.

:class:`FakeTime` serves monotonic-clock code (the token client's retries): a sleep is
recorded and moves the clock instead of waiting. :class:`FakeClock` serves wall-clock code
(the sync engine, watch mode): its ``now`` returns a UTC datetime moved only by the test.
:class:`ClockedSource` issues tokens stamped with such a clock;
:func:`clocked_token_clients` gives the engine real token clients (real HTTP to an issuer)
that stamp their requests with a host clock of the test's choosing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from harbor_secrets.config import Config, CredentialsConfig
from harbor_secrets.environments import Environment
from harbor_secrets.secrets import Secret
from harbor_secrets.sync import ClientFactory, TokenSource, token_client
from harbor_secrets.token_client import IssuedToken

#: A fixed, whole-second starting point for simulations.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class FakeTime:
    """Records sleeps instead of waiting; the clock moves by what was 'slept'."""

    def __init__(self) -> None:
        self.slept: list[float] = []
        self.offset = 0.0

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.offset += seconds

    def clock(self) -> float:
        return time.monotonic() + self.offset


class FakeClock:
    """Wall-clock time moved only by :meth:`advance` (or by setting :attr:`seconds`)."""

    def __init__(self, start: datetime = EPOCH) -> None:
        self.start = start
        self.seconds = 0.0

    def now(self) -> datetime:
        return self.at(self.seconds)

    def at(self, seconds: float) -> datetime:
        """The wall-clock time ``seconds`` after :attr:`start` (a simulation's other clocks,
        such as a replica's cycle start, are kept as such offsets)."""
        return self.start + timedelta(seconds=seconds)

    def advance(self, seconds: float) -> datetime:
        self.seconds += seconds
        return self.now()


class ClockedSource:
    """A token source for the sync engine (``client_factory=source.factory``) that issues
    tokens of :attr:`lifetime` seconds stamped with ``clock`` (a :class:`FakeClock`), as
    the real client stamps them with the host's; :attr:`fetches` counts the requests."""

    def __init__(self, clock: FakeClock, lifetime: int = 300, prefix: str = "tok-clock") -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.prefix = prefix
        self.fetches = 0

    def factory(self, *_: object) -> ClockedSource:
        """A ``client_factory``: every (credentials, environment) gets this one source."""
        return self

    def fetch(self, scope: str) -> IssuedToken:
        self.fetches += 1
        return IssuedToken(
            access_token=Secret(f"{self.prefix}-{self.fetches:04d}-padding", ephemeral=True),
            token_type="Bearer",
            expires_in=self.lifetime,
            granted_scope=scope,
            refresh_token=None,
            issued_at=self.clock.now(),
            attempts=1,
        )

    def close(self) -> None:
        pass


def clocked_token_clients(now: Callable[[], datetime]) -> ClientFactory:
    """A ``client_factory`` of real token clients whose host clock is ``now`` (a host whose
    clock is wrong, or a simulation's): it stamps each request's send and receive time."""

    def factory(
        config: Config, environment: Environment, credentials: CredentialsConfig, s: Secret
    ) -> TokenSource:
        return token_client(config, environment, credentials, s, wall_clock=now)

    return factory
