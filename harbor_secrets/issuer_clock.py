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
make each other's records look wrong. A job is judged by its own issuer's time
(:meth:`IssuerClock.now`). What watch mode and ``/healthz`` compare across issuers is put in
one frame first (:meth:`IssuerClock.framed`): the process's time (:meth:`IssuerClock.time`),
which is the issuers' when they all agree, and this host's own when they do not.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
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
        """How far ``issuer``'s clock runs ahead of this host's, in seconds (0: agreeing).
        An issuer that has sent no usable ``Date`` yet gets :attr:`agreed_skew`: what the
        others measured is this host's error, as far as anyone can tell."""
        with self._lock:
            measured = self._skews.get(issuer_host(issuer))
            return _agreed(self._skews.values()) if measured is None else measured

    @property
    def agreed_skew(self) -> float:
        """The skew every issuer measured (within the allowance; the largest, so corrected
        time errs late and tokens fall due early), or 0 when they disagree: then this host
        cannot tell whose clock is wrong, and keeps its own."""
        with self._lock:
            return _agreed(self._skews.values())

    def now(self, issuer: str) -> datetime:
        """The current time by ``issuer``'s clock, as far as this process knows it."""
        return self.local() + timedelta(seconds=self.skew(issuer))

    def time(self) -> datetime:
        """The process's time: the frame in which watch mode and ``/healthz`` judge."""
        return self.corrected(self.local())

    def corrected(self, moment: datetime) -> datetime:
        """``moment`` read from this host's clock, in the process's frame."""
        return moment + timedelta(seconds=self.agreed_skew)

    def framed(self, moment: datetime, issuer: str) -> datetime:
        """``moment`` by ``issuer``'s clock (a stored expiry), in the process's frame."""
        return moment + timedelta(seconds=self.agreed_skew - self.skew(issuer))

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
        disagreeing = len(skews) > 1 and not _agreed(skews.values()) and any(skews.values())
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
                    "tokens are judged by its own clock; watch mode paces by this host's",
                    ", ".join(f"{name} {skew:+.0f} s" for name, skew in skews.items()),
                    extra={"event": "clock.issuers_disagree"},
                )
        elif before and not after:
            log.info(
                "this host's clock agrees with the issuer's (%s) again",
                host,
                extra={"event": "clock.agrees", "issuer": host},
            )


def _agreed(skews: Iterable[float]) -> float:
    values = list(skews)
    if not values or max(values) - min(values) > CLOCK_ALLOWANCE:
        return 0.0
    return float(max(values))
