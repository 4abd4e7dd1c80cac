"""deploy/grafana/harbor-secrets.json: every query parses with promtool, selects only what
harbor-secrets exports, and the panels the issue asks for are there and compute the right thing.

Grafana's variables and macros ($environment, $__rate_interval, …) are not PromQL, so each
query is first given the values Grafana would (a variable's "All" regex or its current value,
5m for an interval). The queries then become recording rules of a throwaway rules file for
`promtool check rules` (the pinned promtool of the root conftest), and their metric and label
names are compared with the tool's own exposition (tests/exported_metrics.py). The panel that
matters most to readers, the remaining lifetime of each token, is also evaluated by
`promtool test rules` on two replicas' series.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from exported_metrics import TARGET_LABELS, exported, unknown_names

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "deploy" / "grafana" / "harbor-secrets.json"
#: What Grafana puts in for its interval macros, for parsing (any valid duration would do).
MACROS = {"__rate_interval": "5m", "__interval": "1m", "__range": "3h"}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return document


def variables() -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in dashboard()["templating"]["list"]}


def substituted(expression: str) -> str:
    """The query as Grafana sends it: "All" for a multi-value variable, else its value."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in MACROS:
            return MACROS[name]
        variable = variables()[name]  # an unknown variable is a KeyError: a broken panel
        if variable.get("includeAll"):
            return str(variable["allValue"])
        return str(variable["current"]["value"])

    return VARIABLE.sub(value, expression)


def panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def queries() -> list[tuple[str, str]]:
    """(panel title and refId, the query as sent) for every query of every panel."""
    return [
        (f"{panel['title']} {target['refId']}", substituted(target["expr"]))
        for panel in panels()
        for target in panel["targets"]
    ]


def promtool_run(promtool: Path, *args: str) -> tuple[int, str]:
    result = subprocess.run(
        [str(promtool), *args], capture_output=True, text=True, timeout=120, check=False
    )
    return result.returncode, result.stdout + result.stderr


def as_rules(expressions: list[str], path: Path) -> Path:
    rules = [
        {"record": f"harbor_secrets_dashboard:query_{index}", "expr": expression}
        for index, expression in enumerate(expressions)
    ]
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    return path


# --- the JSON model --------------------------------------------------------------------------


def test_dashboard_is_a_provisionable_grafana_dashboard() -> None:
    document = dashboard()
    assert document["uid"] == "harbor-secrets"
    assert document["title"]
    assert isinstance(document["schemaVersion"], int)
    assert "__inputs" not in document, "import-only: Grafana's sidecar could not load it"
    ids = [panel["id"] for panel in document["panels"]]
    assert len(ids) == len(set(ids))
    assert variables()["datasource"]["type"] == "datasource"
    assert variables()["datasource"]["query"] == "prometheus"
    for panel in panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["description"], panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]


# --- every query: promtool parses it, and it selects only what we export ----------------------


def test_every_query_parses_with_promtool(promtool: Path, tmp_path: Path) -> None:
    expressions = [expression for _, expression in queries()]
    assert len(expressions) >= 10
    code, output = promtool_run(
        promtool, "check", "rules", str(as_rules(expressions, tmp_path / "dashboard.yml"))
    )
    assert code == 0, output
    assert f"SUCCESS: {len(expressions)} rules found" in output


def test_the_promtool_check_fails_on_a_broken_query(promtool: Path, tmp_path: Path) -> None:
    expressions = [expression for _, expression in queries()]
    expressions[0] = expressions[0].replace("(", "[", 1)
    code, output = promtool_run(
        promtool, "check", "rules", str(as_rules(expressions, tmp_path / "broken.yml"))
    )
    assert code != 0
    assert "FAILED" in output


@pytest.mark.parametrize(("where", "expression"), queries(), ids=[w for w, _ in queries()])
def test_query_selects_only_what_harbor_secrets_exports(where: str, expression: str) -> None:
    assert unknown_names(expression, exported()) == [], where


def test_variables_list_labels_harbor_secrets_exports() -> None:
    known = exported()
    queried = [v for v in variables().values() if v["type"] == "query"]
    assert {v["name"] for v in queried} == {"environment", "sink"}
    for variable in queried:
        match = LABEL_VALUES.fullmatch(variable["query"]["query"])
        assert match, variable["query"]
        assert unknown_names(match["selector"], known) == []
        assert match["label"] in known[match["selector"].strip()]


def test_every_variable_a_query_uses_exists() -> None:
    for panel in panels():
        for target in panel["targets"]:
            for match in VARIABLE.finditer(target["expr"]):
                name = match.group(1) or match.group(2)
                assert name in MACROS or name in variables(), (panel["title"], name)


# --- the panels the issue asks for ------------------------------------------------------------


def panel_queries(title_part: str) -> list[str]:
    (panel,) = [p for p in panels() if title_part in p["title"]]
    return [target["expr"] for target in panel["targets"]]


def test_the_panels_readers_and_operators_need() -> None:
    lifetime = panel_queries("Remaining lifetime of every stored token, per sink")
    assert "harbor_secrets_token_expiry_timestamp_seconds" in lifetime[0]
    assert "vector($reader_floor)" in lifetime, "the reader floor to hold them against"
    assert "harbor_secrets_writes_total" in panel_queries("Tokens written, per sink")[0]
    assert "harbor_secrets_skips_total" in panel_queries("found the token fresh")[0]
    failures = panel_queries("Failures by reason")[0]
    assert "harbor_secrets_failures_total" in failures
    assert "by (reason" in failures
    latency = panel_queries("Token-request latency")
    assert all("harbor_secrets_token_request_seconds_bucket" in q for q in latency)
    replicas = panel_queries("Tokens written, by replica or host")[0]
    assert "by (instance, pod)" in replicas
    assert {"instance", "pod"} <= TARGET_LABELS


def test_the_reader_floor_variable_defaults_to_the_tools_floor() -> None:
    from harbor_secrets.config import parse_config
    from harbor_testkit.environ import clean_environ

    minimal = {
        "credentials": {"main": {"client_id": "c", "client_secret": "env:X"}},
        "sinks": {"local": {"provider": "envfile", "path": "harbor.env"}},
        "targets": [{"environments": ["sandbox"], "sinks": ["local"]}],
    }
    policy = parse_config(minimal, source=None, environ=clean_environ()).refresh
    floor = variables()["reader_floor"]["current"]["value"]
    assert int(floor) == policy.reader_floor()


def test_the_lifetime_panel_shows_the_newest_expiry_any_replica_knows(
    promtool: Path, tmp_path: Path
) -> None:
    """Two replicas: b read the store before a's write, so a's expiry is what readers get."""
    (expression, *_) = panel_queries("Remaining lifetime of every stored token, per sink")
    labels = 'credentials="main",environment="sandbox",scope="service_provider",sink="vault"'
    expiry = "harbor_secrets_token_expiry_timestamp_seconds"
    tests = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": f'{expiry}{{{labels},pod="a"}}',
                        "values": "300 460 460",
                    },
                    {
                        "series": f'{expiry}{{{labels},pod="b"}}',
                        "values": "300 300 300",
                    },
                ],
                "promql_expr_test": [
                    {
                        "expr": substituted(expression),
                        "eval_time": "2m",
                        "exp_samples": [
                            {"labels": f"{{{labels}}}", "value": 460 - 120},
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "lifetime.test.yml"
    path.write_text(yaml.safe_dump(tests))
    code, output = promtool_run(promtool, "test", "rules", str(path))
    assert code == 0, output
