"""deploy/prometheus/harbor-secrets.rules.yml, checked the way `promtool check rules` would.

promtool is not installed here, so the file is read with PyYAML and every expression is
parsed by promql-parser (Python bindings of a port of Prometheus' own PromQL parser, which
rejects syntax errors, unknown functions and bad durations). On top of what promtool
checks, the metric and label names must be those harbor-secrets exports, and every
`$labels.X` an annotation uses must survive the expression's aggregation.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from harbor_secrets import metrics

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "deploy" / "prometheus" / "harbor-secrets.rules.yml"
README = REPO / "deploy" / "README.md"

TARGET = {"credentials", "environment", "scope", "sink"}
#: What harbor-secrets exports (harbor_secrets.metrics, checked below), name → labels.
METRICS: dict[str, set[str]] = {
    "harbor_secrets_token_expiry_timestamp_seconds": TARGET,
    "harbor_secrets_last_success_timestamp_seconds": TARGET,
    "harbor_secrets_writes_total": TARGET,
    "harbor_secrets_skips_total": TARGET,
    "harbor_secrets_failures_total": TARGET | {"reason"},
    "harbor_secrets_token_request_seconds_bucket": {"environment", "le"},
    "harbor_secrets_token_request_seconds_sum": {"environment"},
    "harbor_secrets_token_request_seconds_count": {"environment"},
}
RULE_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
SEVERITIES = {"critical", "warning", "info"}
REQUIRED_ANNOTATIONS = {"summary", "description", "runbook"}
TEMPLATE_FUNCTIONS = {"humanize", "humanizeDuration", "humanizePercentage", "humanizeTimestamp"}
DURATION = re.compile(r"0|(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?(?:\d+ms)?")


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules()}


def output_labels(expr: Any) -> set[str] | None:
    """Labels of the series an expression returns; None for a scalar."""
    kind = type(expr).__name__
    if kind == "NumberLiteral":
        return None
    if kind == "VectorSelector":
        assert expr.name in METRICS, f"unknown metric {expr.name}"
        for matcher in expr.matchers.matchers:
            assert matcher.name in METRICS[expr.name], f"{expr.name} has no label {matcher.name}"
        return set(METRICS[expr.name])
    if kind == "MatrixSelector":
        return output_labels(expr.vector_selector)
    if kind == "ParenExpr":
        return output_labels(expr.expr)
    if kind == "AggregateExpr":
        inner = output_labels(expr.expr)
        assert inner is not None
        if expr.modifier is None:
            return set()
        labels = set(expr.modifier.labels)
        assert labels <= inner, f"aggregating by labels the series lack: {labels - inner}"
        return labels if "By" in str(expr.modifier.type) else inner - labels
    if kind == "BinaryExpr":
        sides = [output_labels(expr.lhs), output_labels(expr.rhs)]
        vectors = [side for side in sides if side is not None]
        return set.intersection(*vectors) if vectors else None
    if kind == "Call":
        name = expr.func.name
        arguments = [output_labels(argument) for argument in expr.args]
        if "Scalar" in str(expr.func.return_type):
            return None
        if name == "absent":
            (selector,) = expr.args
            return {m.name for m in selector.matchers.matchers if str(m.op) == "MatchOp.Equal"}
        if name == "histogram_quantile":
            assert arguments[1] is not None
            assert "le" in arguments[1], "histogram_quantile needs the le label"
            return arguments[1] - {"le"}
        (vector,) = [argument for argument in arguments if argument is not None]
        return vector
    raise AssertionError(f"no label rule for {kind}: {expr}")


def test_metric_names_are_the_ones_harbor_secrets_exports() -> None:
    gauges_and_counters = {
        metrics.EXPIRY,
        metrics.LAST_SUCCESS,
        metrics.WRITES,
        metrics.SKIPS,
        metrics.FAILURES,
    }
    histogram = {f"{metrics.TOKEN_REQUEST}_{suffix}" for suffix in ("bucket", "sum", "count")}
    assert gauges_and_counters | histogram == set(METRICS)
    assert set(metrics.SINK_LABELS) == TARGET


def test_file_has_the_rule_file_shape() -> None:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert set(document) == {"groups"}
    names = [group["name"] for group in document["groups"]]
    assert len(names) == len(set(names))
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"}
        assert group["rules"]
    for rule in rules():
        assert set(rule) <= RULE_KEYS, rule.get("alert")
        assert {"alert", "expr", "for", "labels", "annotations"} <= set(rule)


def test_alert_names_are_unique_and_camel_case() -> None:
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    for name in names:
        assert re.fullmatch(r"HarborSecrets[A-Z][A-Za-z]+", name)


@pytest.mark.parametrize("name", sorted(alerts()))
def test_rule_is_complete_and_its_expression_parses(name: str) -> None:
    rule = alerts()[name]
    expression = promql_parser.parse(rule["expr"])
    labels = output_labels(expression)
    assert labels is not None, "an alert expression must return series"
    assert DURATION.fullmatch(rule["for"]), rule["for"]
    assert rule["labels"]["severity"] in SEVERITIES
    assert set(rule["annotations"]) >= REQUIRED_ANNOTATIONS
    for text in rule["annotations"].values():
        assert text.count("{{") == text.count("}}")
        for template in re.findall(r"\{\{(.*?)\}\}", text):
            value, *functions = (part.strip() for part in template.split("|"))
            label = re.fullmatch(r"\$labels\.([a-z_]+)", value)
            assert label or value == "$value", template
            if label:
                assert label.group(1) in labels, f"{template}: {label.group(1)} is aggregated away"
            assert set(functions) <= TEMPLATE_FUNCTIONS, template


def test_the_label_check_catches_a_label_that_is_aggregated_away() -> None:
    expression = promql_parser.parse(
        "sum by (environment) (increase(harbor_secrets_failures_total[5m])) > 0"
    )
    assert output_labels(expression) == {"environment"}
    with pytest.raises(AssertionError, match="unknown metric"):
        output_labels(promql_parser.parse("harbor_secrets_token_expiry_seconds < 60"))


def test_parser_rejects_what_promtool_rejects() -> None:
    for bad in ("rate(harbor_secrets_writes_total[5m)", "tme() - 1", "increase(x[5x])"):
        with pytest.raises(ValueError):  # noqa: PT011 - the parser raises a bare ValueError
            promql_parser.parse(bad)


def test_the_two_alerts_the_issue_asks_for() -> None:
    expiring = alerts()["HarborSecretsTokenExpiringSoon"]
    assert expiring["expr"] == "harbor_secrets_token_expiry_timestamp_seconds - time() < 60"
    assert expiring["labels"]["severity"] == "critical"
    stale = alerts()["HarborSecretsNoRecentSuccess"]
    assert stale["expr"] == "time() - harbor_secrets_last_success_timestamp_seconds > 300"
    failing = promql_parser.parse(alerts()["HarborSecretsFailing"]["expr"])
    assert "harbor_secrets_failures_total" in str(failing)
    absent = promql_parser.parse(alerts()["HarborSecretsMetricsAbsent"]["expr"])
    assert type(absent).__name__ == "Call"


def test_readme_lists_every_alert() -> None:
    readme = README.read_text(encoding="utf-8")
    for name in alerts():
        assert f"`{name}`" in readme, name
