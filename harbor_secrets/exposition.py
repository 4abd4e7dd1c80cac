"""Prometheus exposition of :class:`~harbor_secrets.metrics.SyncMetrics`.

The one module that imports ``prometheus_client`` (the optional ``metrics`` extra). Callers
first run :func:`harbor_secrets.metrics.require_prometheus`, so a missing library is a clear
exit 2, not an ImportError. The facts are rendered by a custom collector rather than kept
in prometheus_client's own metric objects, so a one-shot run can continue the counters of
the textfile it replaces.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from urllib.error import HTTPError

from prometheus_client import ProcessCollector
from prometheus_client.exposition import choose_encoder, generate_latest, push_to_gateway
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector, CollectorRegistry

from harbor_secrets._files import AtomicFile
from harbor_secrets._reading import UnusableFileError, decode_utf8
from harbor_secrets.errors import HarborSecretsError, StoreError
from harbor_secrets.metrics import (
    EXPIRY,
    FAILURES,
    LAST_SUCCESS,
    SINK_LABELS,
    SKIPS,
    TOKEN_REQUEST,
    WRITES,
    SinkKey,
    SyncMetrics,
)

log = logging.getLogger(__name__)

JOB = "harbor-secrets"
#: Metrics are not secret and node-exporter usually runs as another user.
TEXTFILE_MODE = 0o644

_HELP = {
    EXPIRY: "When the token stored in the sink expires (unix time), as last read or written.",
    LAST_SUCCESS: "When the sink last held a fresh token (unix time): a successful write, or "
    "a check that found it fresh or newer.",
    WRITES: "Tokens written to the sink.",
    SKIPS: "Runs that left the sink alone: its token was fresh, or it already held a newer one.",
    FAILURES: "Failed reads, writes or token requests for the sink, by reason.",
    TOKEN_REQUEST: "Time to get a token from the issuer, retries included, in seconds.",
}


class SyncCollector(Collector):
    """Renders a :class:`SyncMetrics` snapshot on every collection."""

    def __init__(self, metrics: SyncMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        snapshot = self.metrics.snapshot()
        yield _family(GaugeMetricFamily(EXPIRY, _HELP[EXPIRY], labels=SINK_LABELS), snapshot.expiry)
        yield _family(
            GaugeMetricFamily(LAST_SUCCESS, _HELP[LAST_SUCCESS], labels=SINK_LABELS),
            snapshot.last_success,
        )
        yield _family(
            CounterMetricFamily(WRITES, _HELP[WRITES], labels=SINK_LABELS), snapshot.writes
        )
        yield _family(CounterMetricFamily(SKIPS, _HELP[SKIPS], labels=SINK_LABELS), snapshot.skips)
        failures = CounterMetricFamily(FAILURES, _HELP[FAILURES], labels=(*SINK_LABELS, "reason"))
        for (key, reason), value in sorted(snapshot.failures.items()):
            failures.add_metric([*key, reason], value)
        yield failures
        latency = HistogramMetricFamily(TOKEN_REQUEST, _HELP[TOKEN_REQUEST], labels=["environment"])
        for environment, histogram in sorted(snapshot.token_requests.items()):
            latency.add_metric(
                [environment], buckets=histogram.cumulative(), sum_value=histogram.total
            )
        yield latency


def _family(
    family: GaugeMetricFamily | CounterMetricFamily, values: Mapping[SinkKey, float]
) -> Metric:
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family


def registry_for(metrics: SyncMetrics, *, process: bool = False) -> CollectorRegistry:
    """A registry of our metrics only (plus process_* ones for a long-running process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SyncCollector(metrics))
    if process:
        ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The scrape body and its content type, negotiated from the Accept header."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


# -- node-exporter textfile ----------------------------------------------------------------


def restore_textfile(path: Path, metrics: SyncMetrics) -> None:
    """Continue from the file an earlier run wrote; an unusable one just starts afresh.

    Read by the same writer that replaces it, so bounded, never through a link, never
    blocking on a FIFO: whatever sits at ``path``, a run only warns.
    """
    try:
        data = _textfile(path).read()
        if data is None:
            return
        text = decode_utf8(data)
    except StoreError as exc:
        log.warning("%s; counters restart", exc.message)
        return
    except UnusableFileError as exc:
        log.warning("the previous metrics file %s %s; counters restart", path, exc.problem)
        return
    try:
        metrics.restore(list(_samples(text)))
    except ValueError as exc:
        log.warning("the previous metrics file %s does not parse (%s); counters restart", path, exc)


def _samples(text: str) -> Iterator[tuple[str, Mapping[str, str], float]]:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            yield sample.name, sample.labels, sample.value


def write_textfile(path: Path, metrics: SyncMetrics) -> None:
    """Replace ``path`` atomically: the collector reads the old file or the new one, whole.

    The core's atomic writer puts the temporary file in the same directory (so the rename
    is atomic) under a name that does not end in ``.prom`` (so the collector never reads it
    half-written).
    """
    _textfile(path).replace(generate_latest(registry_for(metrics)))


def _textfile(path: Path) -> AtomicFile:
    return AtomicFile(path, mode=TEXTFILE_MODE, what="the metrics file")


# -- Pushgateway -------------------------------------------------------------------------------


def push(url: str, metrics: SyncMetrics, *, timeout: float = 10.0) -> None:
    """PUT this run's metrics to ``{url}/metrics/job/harbor-secrets`` (replacing the last push)."""
    try:
        push_to_gateway(url, job=JOB, registry=registry_for(metrics), timeout=timeout)
    except HTTPError as exc:
        raise HarborSecretsError(
            f"pushing metrics to {url} failed: HTTP {exc.code} {exc.reason}",
            hint="check the Pushgateway's log; the sync itself ran",
        ) from None
    except OSError as exc:  # urllib's URLError, timeouts, refused connections
        reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
        raise HarborSecretsError(
            f"pushing metrics to {url} failed: {reason}",
            hint="check --pushgateway and that the Pushgateway is up; the sync itself ran",
        ) from None
