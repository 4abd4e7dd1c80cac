"""`--version` and `--help` load no SDK: lazy imports keep cron start-up cheap.

(Start-up time itself is measured in bench/startup.py, not asserted here.)
"""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
sys.argv = ["harbor-secrets", *sys.argv[1:]]
from harbor_secrets import cli
try:
    cli.main()
except SystemExit:
    pass
heavy = (
    "requests", "urllib3", "hvac", "boto3", "botocore", "harbor_secrets_envfile",
    "lightkube", "httpx2", "harbor_secrets_kubernetes",
)
print("loaded:" + ",".join(m for m in heavy if m in sys.modules))
"""


def loaded_after(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    ).stdout
    return out.strip().splitlines()[-1].removeprefix("loaded:")


def test_version_and_help_import_no_sdk() -> None:
    assert loaded_after("--version") == ""
    assert loaded_after("--help") == ""
    assert loaded_after("sync", "--help") == ""


def test_environment_command_needs_no_http_stack() -> None:
    assert loaded_after("environment", "0100000000000a3f") == ""
