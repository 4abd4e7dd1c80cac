"""deploy/prometheus: the alert rules, checked and unit-tested by the real promtool.

promtool 2.42 (Debian's prometheus package, fetched once by tools/ensure_binaries.py
through the root conftest's ``promtool`` fixture) runs ``check rules`` on the rules file and
``test rules`` on the unit tests next to it (deploy/prometheus/tests/), which fire every
alert and keep it silent for healthy series, with the summary and description rendered.
On top of what promtool can know: every metric and label a rule selects is one
harbor-secrets exports (tests/exported_metrics.py), every alert is both fired and kept
silent by the unit tests, and our own exposition passes ``promtool check metrics``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from exported_metrics import exported, exposition, unknown_names

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS = REPO / "deploy" / "prometheus"
RULES = PROMETHEUS / "harbor-secrets.rules.yml"
UNIT_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
README = REPO / "deploy" / "README.md"
SEVERITIES = {"critical", "warning", "info"}
REQUIRED_ANNOTATIONS = {"summary", "description", "runbook"}


def promtool_run(promtool: Path, *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = subprocess.run(
        [str(promtool), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def rules(path: Path = RULES) -> list[dict[str, Any]]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules()}


# --- promtool ----------------------------------------------------------------------------------


def test_promtool_checks_the_rules(promtool: Path) -> None:
    code, output = promtool_run(promtool, "check", "rules", str(RULES))
    assert code == 0, output
    assert f"SUCCESS: {len(rules())} rules found" in output


def test_promtool_check_rejects_a_broken_rule(promtool: Path, tmp_path: Path) -> None:
    """The check above can fail: a typo in one expression makes promtool say where."""
    broken = tmp_path / "broken.rules.yml"
    text = RULES.read_text(encoding="utf-8")
    broken.write_text(text.replace("increase(harbor_secrets_failures_total", "increase((", 1))
    code, output = promtool_run(promtool, "check", "rules", str(broken))
    assert code != 0
    assert "FAILED" in output


def test_promtool_unit_tests_pass(promtool: Path) -> None:
    assert UNIT_TESTS, "deploy/prometheus/tests/*.yml hold the rules' unit tests"
    code, output = promtool_run(promtool, "test", "rules", *map(str, UNIT_TESTS))
    assert code == 0, output
    assert output.count("SUCCESS") == len(UNIT_TESTS)


def test_promtool_unit_tests_fail_when_a_rule_changes(promtool: Path, tmp_path: Path) -> None:
    """The unit tests pin behaviour: the rule of a year ago (no replicas) fails them."""
    (tmp_path / "tests").mkdir()
    text = RULES.read_text(encoding="utf-8")
    old = "max without (instance, pod) (harbor_secrets_token_expiry_timestamp_seconds) - time()"
    assert old in text
    new = "harbor_secrets_token_expiry_timestamp_seconds - time()"
    (tmp_path / RULES.name).write_text(text.replace(old, new))
    for unit in UNIT_TESTS:
        (tmp_path / "tests" / unit.name).write_text(unit.read_text(encoding="utf-8"))
    code, output = promtool_run(
        promtool, "test", "rules", *(str(tmp_path / "tests" / u.name) for u in UNIT_TESTS)
    )
    assert code != 0
    assert "HarborSecretsTokenExpiringSoon" in output


def alert_tests() -> list[dict[str, Any]]:
    found = []
    for unit in UNIT_TESTS:
        document = yaml.safe_load(unit.read_text(encoding="utf-8"))
        assert document["rule_files"] == [f"../{RULES.name}"]
        for test in document["tests"]:
            found.extend(test.get("alert_rule_test", []))
    return found


@pytest.mark.parametrize("name", sorted(alerts()))
def test_every_alert_is_unit_tested_firing_and_silent(name: str) -> None:
    cases = [case for case in alert_tests() if case["alertname"] == name]
    assert any(case["exp_alerts"] for case in cases), f"{name} is never shown firing"
    assert any(not case["exp_alerts"] for case in cases), f"{name} is never shown silent"


def test_unit_test_inputs_are_series_harbor_secrets_exports() -> None:
    """A firing test proves a rule's metric names only if its input uses the real names."""
    known = exported()
    for unit in UNIT_TESTS:
        document = yaml.safe_load(unit.read_text(encoding="utf-8"))
        for test in document["tests"]:
            for series in test.get("input_series", []):
                name = series["series"].partition("{")[0]
                assert name == "up" or name in known, f"{unit.name}: {name} is not exported"


# --- what promtool cannot know -----------------------------------------------------------------


def test_exposition_passes_promtool_check_metrics(promtool: Path) -> None:
    code, output = promtool_run(promtool, "check", "metrics", stdin=exposition())
    assert code == 0, output


@pytest.mark.parametrize("name", sorted(alerts()))
def test_rule_selects_only_what_harbor_secrets_exports(name: str) -> None:
    assert unknown_names(alerts()[name]["expr"], exported()) == []


def test_the_name_check_catches_a_misspelt_metric_or_label() -> None:
    known = exported()
    assert unknown_names("harbor_secrets_token_expiry_seconds - time() < 60", known) == [
        "metric harbor_secrets_token_expiry_seconds"
    ]
    assert unknown_names('increase(harbor_secrets_writes_total{reason="x"}[5m])', known) == [
        "label ['reason'] of harbor_secrets_writes_total"
    ]
    assert unknown_names('harbor_secrets_writes_total{pod="a"}', known) == []


def test_every_rule_is_complete() -> None:
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    for rule in rules():
        assert re.fullmatch(r"HarborSecrets[A-Z][A-Za-z]+", rule["alert"])
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert set(rule["annotations"]) >= REQUIRED_ANNOTATIONS, rule["alert"]
        assert 'deploy/README.md, "When an alert fires"' in " ".join(
            rule["annotations"]["runbook"].split()
        )


def test_readme_lists_every_alert() -> None:
    readme = README.read_text(encoding="utf-8")
    for name in alerts():
        assert f"`{name}`" in readme, name
