"""This host's clock, set right by the issuer's once the two are found to disagree.

Which clock times a new record is the freshness policy's rule
(:meth:`~harbor_secrets.freshness.RefreshPolicy.time_issue`): the issuer's, when its
``Date`` disagrees with this host's clock by more than the allowance. A host whose clock is
wrong learns so from its first token response; from then on it must *judge* stored records
by the issuer's time too, or, 10 minutes behind, it finds every correct record issued in the
future (implausible) and, 10 minutes ahead, every one expired, and asks Harbor on every
cycle. The sync engine owns one :class:`IssuerClock` per process and every judgement it and
watch mode make reads the time from it; each token response measures the skew again, so a
clock that is fixed (or breaks) while the process runs is followed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from harbor_secrets.freshness import CLOCK_ALLOWANCE, IssueTiming

log = logging.getLogger("harbor_secrets.issuer_clock")

#: What to run to see and fix this host's time synchronisation.
TIME_SYNC_HINT = "check time synchronisation: chronyc tracking, timedatectl timesync-status"


class IssuerClock:
    """The time by the issuer's clock: this host's (``local``) plus the skew last measured.

    The skew is 0 (this host's clock is believed) until a token response shows the clocks
    disagree by more than :data:`~harbor_secrets.freshness.CLOCK_ALLOWANCE`. Thread-safe:
    the engine's jobs learn from their token responses concurrently.
    """

    def __init__(self, local: Callable[[], datetime]) -> None:
        self.local = local
        self._skew = 0.0
        self._lock = threading.Lock()

    @property
    def skew(self) -> float:
        """How far the issuer's clock runs ahead of this host's, in seconds (0: agreeing)."""
        with self._lock:
            return self._skew

    def now(self) -> datetime:
        """The current time by the issuer's clock, as far as this process knows it."""
        return self.corrected(self.local())

    def corrected(self, moment: datetime) -> datetime:
        """``moment`` read from this host's clock, in the issuer's time."""
        return moment + timedelta(seconds=self.skew)

    def learn(self, timing: IssueTiming, *, issuer: str) -> None:
        """Take the skew one token response from ``issuer`` (its URL) measured.

        Warns when this host's clock is first found wrong, or wrong by a different amount,
        and says when it agrees again: once per change, not once per response. An answer
        without a ``Date`` (``timing.skew`` None) tells nothing and changes nothing.
        """
        after = timing.skew
        if after is None:
            return
        with self._lock:
            before, self._skew = self._skew, after
        host = urlsplit(issuer).hostname or issuer
        if after and (not before or abs(after - before) > CLOCK_ALLOWANCE):
            direction = "behind" if after > 0 else "ahead of"
            log.warning(
                "this host's clock is %.0f s %s the issuer's (the Date header of %s): tokens "
                "are timed, and stored ones judged, by the issuer's clock until it is fixed; "
                "readers on this host judge by its own clock and may refuse or overtrust "
                "tokens; %s",
                abs(after),
                direction,
                host,
                TIME_SYNC_HINT,
                extra={"event": "clock.skew", "skew_seconds": round(after, 3), "issuer": host},
            )
        elif before and not after:
            log.info(
                "this host's clock agrees with the issuer's (%s) again",
                host,
                extra={"event": "clock.agrees", "issuer": host},
            )
