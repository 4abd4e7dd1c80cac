"""What harbor-secrets exports, read from its own exposition, and the one check promtool lacks.

promtool parses every alert and dashboard query, but it cannot know which metrics exist: a
misspelt name is valid PromQL that quietly matches nothing. So the metric and label names
a query selects are compared with what harbor-secrets really exports: the text its
exposition renders for a :class:`~harbor_secrets.metrics.SyncMetrics` holding a sample of
every family, not a list kept by hand. Shared by the alert-rule and dashboard tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import promql_parser
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from harbor_secrets import metrics
from harbor_secrets.config import Job
from harbor_secrets.exposition import registry_for

#: Labels Prometheus itself puts on a scraped series (target and service discovery), which a
#: query may select on although harbor-secrets does not write them.
TARGET_LABELS = frozenset({"instance", "job", "pod", "namespace", "container", "service"})

_JOB = Job("main", "sandbox", "service_provider", ("vault",))


def exposition() -> str:
    """The Prometheus text of a watch process that has something in every metric family."""
    sync = metrics.SyncMetrics([_JOB])
    labels = dict(zip(metrics.SINK_LABELS, metrics.sink_key(_JOB, "vault"), strict=True))
    bounds = [repr(bound) for bound in metrics.BUCKETS] + ["+Inf"]
    samples = [
        (metrics.EXPIRY, labels, 1_700_000_300.0),
        (metrics.LAST_SUCCESS, labels, 1_700_000_000.0),
        (metrics.WRITES, labels, 3.0),
        (metrics.SKIPS, labels, 5.0),
        (metrics.FAILURES, {**labels, "reason": "issuer-unavailable"}, 1.0),
        *[
            (f"{metrics.TOKEN_REQUEST}_bucket", {"environment": "sandbox", "le": le}, 4.0)
            for le in bounds
        ],
        (f"{metrics.TOKEN_REQUEST}_sum", {"environment": "sandbox"}, 0.8),
    ]
    assert sync.restore(samples) == 6, "a family stayed empty: the sample is out of date"
    return generate_latest(registry_for(sync)).decode()


def exported() -> dict[str, frozenset[str]]:
    """Series name (``_bucket``, ``_sum``, ``_count`` for the histogram) → its label names."""
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(exposition()):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue  # prometheus_client's creation-time series; nothing should rely on it
            names.setdefault(sample.name, set()).update(sample.labels)
    return {name: frozenset(labels) for name, labels in names.items()}


def selectors(expression: str) -> Iterator[tuple[str, frozenset[str]]]:
    """(metric name, label names matched on) of every series selector in a PromQL query."""
    found: list[tuple[str, frozenset[str]]] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = node.matchers.matchers
            named = [m.value for m in matchers if m.name == "__name__"]
            operators = {str(m.op) for m in matchers if m.name == "__name__"}
            assert operators <= {"MatchOp.Equal"}, f"{expression}: a name pattern is uncheckable"
            name = node.name or (named[0] if named else None)
            assert name, f"{expression}: a selector without a metric name"
            found.append((name, frozenset(m.name for m in matchers if m.name != "__name__")))

    promql_parser.walk(promql_parser.parse(expression), visit)
    yield from found


def unknown_names(expression: str, known: dict[str, frozenset[str]]) -> list[str]:
    """What ``expression`` selects that harbor-secrets does not export; empty when all is."""
    problems = []
    for name, labels in selectors(expression):
        if name == "up":  # Prometheus's own, for every target: it has only target labels
            if labels - TARGET_LABELS:
                problems.append(f"label {sorted(labels - TARGET_LABELS)} of up")
        elif name not in known:
            problems.append(f"metric {name}")
        elif labels - known[name] - TARGET_LABELS:
            problems.append(f"label {sorted(labels - known[name] - TARGET_LABELS)} of {name}")
    return problems
