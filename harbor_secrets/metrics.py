"""What sync runs did, per sink, in plain Python: the facts behind the Prometheus metrics.

Kept free of ``prometheus_client`` so the core and watch mode run without it; only
:mod:`harbor_secrets.exposition` (imported when ``--listen``, ``--metrics-file`` or
``--pushgateway`` is used) renders these facts. Watch mode keeps one :class:`SyncMetrics`
for the life of the process; a one-shot run first :meth:`~SyncMetrics.restore`s the previous
textfile so counters keep counting across runs, as Prometheus expects of a counter.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from harbor_secrets.config import Job
from harbor_secrets.errors import (
    ConfigError,
    HarborSecretsError,
    InvalidClientError,
    InvalidGrantError,
    InvalidScopeError,
    IssuerError,
    IssuerUnavailableError,
    MalformedResponseError,
    NotFoundError,
    ProviderUnavailableError,
    SecretReferenceError,
    StoreError,
    UnauthorizedClientError,
)
from harbor_secrets.sync import (
    FAILED,
    FRESH,
    KEPT_NEWER,
    WRITTEN,
    JobResult,
    SinkResult,
    SyncReport,
)

# Names and labels are a contract with dashboards and alert rules: never rename them.
EXPIRY = "harbor_secrets_token_expiry_timestamp_seconds"
LAST_SUCCESS = "harbor_secrets_last_success_timestamp_seconds"
WRITES = "harbor_secrets_writes_total"
SKIPS = "harbor_secrets_skips_total"
FAILURES = "harbor_secrets_failures_total"
TOKEN_REQUEST = "harbor_secrets_token_request_seconds"
SINK_LABELS = ("credentials", "environment", "scope", "sink")
#: Token-request latency buckets; the last one is the default retry budget (30 s).
BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
INSTALL_HINT = "pip install 'harbor-secrets[metrics]'"
#: The failure reason of a sink whose token was written but whose on_write command failed.
ON_WRITE_FAILED = "on-write-failed"

#: (credentials, environment, scope, sink), in :data:`SINK_LABELS` order.
SinkKey = tuple[str, str, str, str]

# Failure reasons for a job that failed as a whole, named by the core's error classes so the
# label's values stay a short, fixed list whatever a provider raises.
_ERROR_REASONS: dict[type[BaseException], str] = {
    IssuerUnavailableError: "issuer-unavailable",
    InvalidClientError: "invalid-client",
    UnauthorizedClientError: "unauthorized-client",
    InvalidScopeError: "invalid-scope",
    InvalidGrantError: "invalid-grant",
    NotFoundError: "issuer-not-found",
    MalformedResponseError: "malformed-response",
    IssuerError: "issuer-error",
    SecretReferenceError: "secret-reference",
    ConfigError: "config",
    ProviderUnavailableError: "provider-unavailable",
    StoreError: "store-error",
    HarborSecretsError: "error",
}


def error_reason(error_class: type[BaseException] | None) -> str:
    """The failure reason for an exception class: its nearest core error, else "unexpected"."""
    for base in (error_class or Exception).__mro__:
        if base in _ERROR_REASONS:
            return _ERROR_REASONS[base]
    return "unexpected"


def sink_key(job: Job, sink: str) -> SinkKey:
    return (job.credentials, job.environment, job.scope, sink)


def failure_reason(job: JobResult, sink: SinkResult) -> str:
    """Why a sink failed: the store's own reason, or what failed the token request."""
    if job.error is not None and sink.reason == "token-request-failed":
        return error_reason(job.error_class)
    return sink.reason or "error"


class ObservedExpiry(NamedTuple):
    """A sink's token expiry as a run knows it, and the lifetime that token was granted
    (None where the store keeps no issue time): the freshness policy needs both to judge it.
    """

    expires_at: datetime
    lifetime: float | None


def observed_expiry(job: JobResult, sink: SinkResult) -> ObservedExpiry | None:
    """When the sink's token expires, as far as this run knows, and its granted lifetime.

    A sink that kept a newer token holds one expiring no earlier than the token just
    fetched, so that is the (conservative) answer for it.
    """
    fetched, read = job.token_expires_at, sink.expires_at
    if sink.action == KEPT_NEWER and fetched is not None and (read is None or fetched >= read):
        return ObservedExpiry(fetched, job.token_lifetime)
    return None if read is None else ObservedExpiry(read, sink.lifetime)


@dataclass
class Histogram:
    """A Prometheus histogram's state: per-bucket counts (the last is +Inf), count and sum."""

    bounds: tuple[float, ...] = BUCKETS
    counts: list[float] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0.0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    @property
    def count(self) -> float:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, cumulative count)`` pairs as the exposition format wants them."""
        pairs = []
        running = 0.0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            pairs.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return pairs

    def copy(self) -> Histogram:
        return Histogram(self.bounds, list(self.counts), self.total)


@dataclass(frozen=True)
class MetricsSnapshot:
    """A consistent copy of every series, for one scrape or one file."""

    expiry: Mapping[SinkKey, float]
    #: The lifetime each expiry's token was granted (None: its store keeps no issue time);
    #: not exported, but ``/healthz`` judges an expiry by it.
    lifetime: Mapping[SinkKey, float | None]
    last_success: Mapping[SinkKey, float]
    writes: Mapping[SinkKey, float]
    skips: Mapping[SinkKey, float]
    failures: Mapping[tuple[SinkKey, str], float]
    token_requests: Mapping[str, Histogram]


class SyncMetrics:
    """Counters, gauges and the latency histogram, updated from each :class:`SyncReport`.

    Thread-safe: the watch loop records while the HTTP thread takes snapshots. Every
    configured sink starts with zeroed write and skip counters, so rate() works from the
    first increment and a dashboard lists sinks that have done nothing yet.
    """

    def __init__(self, jobs: Iterable[Job] = ()) -> None:
        self._lock = threading.Lock()
        self.expected: tuple[SinkKey, ...] = tuple(
            sink_key(job, sink) for job in jobs for sink in job.sinks
        )
        self._environments = {key[1] for key in self.expected}
        self._expiry: dict[SinkKey, float] = {}
        self._lifetime: dict[SinkKey, float | None] = {}
        self._last_success: dict[SinkKey, float] = {}
        self._writes: dict[SinkKey, float] = dict.fromkeys(self.expected, 0.0)
        self._skips: dict[SinkKey, float] = dict.fromkeys(self.expected, 0.0)
        self._failures: dict[tuple[SinkKey, str], float] = {}
        self._latency: dict[str, Histogram] = {}

    def record(self, report: SyncReport) -> None:
        """Add one run's outcome; a sink whose read failed keeps its last known expiry."""
        finished = report.finished_at.timestamp()
        with self._lock:
            for job in report.results:
                if job.fetch_seconds is not None:
                    histogram = self._latency.setdefault(job.job.environment, Histogram())
                    histogram.observe(job.fetch_seconds)
                for sink in job.sinks:
                    key = sink_key(job.job, sink.sink)
                    observed = observed_expiry(job, sink)
                    if observed is not None:
                        self._expiry[key] = observed.expires_at.timestamp()
                        self._lifetime[key] = observed.lifetime
                    if sink.action == WRITTEN:
                        self._writes[key] = self._writes.get(key, 0.0) + 1
                    elif sink.action in (FRESH, KEPT_NEWER):
                        self._skips[key] = self._skips.get(key, 0.0) + 1
                    elif sink.action == FAILED:
                        failure = (key, failure_reason(job, sink))
                        self._failures[failure] = self._failures.get(failure, 0.0) + 1
                    if sink.on_write_ok is False:
                        failure = (key, ON_WRITE_FAILED)
                        self._failures[failure] = self._failures.get(failure, 0.0) + 1
                    if sink.action in (WRITTEN, FRESH, KEPT_NEWER):
                        self._last_success[key] = finished

    def record_run_error(self, error_class: type[BaseException]) -> None:
        """A run that failed before any sink was looked at: every sink failed for that reason."""
        reason = error_reason(error_class)
        with self._lock:
            for key in self.expected:
                self._failures[(key, reason)] = self._failures.get((key, reason), 0.0) + 1

    def restore(self, samples: Iterable[tuple[str, Mapping[str, str], float]]) -> int:
        """Continue from an earlier run's samples (name, labels, value); returns how many.

        Only series of sinks and environments still configured come back, so a removed sink
        does not live on in the file forever. Histograms come back only if their buckets
        match ours exactly.
        """
        allowed = set(self.expected)
        scalars: dict[str, dict[SinkKey, float]] = {
            EXPIRY: self._expiry,
            LAST_SUCCESS: self._last_success,
            WRITES: self._writes,
            SKIPS: self._skips,
        }
        buckets: dict[str, dict[str, float]] = {}
        sums: dict[str, float] = {}
        restored = 0
        with self._lock:
            for name, labels, value in samples:
                if not math.isfinite(value) or value < 0:
                    continue  # none of ours is ever negative or NaN: not our file
                key = _key_of(labels)
                if name in scalars and key in allowed:
                    scalars[name][key] = value
                    restored += 1
                elif name == FAILURES and key in allowed and labels.get("reason"):
                    self._failures[(key, labels["reason"])] = value
                    restored += 1
                elif labels.get("environment") in self._environments:
                    environment = labels["environment"]
                    if name == TOKEN_REQUEST + "_bucket" and "le" in labels:
                        buckets.setdefault(environment, {})[labels["le"]] = value
                    elif name == TOKEN_REQUEST + "_sum":
                        sums[environment] = value
            for environment, by_le in buckets.items():
                histogram = _histogram_from(by_le, sums.get(environment, 0.0))
                if histogram is not None:
                    self._latency[environment] = histogram
                    restored += 1
        return restored

    def snapshot(self) -> MetricsSnapshot:
        with self._lock:
            return MetricsSnapshot(
                expiry=dict(self._expiry),
                lifetime=dict(self._lifetime),
                last_success=dict(self._last_success),
                writes=dict(self._writes),
                skips=dict(self._skips),
                failures=dict(self._failures),
                token_requests={env: h.copy() for env, h in self._latency.items()},
            )


def _key_of(labels: Mapping[str, str]) -> SinkKey:
    get = labels.get
    return (get("credentials", ""), get("environment", ""), get("scope", ""), get("sink", ""))


def _histogram_from(by_le: Mapping[str, float], total: float) -> Histogram | None:
    """Rebuild a histogram from cumulative ``le`` samples, or None if its buckets differ."""
    histogram = Histogram()
    try:
        parsed = {float(le): value for le, value in by_le.items()}
    except ValueError:
        return None
    if sorted(parsed) != [*histogram.bounds, float("inf")]:
        return None
    previous = 0.0
    for index, bound in enumerate((*histogram.bounds, float("inf"))):
        histogram.counts[index] = max(parsed[bound] - previous, 0.0)
        previous = parsed[bound]
    histogram.total = total
    return histogram


# -- the optional dependency, checked before any network call -------------------------------


def require_prometheus(option: str) -> None:
    """Exit 2 with the install command when the optional ``metrics`` extra is missing."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise ConfigError(
            "needs the Prometheus client library (prometheus-client), which is not installed",
            key=option,
            fix=INSTALL_HINT,
        ) from None
