"""Offline checks of deploy/aws: terraform fmt, checkov, and what the module promises.

checkov runs from its own virtualenv (``.venv-tools``, made on first use by
tools/ensure_checkov.py through the root conftest.py's ``checkov`` fixture) because its
pinned dependencies would fight the project's. If it cannot be
installed or run, the test fails: a security scan that silently does not run is worse
than none. ``terraform fmt`` is skipped, with the reason printed, only where terraform is
not installed (``terraform validate`` would need the AWS provider downloaded, so it is not
run here).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from harbor_secrets_aws import lambda_handler

from harbor_secrets import format_time

REPO = Path(__file__).resolve().parents[3]
MODULE = REPO / "deploy" / "aws"
README = REPO / "providers" / "aws" / "README.md"

#: Every API action the providers call, by store (see the "API calls" notes in each module).
SECRETS_MANAGER_ACTIONS = {
    "secretsmanager:GetSecretValue",
    "secretsmanager:DescribeSecret",
    "secretsmanager:CreateSecret",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecretVersionStage",
    "secretsmanager:TagResource",
}
PARAMETER_STORE_ACTIONS = {
    "ssm:GetParameter",
    "ssm:PutParameter",
    "ssm:DeleteParameter",
    "ssm:AddTagsToResource",
    "ssm:ListTagsForResource",
}


def module_text() -> str:
    return "\n".join(path.read_text() for path in sorted(MODULE.glob("*.tf")))


def test_terraform_fmt() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        print("terraform is not installed: skipping `terraform fmt -check` on deploy/aws")
        pytest.skip("terraform is not installed")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-diff", "-recursive", str(MODULE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("var_file", [None, "example.tfvars"])
def test_checkov_finds_no_failed_check(checkov: Path, var_file: str | None) -> None:
    command = [
        str(checkov),
        "--directory",
        str(MODULE),
        "--framework",
        "terraform",
        "--skip-download",  # offline: no policy metadata from the vendor's API
        "--output",
        "json",
    ]
    if var_file:
        command += ["--var-file", str(MODULE / var_file)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    try:
        report: dict[str, Any] = json.loads(result.stdout)
    except ValueError:
        pytest.fail(f"checkov did not produce a report:\n{result.stdout}\n{result.stderr}"[-4000:])
    summary = report["summary"]
    failed = [
        f"{check['check_id']} {check['resource']}: {check['check_name']}"
        for check in report["results"]["failed_checks"]
    ]
    assert failed == []
    assert summary["parsing_errors"] == 0
    assert summary["passed"] >= 40, "checkov scanned far less than the module holds"
    for check in report["results"]["skipped_checks"]:
        reason = check["check_result"].get("suppress_comment") or ""
        assert len(reason) >= 40, f"{check['check_id']} is suppressed without a real reason"


def test_module_runs_one_at_a_time_every_minute_and_drops_late_events() -> None:
    text = module_text()
    assert re.search(r"reserved_concurrent_executions\s*=\s*1\b", text)
    assert re.search(r'default\s*=\s*"rate\(1 minute\)"', text)
    assert len(re.findall(r"maximum_event_age_in_seconds\s*=\s*60\b", text)) == 2
    assert len(re.findall(r"maximum_retry_attempts\s*=\s*0\b", text)) == 2
    assert re.search(r"retention_in_days\s*=\s*var\.log_retention_in_days", text)
    handler = re.search(r'handler\s*=\s*"([^"]+)"', text)
    assert handler is not None
    module, _, function = handler.group(1).rpartition(".")
    assert module == lambda_handler.__name__
    assert callable(getattr(lambda_handler, function))


def test_schedule_input_is_an_event_the_handler_dates() -> None:
    text = (MODULE / "schedule.tf").read_text()
    match = re.search(r"input = <<-EOT\n(.*?)\n\s*EOT", text, re.S)
    assert match, "the schedule's input must be a heredoc (jsonencode escapes < and >)"
    scheduled = format_time(datetime.now(UTC))
    body = (
        match.group(1)
        .replace("${local.account}", "123456789012")
        .replace("${local.region}", "eu-west-1")
        .replace("<aws.scheduler.scheduled-time>", scheduled)
    )
    event = json.loads(body)
    assert event["detail-type"] == "Scheduled Event"
    age = lambda_handler.event_age(event, datetime.now(UTC))
    assert age is not None
    assert 0 <= age < 5


def test_iam_is_least_privilege_and_covers_what_the_providers_call() -> None:
    iam = (MODULE / "iam.tf").read_text()
    assert '"*"' not in iam, "no wildcard resources"
    granted = set(re.findall(r'"((?:secretsmanager|ssm|kms|logs|lambda):[A-Za-z]+)"', iam))
    assert granted >= SECRETS_MANAGER_ACTIONS
    assert granted >= PARAMETER_STORE_ACTIONS
    assert "kms:ViaService" in iam, "KMS only through the secret stores"
    readme = README.read_text()
    for action in SECRETS_MANAGER_ACTIONS | PARAMETER_STORE_ACTIONS:
        assert action in readme, f"the README's IAM examples miss {action}"


def test_a_second_region_can_keep_the_same_store_fresh() -> None:
    """store_region points every store ARN and the KMS condition at the store's region, so a
    second deployment of the module elsewhere writes the same parameters; the function's own
    resources stay in its region, and each names itself as the records' writer."""
    main = (MODULE / "main.tf").read_text()
    iam = (MODULE / "iam.tf").read_text()
    variables = (MODULE / "variables.tf").read_text()
    assert re.search(r'variable "store_region" \{[^}]*default\s*=\s*null', variables, re.S)
    assert "store_region = coalesce(var.store_region, local.region)" in main
    store_arn = r'"arn:\$\{local\.partition\}:(?:ssm|secretsmanager):\$\{local\.(\w+)\}'
    arns = re.findall(store_arn, main)
    assert arns
    assert set(arns) == {"store_region"}
    assert "${local.region}" not in iam  # KMS only through the store's region's services
    assert iam.count("${local.store_region}.amazonaws.com") == 2
    assert re.search(r'writer\s*=\s*"lambda-\$\{var\.function_name\}-\$\{local\.region\}"', main)
    assert "HARBOR_SECRETS_WRITER = local.writer" in main
    readme = (MODULE / "README.md").read_text()
    assert "store_region" in readme
    assert "## A second region" in readme
