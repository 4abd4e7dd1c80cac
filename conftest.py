"""Fixtures shared by every test directory (pytest loads this root conftest for all of them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ENSURE_CHECKOV = Path(__file__).resolve().parent / "tools" / "ensure_checkov.py"


@pytest.fixture(scope="session")
def checkov() -> Path:
    """checkov from its own virtualenv (made once per clone); fails, never skips, without it."""
    result = subprocess.run(  # noqa: S603 - our own script, no shell
        [sys.executable, str(ENSURE_CHECKOV)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"could not install checkov:\n{result.stdout}\n{result.stderr}"[-4000:])
    print(result.stderr.strip())  # the install time, on the run that installs
    return Path(result.stdout.strip().splitlines()[-1])
