"""checkov on the container image's Dockerfile, every rendered Kubernetes overlay and every
rendered shape of the Helm chart (its defaults, each ci/*-values.yaml, each store as watch
replicas), in one scan.

checkov lives in its own virtualenv (its pinned dependencies would fight the project's);
tools/ensure_checkov.py (through the root conftest.py's checkov fixture) creates it on
first use and prints the executable. If it cannot be installed
or run, these tests fail: a security scan that silently does not run is worse than none.
Each suppression is an inline `checkov.io/skipN` annotation with its reason; the tests pin
the set of suppressed checks, so a new one is a deliberate change here too.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_renders import RENDERS, render
from kube_manifests import CHART_SHAPES, REPO, render_chart

DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
#: Suppressed on purpose, with the reason next to each in the manifests.
EXPECTED_SKIPS = {"CKV_K8S_15", "CKV_K8S_43"}  # imagePullPolicy Always; image digest


def scan(checkov: Path, framework: str, files: list[Path]) -> dict[str, Any]:
    command = [str(checkov), "--framework", framework, "--skip-download", "--output", "json"]
    for path in files:
        command += ["--file", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    try:
        report = json.loads(result.stdout)
    except ValueError:
        pytest.fail(f"checkov did not produce a report:\n{result.stdout}\n{result.stderr}"[-4000:])
    assert isinstance(report, dict), "one framework, one report"
    assert report["summary"]["parsing_errors"] == 0
    return report


def failed(report: dict[str, Any]) -> list[str]:
    return [
        f"{Path(c['file_path']).name}: {c['check_id']} {c['resource']}: {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]


@pytest.mark.timeout(900)
def test_dockerfile_passes_checkov(checkov: Path) -> None:
    report = scan(checkov, "dockerfile", [DOCKERFILE])
    assert failed(report) == []
    assert report["results"]["skipped_checks"] == []
    assert report["summary"]["passed"] >= 20, "checkov scanned far less than the file holds"


@pytest.fixture(scope="module")
def kubernetes_report(
    checkov: Path, helm: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """One scan of every overlay (and of every CronJob overlay run by watchers) and every chart
    shape, plus a copy of the base that drops one protection (one checkov start-up is most of
    the time this takes)."""
    directory = tmp_path_factory.mktemp("rendered")
    scratch = tmp_path_factory.mktemp("overlays")
    files = []
    for overlay in RENDERS:
        files.append(directory / file_name(overlay))
        files[-1].write_text(render(overlay, scratch))
    for shape in CHART_SHAPES:
        files.append(directory / chart_file(shape))
        files[-1].write_text(render_chart(helm, shape))
    docs = list(yaml.safe_load_all(files[0].read_text()))
    for doc in docs:
        if doc["kind"] == "CronJob":
            pod = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
    files.append(directory / "weakened.yaml")
    files[-1].write_text(yaml.safe_dump_all(docs))
    return scan(checkov, "kubernetes", files)


def file_name(overlay: str) -> str:
    return overlay.replace("/", "-").replace("+", "--") + ".yaml"


def chart_file(shape: str) -> str:
    return f"helm-{shape.replace('+', '--')}.yaml"


def assert_passes(report: dict[str, Any], name: str) -> None:
    results = report["results"]
    assert [f for f in failed(report) if f.startswith(f"{name}:")] == []
    passed = [c for c in results["passed_checks"] if Path(c["file_path"]).name == name]
    assert len(passed) >= 60, "checkov scanned far less than the overlay holds"
    skipped = [c for c in results["skipped_checks"] if Path(c["file_path"]).name == name]
    assert {c["check_id"] for c in skipped} == EXPECTED_SKIPS
    for check in skipped:
        reason = check["check_result"].get("suppress_comment") or ""
        assert len(reason) >= 60, f"{check['check_id']} is suppressed without a real reason"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("overlay", RENDERS)
def test_overlay_passes_checkov(kubernetes_report: dict[str, Any], overlay: str) -> None:
    assert_passes(kubernetes_report, file_name(overlay))


@pytest.mark.timeout(900)
@pytest.mark.parametrize("shape", CHART_SHAPES)
def test_chart_passes_checkov(kubernetes_report: dict[str, Any], shape: str) -> None:
    assert_passes(kubernetes_report, chart_file(shape))


@pytest.mark.timeout(900)
def test_checkov_notices_a_dropped_protection(kubernetes_report: dict[str, Any]) -> None:
    assert failed(kubernetes_report) == [
        "weakened.yaml: CKV_K8S_22 CronJob.harbor-secrets.harbor-secrets: "
        "Use read-only filesystem for containers where possible"
    ]
