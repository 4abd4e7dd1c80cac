"""This host's clock, set right by each issuer's once the two are found to disagree.

Which clock times a new record is the freshness policy's rule
(:meth:`~harbor_secrets.freshness.RefreshPolicy.time_issue`): the issuer's, when its
``Date`` disagrees with this host's clock by more than the allowance. A host whose clock is
wrong learns so from its first token response; from then on it must *judge* stored records
by the issuer's time too, or, 10 minutes behind, it finds every correct record issued in the
future (implausible) and, 10 minutes ahead, every one expired, and asks Harbor on every
cycle. The sync engine owns one :class:`IssuerClock` per process and every judgement it and
watch mode make reads the time from it; each token response measures the skew again, so a
clock that is fixed (or breaks) while the process runs is followed.

The skew is kept **per issuer** (its host and port): each issuer's tokens expire by its own
clock, and two issuers that disagree (one behind a proxy with a wrong ``Date``) must not
make each other's records look wrong. An issuer that has sent no usable ``Date`` is believed
to agree with this host (skew 0): no skew is borrowed from another. A job is judged by its
own issuer's time (:meth:`IssuerClock.now`); what watch mode and ``/healthz`` compare across
issuers is put in this host's time first (:meth:`IssuerClock.to_local`), the one frame every
other time of the process (cycle start, last success) is read in.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from harbor_secrets.freshness import CLOCK_ALLOWANCE, IssueTiming

log = logging.getLogger("harbor_secrets.issuer_clock")

#: What to run to see and fix time synchronisation (this host's, or the issuer's side's).
TIME_SYNC_HINT = "check time synchronisation: chronyc tracking, timedatectl timesync-status"


def issuer_host(issuer: str) -> str:
    """The name a skew is kept (and logged) under: the issuer URL's host and port."""
    return urlsplit(issuer).netloc.rpartition("@")[2] or issuer


class IssuerClock:
    """The time by each issuer's clock: this host's (``local``) plus the skew last measured.

    A skew is 0 (this host's clock is believed) until a token response shows the clocks
    disagree by more than :data:`~harbor_secrets.freshness.CLOCK_ALLOWANCE`. Thread-safe:
    the engine's jobs learn from their token responses concurrently.
    """

    def __init__(self, local: Callable[[], datetime]) -> None:
        self.local = local
        self._skews: dict[str, float] = {}
        self._lock = threading.Lock()

    def skew(self, issuer: str) -> float:
        """How far ``issuer``'s clock runs ahead of this host's, in seconds (0: agreeing, or
        no usable ``Date`` from it yet)."""
        with self._lock:
            return self._skews.get(issuer_host(issuer), 0.0)

    def reading(self, issuer: str) -> tuple[datetime, float]:
        """The current time by ``issuer``'s clock, and the skew it was read with."""
        skew = self.skew(issuer)
        return self.local() + timedelta(seconds=skew), skew

    def now(self, issuer: str) -> datetime:
        """The current time by ``issuer``'s clock, as far as this process knows it."""
        return self.reading(issuer)[0]

    def to_local(self, moment: datetime, issuer: str) -> datetime:
        """``moment`` by ``issuer``'s clock (a stored expiry), in this host's time."""
        return moment - timedelta(seconds=self.skew(issuer))

    def learn(self, timing: IssueTiming, *, issuer: str) -> None:
        """Take the skew one token response from ``issuer`` (its URL) measured.

        Warns when the clocks are first found to disagree, or to disagree by a different
        amount, and says when they agree again: once per change, not once per response. An
        answer without a usable ``Date`` (``timing.skew`` None) changes nothing.
        """
        after = timing.skew
        if after is None:
            return
        host = issuer_host(issuer)
        with self._lock:
            before = self._skews.get(host, 0.0)
            self._skews[host] = after
            skews = dict(self._skews)
        disagreeing = len(skews) > 1 and max(skews.values()) - min(skews.values()) > CLOCK_ALLOWANCE
        if after and (not before or abs(after - before) > CLOCK_ALLOWANCE):
            direction = "behind" if after > 0 else "ahead of"
            log.warning(
                "this host's clock and the issuer's (the Date header of %s) disagree by "
                "%.0f s: this host is %s it, or the issuer's side (a proxy) sends a wrong "
                "Date; tokens from it are timed, and stored ones judged, by the issuer's "
                "clock, readers judge by their own clocks and may refuse or overtrust "
                "tokens; %s, on this host and compare with a reference",
                host,
                abs(after),
                direction,
                TIME_SYNC_HINT,
                extra={"event": "clock.skew", "skew_seconds": round(after, 3), "issuer": host},
            )
            if disagreeing:
                log.warning(
                    "the issuers' clocks disagree with each other (%s): each issuer's "
                    "tokens are timed and judged by its own clock",
                    ", ".join(f"{name} {skew:+.0f} s" for name, skew in skews.items()),
                    extra={"event": "clock.issuers_disagree"},
                )
        elif before and not after:
            log.info(
                "this host's clock agrees with the issuer's (%s) again",
                host,
                extra={"event": "clock.agrees", "issuer": host},
            )
