"""Fake time for code that takes its clock and its sleep as arguments.

:class:`FakeTime` serves monotonic-clock code (the token client's retries): a sleep is
recorded and moves the clock instead of waiting. :class:`FakeClock` serves wall-clock code
(the sync engine, watch mode): its ``now`` returns a UTC datetime moved only by the test.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

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
        return self.start + timedelta(seconds=self.seconds)

    def advance(self, seconds: float) -> datetime:
        self.seconds += seconds
        return self.now()
